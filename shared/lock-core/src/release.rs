//! Release and cancel-wait: leaving a key, by its holder or by a waiter.

use crate::effect::{Change, WaitEndReason};
use crate::error::LockError;
use crate::machine::{Ctx, LockMachine};
use crate::reply::{Reply, Response};
use crate::types::{FencingToken, LockKey, WaitId};

impl LockMachine {
    /// The holder gives the key up; the next live waiter is granted in this same entry.
    /// No lock-delay follows a release.
    pub(crate) fn release(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &LockKey,
        owner: &str,
        token: FencingToken,
    ) -> Response {
        self.check_holder(key, owner, token)?;
        let holder = self.take_holder(key).ok_or(LockError::NotHeld)?;
        ctx.key_changed(
            key,
            Change::Released {
                key: key.clone(),
                owner: holder.owner,
                token,
            },
        );
        self.grant_next(ctx, key);
        Ok(Reply::Released)
    }

    /// A waiter leaves the queue (gave up, timed out at the caller, disconnected).
    pub(crate) fn cancel_wait(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &LockKey,
        wait: WaitId,
    ) -> Response {
        let waiter = self
            .remove_wait(key, wait, ctx.now)
            .ok_or(LockError::WaitNotFound)?;
        self.end_wait(ctx, key, waiter, WaitEndReason::Cancelled);
        Ok(Reply::WaitCancelled)
    }
}
