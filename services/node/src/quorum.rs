//! Check-quorum: a leader that has not heard from a quorum of its group for an election
//! timeout stops acting as leader. openraft 0.9 keeps such a leader in office until it
//! sees a higher term, which a cut-off or long-paused leader never does, so without this
//! it would hold every request sent to it until the request's deadline. With it, the
//! leader refuses new proposals and reads at once (`UNAVAILABLE`, retry elsewhere) and
//! gives up on the ones in flight (outcome unknown), while the majority elects a new
//! leader. See docs/decisions/0022-check-quorum-pre-vote-and-failover-timing.md.
//!
//! A leader whose node's log cannot make writes durable (a full disk for one heartbeat
//! interval, a failed fsync) is treated the same way: it cannot count itself towards a
//! quorum, and its followers should elect a replica that can
//! (docs/decisions/0023-full-disk-and-fsync-errors.md).

use std::time::{Duration, Instant};

use openraft::{RaftMetrics, ServerState};
use tokio::sync::watch;

use crate::raft::NodeId;

/// Why a replica that leads its group must not act as its leader now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// No quorum acknowledged it for the limit: it may have been replaced.
    NoQuorum,
    /// Its node's log cannot make writes durable (the error says why).
    LogDisk(String),
}

impl Unfit {
    /// Why, for the caller told `UNAVAILABLE`.
    pub fn describe(&self) -> String {
        match self {
            Self::NoQuorum => "it has not heard from a quorum for an election timeout (cut off \
                               or paused)"
                .to_string(),
            Self::LogDisk(why) => format!("its log cannot make writes durable: {why}"),
        }
    }
}

/// Whether this replica, while it leads, may act as leader: it still hears from a quorum
/// of its group and its node's log works. One per group replica, set by the node's
/// heartbeat sweep and read by every proposal and read.
#[derive(Debug)]
pub struct QuorumWatch {
    lost: watch::Sender<Option<Unfit>>,
}

impl Default for QuorumWatch {
    fn default() -> Self {
        Self {
            lost: watch::Sender::new(None),
        }
    }
}

impl QuorumWatch {
    /// True while this replica leads but may not act as leader.
    pub fn is_lost(&self) -> bool {
        self.lost.borrow().is_some()
    }

    /// Why this replica may not act as leader now, if it may not.
    pub fn unfit(&self) -> Option<Unfit> {
        self.lost.borrow().clone()
    }

    /// Resolves once this replica may no longer act as leader (at once if it may not now),
    /// with the reason.
    pub async fn lost(&self) -> Unfit {
        let mut seen = self.lost.subscribe();
        // The sender lives as long as `self`, which outlives this borrow.
        let unfit = seen
            .wait_for(Option::is_some)
            .await
            .map(|unfit| unfit.clone());
        match unfit {
            Ok(unfit) => unfit.unwrap_or(Unfit::NoQuorum),
            Err(_) => std::future::pending().await,
        }
    }

    /// A receiver that sees every change (for loops that sleep while the quorum is lost).
    pub fn subscribe(&self) -> watch::Receiver<Option<Unfit>> {
        self.lost.subscribe()
    }

    fn set(&self, lost: Option<Unfit>) {
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
    /// Judges one group from its latest metrics: lost when this replica leads and either
    /// the newest time a quorum acknowledged it (or, before any acknowledgement, the time
    /// it was first seen leading) is `limit` or more ago, or `log_disk` says why its node's
    /// log cannot make writes durable. Returns whether it is lost.
    pub fn judge(
        &mut self,
        metrics: &RaftMetrics<NodeId, openraft::BasicNode>,
        watch: &QuorumWatch,
        limit: Duration,
        now: Instant,
        log_disk: Option<&str>,
    ) -> bool {
        if metrics.state != ServerState::Leader {
            self.leading_since = None;
            self.lost_since = None;
            watch.set(None);
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
        let unfit = match log_disk {
            Some(why) => Some(Unfit::LogDisk(why.to_string())),
            None => (silent >= limit).then_some(Unfit::NoQuorum),
        };
        let lost = unfit.is_some();
        self.lost_since = if lost {
            Some(self.lost_since.unwrap_or(now))
        } else {
            None
        };
        watch.set(unfit);
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
            t0,
            None,
        ));
        assert!(!watch.is_lost());
        assert!(check.judge(
            &metrics(ServerState::Leader, 2, Some(500)),
            &watch,
            limit,
            t0,
            None,
        ));
        assert!(watch.is_lost());
        assert!(!check.judge(
            &metrics(ServerState::Leader, 2, Some(20)),
            &watch,
            limit,
            t0,
            None,
        ));
        assert!(!watch.is_lost());
    }

    #[test]
    fn a_new_leader_no_one_acknowledged_is_cut_off_after_the_limit() {
        let limit = Duration::from_millis(500);
        let watch = QuorumWatch::default();
        let mut check = QuorumCheck::default();
        let t0 = Instant::now();
        assert!(!check.judge(
            &metrics(ServerState::Leader, 3, None),
            &watch,
            limit,
            t0,
            None
        ));
        let later = t0 + Duration::from_millis(499);
        assert!(!check.judge(
            &metrics(ServerState::Leader, 3, None),
            &watch,
            limit,
            later,
            None
        ));
        let later = t0 + Duration::from_millis(500);
        assert!(check.judge(
            &metrics(ServerState::Leader, 3, None),
            &watch,
            limit,
            later,
            None
        ));
        // A new term starts a new count.
        assert!(!check.judge(
            &metrics(ServerState::Leader, 4, None),
            &watch,
            limit,
            later,
            None
        ));
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
            None,
        );
        assert!(!check.silent_for(lease, t0 + Duration::from_millis(999)));
        check.judge(
            &metrics(ServerState::Leader, 2, Some(1_600)),
            &watch,
            limit,
            t0 + lease,
            None,
        );
        assert!(check.silent_for(lease, t0 + lease));
        check.judge(
            &metrics(ServerState::Leader, 2, Some(5)),
            &watch,
            limit,
            t0 + lease,
            None,
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
            None,
        );
        assert!(watch.is_lost());
        let follower = metrics(ServerState::Follower, 2, None);
        assert!(!check.judge(&follower, &watch, Duration::from_millis(1), now, None));
        assert!(!watch.is_lost());
    }

    #[test]
    fn a_leader_whose_log_cannot_persist_is_unfit_whatever_its_quorum_says() {
        let watch = QuorumWatch::default();
        let mut check = QuorumCheck::default();
        let now = Instant::now();
        let limit = Duration::from_millis(500);
        let healthy = metrics(ServerState::Leader, 2, Some(5));
        assert!(check.judge(
            &healthy,
            &watch,
            limit,
            now,
            Some("No space left on device")
        ));
        assert_eq!(
            watch.unfit(),
            Some(Unfit::LogDisk("No space left on device".into()))
        );
        assert!(!check.judge(&healthy, &watch, limit, now, None));
        assert_eq!(watch.unfit(), None);
        let follower = metrics(ServerState::Follower, 2, None);
        assert!(!check.judge(&follower, &watch, limit, now, Some("full")));
    }
}
