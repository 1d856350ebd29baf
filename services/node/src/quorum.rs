//! Check-quorum: a leader that has not heard from a quorum of its group for an election
//! timeout stops acting as leader. openraft 0.9 keeps such a leader in office until it
//! sees a higher term, which a cut-off or long-paused leader never does, so without this
//! it would hold every request sent to it until the request's deadline. With it, the
//! leader refuses new proposals and reads at once (`UNAVAILABLE`, retry elsewhere) and
//! gives up on the ones in flight (outcome unknown), while the majority elects a new
//! leader. See docs/decisions/0022-check-quorum-pre-vote-and-failover-timing.md.

use std::time::{Duration, Instant};

use openraft::{RaftMetrics, ServerState};
use tokio::sync::watch;

use crate::raft::NodeId;

/// Whether this replica, while it leads, still hears from a quorum of its group. One per
/// group replica, set by the node's heartbeat sweep and read by every proposal and read.
#[derive(Debug)]
pub struct QuorumWatch {
    lost: watch::Sender<bool>,
}

impl Default for QuorumWatch {
    fn default() -> Self {
        Self {
            lost: watch::Sender::new(false),
        }
    }
}

impl QuorumWatch {
    /// True while this replica leads but has not heard from a quorum for the limit.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves once the quorum is lost (at once if it is lost now).
    pub async fn lost(&self) {
        let mut seen = self.lost.subscribe();
        // The sender lives as long as `self`, which outlives this borrow.
        let _ = seen.wait_for(|lost| *lost).await;
    }

    /// A receiver that sees every change (for loops that sleep while the quorum is lost).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.lost.subscribe()
    }

    fn set(&self, lost: bool) {
        self.lost.send_if_modified(|now| {
            let changed = *now != lost;
            *now = lost;
            changed
        });
    }
}

/// What the heartbeat sweep keeps per group to judge its quorum.
#[derive(Debug, Default)]
pub struct QuorumCheck {
    /// When this sweep first saw the replica lead in its current term.
    leading_since: Option<(u64, Instant)>,
    /// When the replica was first judged cut off, while it still is.
    lost_since: Option<Instant>,
}

impl QuorumCheck {
    /// Judges one group from its latest metrics: lost when this replica leads and the
    /// newest time a quorum acknowledged it (or, before any acknowledgement, the time it
    /// was first seen leading) is `limit` or more ago. Returns whether it is lost.
    pub fn judge(
        &mut self,
        metrics: &RaftMetrics<NodeId, openraft::BasicNode>,
        watch: &QuorumWatch,
        limit: Duration,
        now: Instant,
    ) -> bool {
        if metrics.state != ServerState::Leader {
            self.leading_since = None;
            self.lost_since = None;
            watch.set(false);
            return false;
        }
        let term = metrics.current_term;
        let since = match self.leading_since {
            Some((t, at)) if t == term => at,
            _ => {
                self.leading_since = Some((term, now));
                now
            }
        };
        let silent = metrics.millis_since_quorum_ack.map_or_else(
            || now.saturating_duration_since(since),
            Duration::from_millis,
        );
        let lost = silent >= limit;
        self.lost_since = if lost {
            Some(self.lost_since.unwrap_or(now))
        } else {
            None
        };
        watch.set(lost);
        lost
    }

    /// True once the replica has been cut off for `lease` or longer: it should stop
    /// sending heartbeats, so that followers that still hear it (when only its way back
    /// from them is broken) stop following it and elect another leader.
    pub fn silent_for(&self, lease: Duration, now: Instant) -> bool {
        self.lost_since
            .is_some_and(|since| now.saturating_duration_since(since) >= lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(
        state: ServerState,
        term: u64,
        ack: Option<u64>,
    ) -> RaftMetrics<NodeId, openraft::BasicNode> {
        let mut m = RaftMetrics::new_initial(1);
        m.state = state;
        m.current_term = term;
        m.millis_since_quorum_ack = ack;
        m
    }

    #[test]
    fn a_leader_is_cut_off_once_no_quorum_answered_for_the_limit() {
        let limit = Duration::from_millis(500);
        let watch = QuorumWatch::default();
        let mut check = QuorumCheck::default();
        let t0 = Instant::now();
        assert!(!check.judge(
            &metrics(ServerState::Leader, 2, Some(10)),
            &watch,
            limit,
            t0
        ));
        assert!(!watch.is_lost());
        assert!(check.judge(
            &metrics(ServerState::Leader, 2, Some(500)),
            &watch,
            limit,
            t0
        ));
        assert!(watch.is_lost());
        assert!(!check.judge(
            &metrics(ServerState::Leader, 2, Some(20)),
            &watch,
            limit,
            t0
        ));
        assert!(!watch.is_lost());
    }

    #[test]
    fn a_new_leader_no_one_acknowledged_is_cut_off_after_the_limit() {
        let limit = Duration::from_millis(500);
        let watch = QuorumWatch::default();
        let mut check = QuorumCheck::default();
        let t0 = Instant::now();
        assert!(!check.judge(&metrics(ServerState::Leader, 3, None), &watch, limit, t0));
        let later = t0 + Duration::from_millis(499);
        assert!(!check.judge(&metrics(ServerState::Leader, 3, None), &watch, limit, later));
        let later = t0 + Duration::from_millis(500);
        assert!(check.judge(&metrics(ServerState::Leader, 3, None), &watch, limit, later));
        // A new term starts a new count.
        assert!(!check.judge(&metrics(ServerState::Leader, 4, None), &watch, limit, later));
    }

    #[test]
    fn a_leader_cut_off_for_a_lease_stops_heartbeating() {
        let limit = Duration::from_millis(500);
        let lease = Duration::from_millis(1_000);
        let watch = QuorumWatch::default();
        let mut check = QuorumCheck::default();
        let t0 = Instant::now();
        check.judge(
            &metrics(ServerState::Leader, 2, Some(600)),
            &watch,
            limit,
            t0,
        );
        assert!(!check.silent_for(lease, t0 + Duration::from_millis(999)));
        check.judge(
            &metrics(ServerState::Leader, 2, Some(1_600)),
            &watch,
            limit,
            t0 + lease,
        );
        assert!(check.silent_for(lease, t0 + lease));
        check.judge(
            &metrics(ServerState::Leader, 2, Some(5)),
            &watch,
            limit,
            t0 + lease,
        );
        assert!(!check.silent_for(lease, t0 + lease));
    }

    #[test]
    fn a_follower_is_never_cut_off() {
        let watch = QuorumWatch::default();
        let mut check = QuorumCheck::default();
        let now = Instant::now();
        check.judge(
            &metrics(ServerState::Leader, 1, Some(9_999)),
            &watch,
            Duration::from_millis(1),
            now,
        );
        assert!(watch.is_lost());
        let follower = metrics(ServerState::Follower, 2, None);
        assert!(!check.judge(&follower, &watch, Duration::from_millis(1), now));
        assert!(!watch.is_lost());
    }
}
