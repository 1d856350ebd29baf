//! Leader changes and elections of each group. A replica counts a leader change each time
//! the leader it knows becomes a different node (an election in between, when it knows
//! none, is not a change by itself); elections are counted where this replica starts one
//! ([`crate::election`]).

use openraft::Raft;
use prometheus::{IntCounter, IntCounterVec};

use crate::raft::TypeConfig;

/// The two counter families, labelled by group.
pub struct Counters {
    /// `lockplane_raft_leader_changes_total{group}`.
    pub leader_changes: IntCounterVec,
    /// `lockplane_raft_elections_total{group}`.
    pub elections: IntCounterVec,
}

/// Follows a group's Raft until it stops, counting into `changes` each time the leader
/// it knows becomes another node. Wakes only when the replica's vote, role, leader or
/// membership changes (openraft's server metrics), not on every entry.
pub async fn follow(changes: IntCounter, raft: Raft<TypeConfig>) {
    let mut metrics = raft.server_metrics();
    let mut known = metrics.borrow_and_update().current_leader;
    while metrics.changed().await.is_ok() {
        let leader = metrics.borrow_and_update().current_leader;
        if leader.is_some() && leader != known {
            if known.is_some() {
                changes.inc();
            }
            known = leader;
        }
    }
}
