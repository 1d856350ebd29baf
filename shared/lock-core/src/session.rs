//! Sessions: create, keepalive, close, and the end of a session (close or expiry), which
//! drops its waits and hands each of its keys to that key's next waiter in the same entry.

use crate::effect::{Change, Effect, LostReason, WaitEndReason};
use crate::error::{Field, LockError};
use crate::machine::{Ctx, LockMachine, Session};
use crate::reply::{Reply, Response};
use crate::types::{Millis, SessionId, TenantId};
use crate::validate;

impl LockMachine {
    pub(crate) fn create_session(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: SessionId,
        tenant: TenantId,
        ttl_ms: Millis,
    ) -> Response {
        let limits = self.limits;
        validate::range(Field::TtlMs, ttl_ms, limits.min_ttl_ms, limits.max_ttl_ms)?;
        if let Some(existing) = self.sessions.get(&id) {
            return if existing.tenant == tenant && existing.ttl_ms == ttl_ms {
                Ok(Reply::SessionCreated { ttl_ms })
            } else {
                Err(LockError::SessionConflict(id))
            };
        }
        let expires_at = ctx.now.saturating_add(ttl_ms);
        self.sessions.insert(
            id,
            Session {
                tenant,
                ttl_ms,
                expires_at,
                held: Default::default(),
                waits: Default::default(),
            },
        );
        self.timers.sessions.insert((expires_at, id));
        ctx.audit(tenant, Change::SessionCreated { id, ttl_ms });
        Ok(Reply::SessionCreated { ttl_ms })
    }

    pub(crate) fn keep_alive(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: SessionId,
        tenant: TenantId,
    ) -> Response {
        self.require_session(id, tenant)?;
        let ttl_ms = self.touch_session(ctx, id)?;
        Ok(Reply::SessionKeptAlive { ttl_ms })
    }

    pub(crate) fn keep_alive_many(
        &mut self,
        ctx: &mut Ctx<'_>,
        sessions: &[(SessionId, TenantId)],
    ) -> Reply {
        let outcomes = sessions
            .iter()
            .map(|&(id, tenant)| {
                self.require_session(id, tenant)?;
                self.touch_session(ctx, id)
            })
            .collect();
        Reply::SessionsKeptAlive { outcomes }
    }

    pub(crate) fn close_session(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: SessionId,
        tenant: TenantId,
    ) -> Response {
        self.require_session(id, tenant)?;
        self.end_session(ctx, id, false);
        Ok(Reply::SessionClosed)
    }

    /// Restarts a session's lease at the entry's time and returns its TTL.
    pub(crate) fn touch_session(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: SessionId,
    ) -> Result<Millis, LockError> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(LockError::SessionNotFound(id))?;
        self.timers.sessions.remove(&(session.expires_at, id));
        session.expires_at = ctx.now.saturating_add(session.ttl_ms);
        self.timers.sessions.insert((session.expires_at, id));
        let (tenant, ttl_ms) = (session.tenant, session.ttl_ms);
        ctx.audit(tenant, Change::SessionKeptAlive { id });
        Ok(ttl_ms)
    }

    /// Ends a session: its waits leave their queues, then each key it held is reported
    /// lost and handed to that key's next waiter (after the holder's lock-delay when the
    /// session expired). `SessionExpired` is the last effect, so a watcher that stops at it
    /// has seen every lost lock.
    pub(crate) fn end_session(&mut self, ctx: &mut Ctx<'_>, id: SessionId, expired: bool) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        self.timers.sessions.remove(&(session.expires_at, id));
        ctx.audit(session.tenant, Change::SessionEnded { id, expired });
        for (key, wait) in session.waits {
            if let Some(waiter) = self.remove_wait(&key, wait, ctx.now) {
                self.end_wait(ctx, &key, waiter, WaitEndReason::SessionEnded);
            }
        }
        let reason = if expired {
            LostReason::SessionExpired
        } else {
            LostReason::SessionClosed
        };
        for key in session.held {
            let Some(holder) = self.take_holder(&key) else {
                continue;
            };
            self.report_lost(ctx, &key, &holder, reason);
            let lock_delay_ms = if expired { holder.lock_delay_ms } else { 0 };
            self.vacate(ctx, &key, lock_delay_ms);
        }
        if expired {
            ctx.effects.push(Effect::SessionExpired { id });
        }
    }
}
