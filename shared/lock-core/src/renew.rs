//! Renew: the holder, and only the holder, extends its lease (or its session's).

use crate::effect::Change;
use crate::error::{Field, LockError};
use crate::machine::{Ctx, Lease, LockMachine};
use crate::reply::{Grant, Reply, Response};
use crate::types::{FencingToken, LockKey, Millis};
use crate::validate;

impl LockMachine {
    pub(crate) fn renew(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &LockKey,
        owner: &str,
        token: FencingToken,
        ttl_ms: Millis,
    ) -> Response {
        let limits = self.limits;
        validate::range(Field::TtlMs, ttl_ms, limits.min_ttl_ms, limits.max_ttl_ms)?;
        self.check_holder(key, owner, token)?;
        let grant = self.extend_holder(ctx, key, ttl_ms)?;
        Ok(Reply::Renewed {
            token: grant.token,
            ttl_ms: grant.ttl_ms,
        })
    }

    /// Succeeds when `(owner, token)` is `key`'s current holder.
    pub(crate) fn check_holder(
        &self,
        key: &LockKey,
        owner: &str,
        token: FencingToken,
    ) -> Result<(), LockError> {
        let holder = self
            .locks
            .get(key)
            .and_then(|s| s.holder.as_ref())
            .ok_or(LockError::NotHeld)?;
        if holder.owner == *owner && holder.token == token {
            Ok(())
        } else {
            Err(LockError::NotHolder)
        }
    }

    /// Restarts the current holder's lease at the entry's time: its own lease with
    /// `ttl_ms`, or its session's with the session's TTL.
    pub(crate) fn extend_holder(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &LockKey,
        ttl_ms: Millis,
    ) -> Result<Grant, LockError> {
        let holder = self
            .locks
            .get_mut(key)
            .and_then(|s| s.holder.as_mut())
            .ok_or(LockError::NotHeld)?;
        let (token, owner) = (holder.token, holder.owner.clone());
        let (session, ttl_ms) = match holder.lease {
            Lease::Session(id) => (Some(id), self.touch_session(ctx, id)?),
            Lease::Own {
                expires_at: old, ..
            } => {
                let expires_at = ctx.now.saturating_add(ttl_ms);
                holder.lease = Lease::Own { expires_at, ttl_ms };
                self.timers.leases.remove(&(old, key.clone()));
                self.timers.leases.insert((expires_at, key.clone()));
                (None, ttl_ms)
            }
        };
        ctx.key_changed(
            key,
            Change::Renewed {
                key: key.clone(),
                owner,
                token,
                ttl_ms,
            },
        );
        Ok(Grant {
            token,
            ttl_ms,
            session,
        })
    }
}
