//! Keeping a place in a queue across calls: a queued caller's repeated acquire renews its
//! wait (like a holder's repeated acquire renews its lease), and a caller that goes away
//! abandons the wait only if no later call renewed it. A client can so wait longer than one
//! call may (`Limits::max_wait_ms`) without ever losing its place: it renews before the
//! deadline it knows, then lets the older call go.

use crate::error::LockError;
use crate::machine::{Ctx, LockMachine};
use crate::reply::{Reply, Response};
use crate::types::{LockKey, Millis, WaitId};

impl LockMachine {
    /// Renews the queued `wait` on `key` to end no earlier than `wait_ms` from now (a
    /// deadline never moves earlier); its place in the queue is unchanged. The reply's
    /// deadline is the one this call asked for, which it abandons with: if another call
    /// keeps the wait longer, this one's going leaves it queued. `None` when the wait is not
    /// queued.
    pub(crate) fn renew_wait(
        &mut self,
        ctx: &Ctx<'_>,
        key: &LockKey,
        wait: WaitId,
        wait_ms: Millis,
    ) -> Option<Reply> {
        let position = self.queue_position(key, wait)?;
        let waiter = self.locks.get_mut(key)?.waiter_mut(wait)?;
        let old = waiter.deadline;
        let asked = ctx.now.saturating_add(wait_ms);
        if asked > old {
            waiter.deadline = asked;
            self.timers.waits.remove(&(old, key.clone(), wait));
            self.timers.waits.insert((asked, key.clone(), wait));
        }
        Some(Reply::Queued {
            wait,
            position,
            deadline: asked,
        })
    }

    /// The caller that knew `wait` to end at `deadline` is gone: the wait leaves the queue
    /// (as a cancel) unless it was renewed past `deadline` since.
    pub(crate) fn abandon_wait(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &LockKey,
        wait: WaitId,
        deadline: Millis,
    ) -> Response {
        let current = self
            .locks
            .get_mut(key)
            .and_then(|state| state.waiter_mut(wait))
            .map(|waiter| waiter.deadline)
            .ok_or(LockError::WaitNotFound)?;
        if current > deadline {
            return Ok(Reply::WaitRenewed { deadline: current });
        }
        self.cancel_wait(ctx, key, wait)
    }
}
