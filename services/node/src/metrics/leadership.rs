//! Leader changes and elections of each group, counted as this replica's Raft reports its
//! role and the leader it knows.

use openraft::{Raft, ServerState};
use prometheus::IntCounterVec;

use crate::raft::TypeConfig;
use crate::wal::GroupId;

/// The two counter families, labelled by group.
pub struct Counters {
    /// `lockplane_raft_leader_changes_total{group}`.
    pub leader_changes: IntCounterVec,
    /// `lockplane_raft_elections_total{group}`.
    pub elections: IntCounterVec,
}

impl Counters {
    /// Follows group `group`'s Raft until it stops, counting each change of the leader this
    /// replica knows (a leader lost counts too) and each time it becomes a candidate.
    pub async fn follow(
        leader_changes: prometheus::IntCounter,
        elections: prometheus::IntCounter,
        raft: Raft<TypeConfig>,
    ) {
        let mut metrics = raft.metrics();
        let (mut leader, mut state) = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.state)
        };
        while metrics.changed().await.is_ok() {
            let (now_leader, now_state) = {
                let m = metrics.borrow_and_update();
                (m.current_leader, m.state)
            };
            if now_leader != leader {
                leader_changes.inc();
                leader = now_leader;
            }
            if now_state == ServerState::Candidate && state != ServerState::Candidate {
                elections.inc();
            }
            state = now_state;
        }
    }

    /// The counters of group `id`.
    pub fn of(&self, id: GroupId) -> (prometheus::IntCounter, prometheus::IntCounter) {
        let label = id.to_string();
        (
            self.leader_changes.with_label_values(&[&label]),
            self.elections.with_label_values(&[&label]),
        )
    }
}
