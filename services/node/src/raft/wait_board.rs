//! Hands the outcome of a queued acquire (granted, or left the queue) to the callers
//! waiting for it on this node: a direct push per wait, so a release wakes exactly the next
//! waiter and no caller scans the effects of every applied entry. A wait usually has one
//! caller; it has two for a moment when a client renews a long wait with a new call before
//! letting the older one go.
//!
//! An outcome can be applied before a caller learns its wait id (the entry that queues it
//! and the entry that grants it may be applied in one batch, and a renewing call may watch
//! after the grant reached the older call), so outcomes are kept for a while: the last
//! [`RECENT`] of them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use lock_core::{FencingToken, Millis, SessionId, WaitEndReason, WaitId};
use tokio::sync::oneshot;

/// How many unclaimed outcomes are remembered.
const RECENT: usize = 65_536;

/// How a queued acquire ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The caller holds the lock.
    Granted {
        /// The grant's fencing token.
        token: FencingToken,
        /// The lease length.
        ttl_ms: Millis,
        /// The session the lock is bound to.
        session: Option<SessionId>,
    },
    /// The wait left the queue without a grant.
    Ended(WaitEndReason),
}

#[derive(Default)]
struct Board {
    waiting: HashMap<WaitId, Vec<oneshot::Sender<WaitOutcome>>>,
    recent: HashMap<WaitId, WaitOutcome>,
    order: VecDeque<WaitId>,
}

/// The waits callers on this node are blocked on, and recent unclaimed outcomes.
#[derive(Default)]
pub struct WaitBoard {
    board: Mutex<Board>,
}

impl WaitBoard {
    /// The outcome of `wait`, delivered once it is applied (at once if it already was).
    pub fn watch(&self, wait: WaitId) -> oneshot::Receiver<WaitOutcome> {
        let (tx, rx) = oneshot::channel();
        let mut board = self.lock();
        match board.recent.get(&wait) {
            Some(outcome) => {
                let _ = tx.send(*outcome);
            }
            None => board.waiting.entry(wait).or_default().push(tx),
        }
        rx
    }

    /// Stops delivering to callers of `wait` that gave up (dropped their receiver).
    pub fn forget(&self, wait: WaitId) {
        let mut board = self.lock();
        if let Some(callers) = board.waiting.get_mut(&wait) {
            callers.retain(|tx| !tx.is_closed());
            if callers.is_empty() {
                board.waiting.remove(&wait);
            }
        }
    }

    /// Delivers an applied outcome to its callers and keeps it for any that asks later.
    pub fn resolve(&self, wait: WaitId, outcome: WaitOutcome) {
        let mut board = self.lock();
        for tx in board.waiting.remove(&wait).into_iter().flatten() {
            let _ = tx.send(outcome);
        }
        if board.order.len() == RECENT {
            if let Some(oldest) = board.order.pop_front() {
                board.recent.remove(&oldest);
            }
        }
        board.order.push_back(wait);
        board.recent.insert(wait, outcome);
    }

    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRANT: WaitOutcome = WaitOutcome::Granted {
        token: FencingToken(7),
        ttl_ms: 1_000,
        session: None,
    };

    #[test]
    fn an_outcome_reaches_a_caller_that_asked_before_or_after() {
        let board = WaitBoard::default();
        let mut before = board.watch(WaitId(1));
        board.resolve(WaitId(1), GRANT);
        assert_eq!(before.try_recv(), Ok(GRANT));

        board.resolve(WaitId(2), WaitOutcome::Ended(WaitEndReason::TimedOut));
        let mut after = board.watch(WaitId(2));
        assert_eq!(
            after.try_recv(),
            Ok(WaitOutcome::Ended(WaitEndReason::TimedOut))
        );
    }

    #[test]
    fn unclaimed_outcomes_are_bounded() {
        let board = WaitBoard::default();
        for i in 0..(RECENT as u64 + 10) {
            board.resolve(WaitId(i), GRANT);
        }
        assert!(board.watch(WaitId(0)).try_recv().is_err());
        assert_eq!(board.watch(WaitId(RECENT as u64 + 9)).try_recv(), Ok(GRANT));
        let board = board.lock();
        assert!(board.recent.len() <= RECENT && board.order.len() <= RECENT);
    }

    #[test]
    fn a_forgotten_wait_keeps_nothing() {
        let board = WaitBoard::default();
        let rx = board.watch(WaitId(3));
        drop(rx);
        board.forget(WaitId(3));
        assert!(board.lock().waiting.is_empty());
    }

    #[test]
    fn every_caller_of_a_wait_gets_its_outcome_and_one_giving_up_leaves_the_other() {
        let board = WaitBoard::default();
        let older = board.watch(WaitId(4));
        let mut newer = board.watch(WaitId(4));
        drop(older);
        board.forget(WaitId(4));
        board.resolve(WaitId(4), GRANT);
        assert_eq!(newer.try_recv(), Ok(GRANT));
        assert_eq!(
            board.watch(WaitId(4)).try_recv(),
            Ok(GRANT),
            "kept for late callers"
        );
    }
}
