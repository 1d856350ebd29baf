//! Granting and handing over: installing a holder, vacating a key, and waking exactly the
//! next live waiter in FIFO order.

use crate::effect::{Change, Effect, LostReason, WaitEndReason};
use crate::error::Holder;
use crate::machine::{Ctx, HolderState, Lease, LockMachine, Waiter};
use crate::name::Name;
use crate::reply::Grant;
use crate::types::{LockKey, Millis, SessionId, WaitId};

/// What a grant needs to know about its new holder.
#[derive(Debug, Clone)]
pub(crate) struct NewHolder {
    pub(crate) owner: Name,
    pub(crate) session: Option<SessionId>,
    pub(crate) ttl_ms: Millis,
    pub(crate) lock_delay_ms: Millis,
}

impl HolderState {
    /// The holder as callers may see it.
    pub(crate) fn public(&self) -> Holder {
        Holder {
            owner: self.owner.to_string(),
            token: self.token,
            session: self.session(),
        }
    }
}

impl LockMachine {
    /// Makes `new` the holder of the free `key` with a fresh token. Session-bound locks
    /// join their session; others get a lease in the expiry index.
    pub(crate) fn install_holder(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &LockKey,
        new: NewHolder,
        wait: Option<WaitId>,
    ) -> Grant {
        let token = self.issue_token(ctx.index);
        let session = new
            .session
            .and_then(|id| self.sessions.get_mut(&id).map(|s| (id, s)));
        let (lease, ttl_ms) = match session {
            Some((id, session)) => {
                session.held.insert(key.clone());
                (Lease::Session(id), session.ttl_ms)
            }
            None => {
                let expires_at = ctx.now.saturating_add(new.ttl_ms);
                self.timers.leases.insert((expires_at, key.clone()));
                let ttl_ms = new.ttl_ms;
                (Lease::Own { expires_at, ttl_ms }, ttl_ms)
            }
        };
        ctx.key_changed(
            key,
            Change::Acquired {
                key: key.clone(),
                owner: new.owner.clone(),
                token,
                session: new.session,
                ttl_ms,
                wait,
            },
        );
        let previous = self
            .locks
            .entry(key.clone())
            .or_default()
            .holder
            .replace(HolderState {
                owner: new.owner,
                token,
                lease,
                lock_delay_ms: new.lock_delay_ms,
            });
        if previous.is_none() {
            *self.held_by_tenant.entry(key.tenant).or_default() += 1;
        }
        Grant {
            token,
            ttl_ms,
            session: new.session,
        }
    }

    /// Removes `key`'s holder from the lease index or its session and returns it.
    pub(crate) fn take_holder(&mut self, key: &LockKey) -> Option<HolderState> {
        let holder = self.locks.get_mut(key)?.holder.take()?;
        if let std::collections::btree_map::Entry::Occupied(mut held) =
            self.held_by_tenant.entry(key.tenant)
        {
            *held.get_mut() -= 1;
            if *held.get() == 0 {
                held.remove();
            }
        }
        match holder.lease {
            Lease::Session(id) => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.held.remove(key);
                }
            }
            Lease::Own { expires_at, .. } => {
                self.timers.leases.remove(&(expires_at, key.clone()));
            }
        }
        Some(holder)
    }

    /// Reports a holder that lost its lock without releasing it.
    pub(crate) fn report_lost(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &LockKey,
        holder: &HolderState,
        reason: LostReason,
    ) {
        ctx.effects.push(Effect::Lost {
            key: key.clone(),
            owner: holder.owner.clone(),
            session: holder.session(),
            token: holder.token,
            reason,
        });
        ctx.key_changed(
            key,
            Change::Lost {
                key: key.clone(),
                owner: holder.owner.clone(),
                token: holder.token,
                reason,
            },
        );
    }

    /// After the holder left: start the lock-delay if one applies, else hand the key on.
    pub(crate) fn vacate(&mut self, ctx: &mut Ctx<'_>, key: &LockKey, lock_delay_ms: Millis) {
        if lock_delay_ms > 0 {
            if let Some(state) = self.locks.get_mut(key) {
                let until = ctx.now.saturating_add(lock_delay_ms);
                state.set_available_at(until);
                self.timers.delays.insert((until, key.clone()));
            }
        } else {
            self.grant_next(ctx, key);
        }
    }

    /// Grants the free `key` to the first waiter that is still live, dropping the ones
    /// whose deadline has passed or whose session has ended. Wakes one waiter at most.
    pub(crate) fn grant_next(&mut self, ctx: &mut Ctx<'_>, key: &LockKey) {
        loop {
            let Some(state) = self.locks.get_mut(key) else {
                return;
            };
            let Some(waiter) = state.pop_waiter() else {
                if state.is_idle(ctx.now) {
                    self.locks.remove(key);
                }
                return;
            };
            self.unlink_wait(key, &waiter);
            let session_live = waiter
                .session
                .is_none_or(|id| self.live_session(id, key.tenant).is_some());
            if waiter.deadline <= ctx.now {
                self.end_wait(ctx, key, waiter, WaitEndReason::TimedOut);
            } else if !session_live {
                self.end_wait(ctx, key, waiter, WaitEndReason::SessionEnded);
            } else {
                self.grant_waiter(ctx, key, waiter);
                return;
            }
        }
    }

    fn grant_waiter(&mut self, ctx: &mut Ctx<'_>, key: &LockKey, waiter: Waiter) {
        let new = NewHolder {
            owner: waiter.owner,
            session: waiter.session,
            ttl_ms: waiter.ttl_ms,
            lock_delay_ms: waiter.lock_delay_ms,
        };
        let grant = self.install_holder(ctx, key, new.clone(), Some(waiter.wait));
        ctx.effects.push(Effect::Granted {
            key: key.clone(),
            wait: waiter.wait,
            owner: new.owner,
            session: grant.session,
            token: grant.token,
            ttl_ms: grant.ttl_ms,
        });
        if let Some(request_id) = waiter.request_id {
            self.dedup.granted(key.tenant, &request_id, grant);
        }
    }

    /// Removes a waiter (already taken out of its queue) from the deadline index and
    /// from its session.
    pub(crate) fn unlink_wait(&mut self, key: &LockKey, waiter: &Waiter) {
        self.timers
            .waits
            .remove(&(waiter.deadline, key.clone(), waiter.wait));
        if let Some(session) = waiter.session.and_then(|id| self.sessions.get_mut(&id)) {
            session.waits.remove(&(key.clone(), waiter.wait));
        }
    }

    /// Reports a wait that left the queue without a grant.
    pub(crate) fn end_wait(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &LockKey,
        waiter: Waiter,
        reason: WaitEndReason,
    ) {
        ctx.effects.push(Effect::WaitEnded {
            key: key.clone(),
            wait: waiter.wait,
            reason,
        });
        ctx.key_changed(
            key,
            Change::WaitEnded {
                key: key.clone(),
                owner: waiter.owner,
                wait: waiter.wait,
                reason,
            },
        );
        if let Some(request_id) = waiter.request_id {
            self.dedup.forget(key.tenant, &request_id);
        }
    }

    /// Takes wait `wait` out of `key`'s queue, unlinked, and drops the key if it became
    /// idle. Queues are ordered by wait id, so this is a binary search.
    pub(crate) fn remove_wait(
        &mut self,
        key: &LockKey,
        wait: WaitId,
        now: Millis,
    ) -> Option<Waiter> {
        let state = self.locks.get_mut(key)?;
        let waiter = state.remove_waiter(wait)?;
        if state.is_idle(now) {
            self.locks.remove(key);
        }
        self.unlink_wait(key, &waiter);
        Some(waiter)
    }
}
