//! Expiry at an entry's time: waits that ran out, sessions and leases that ended, lock-delays
//! that passed, and request ids that aged out of the idempotency window.
//!
//! Deadlines come off the time-ordered index one by one, so an entry pays only for what is
//! due. After a leader change a lease may come due while still covered by the "renewed at
//! the new leader's start" rule; it is then re-dated once and put back, which keeps the
//! leader change itself O(1).

use crate::effect::{LostReason, WaitEndReason};
use crate::machine::{Ctx, Lease, LockMachine, lease_end};
use crate::timers::Due;

impl LockMachine {
    /// Handles, in time order, every deadline at or before the entry's time.
    pub(crate) fn expire_due(&mut self, ctx: &mut Ctx<'_>) {
        let leader_since = self.leader_since;
        while let Some(due) = self.timers.pop_due(ctx.now) {
            match due {
                Due::Wait(key, wait) => {
                    if let Some(waiter) = self.remove_wait(&key, wait, ctx.now) {
                        self.end_wait(ctx, &key, waiter, WaitEndReason::TimedOut);
                    }
                }
                Due::Session(at, id) => {
                    let Some(session) = self.sessions.get_mut(&id) else {
                        continue;
                    };
                    let end = lease_end(leader_since, at, session.ttl_ms);
                    if end > at {
                        session.expires_at = end;
                        self.timers.sessions.insert((end, id));
                    } else {
                        self.end_session(ctx, id, true);
                    }
                }
                Due::Lease(at, key) => {
                    let Some(holder) = self.locks.get_mut(&key).and_then(|s| s.holder.as_mut())
                    else {
                        continue;
                    };
                    let Lease::Own { ttl_ms, .. } = holder.lease else {
                        continue;
                    };
                    let end = lease_end(leader_since, at, ttl_ms);
                    if end > at {
                        holder.lease = Lease::Own {
                            expires_at: end,
                            ttl_ms,
                        };
                        self.timers.leases.insert((end, key));
                    } else if let Some(holder) = self.take_holder(&key) {
                        self.report_lost(ctx, &key, &holder, LostReason::Expired);
                        self.vacate(ctx, &key, holder.lock_delay_ms);
                    }
                }
                Due::Delay(key) => {
                    if let Some(state) = self.locks.get_mut(&key) {
                        state.set_available_at(0);
                    }
                    self.grant_next(ctx, &key);
                }
            }
        }
        self.dedup.expire(ctx.now, self.limits.dedup_window_ms);
    }
}
