//! Elections with a pre-vote round (Raft thesis §9.6), driven here rather than by openraft
//! 0.9, which has none: openraft's own election timer is off (`enable_elect: false`), and
//! a follower that has not heard from a leader for a randomized election timeout first asks
//! the group's voters whether they would vote for it. Only when a majority would (they too
//! have lost the leader, and its log is at least as new as theirs) does it start a real
//! election, with a new term.
//!
//! Without the round, a node cut off from its group (partitioned, or paused like a long GC
//! pause) campaigns again and again, raising its term each time; when it comes back, its
//! term makes every working leader it follows step down, and every group it is in stops
//! for another election. With it, a node that cannot win never raises its term, and its
//! return disturbs nothing. See docs/decisions/0022-check-quorum-pre-vote-and-failover-timing.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{Raft, ServerState};

use crate::pre_vote::{Contact, PreVoteRequest, PreVoteResponse};
use crate::raft::{NodeId, TypeConfig};
use crate::transport::{RaftRequest, RaftResponse, Transport};
use crate::wal::GroupId;

/// How one group's elections are timed.
#[derive(Debug, Clone, Copy)]
pub struct ElectionTiming {
    /// The shortest randomized election timeout.
    pub min: Duration,
    /// The longest (exclusive).
    pub max: Duration,
    /// How long a voter keeps following a leader it heard from (openraft's leader lease):
    /// a real election cannot win before it has passed at a majority.
    pub lease: Duration,
}

/// A different election timeout each round, in `[min, max)`, so that two replicas that
/// collided once are unlikely to collide again.
fn draw(timing: &ElectionTiming, node: NodeId, group: GroupId, round: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(nanos) ^ (node << 40) ^ (u64::from(group) << 20) ^ round;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let span = timing.max.saturating_sub(timing.min).as_millis().max(1) as u64;
    timing.min + Duration::from_millis(x % span)
}

/// Runs one replica's elections until the group stops: waits until no leader was heard
/// from for the lease plus a randomized timeout (drawn anew after each attempt), asks the
/// voters for a pre-vote, and starts an election only when a majority grants it. Wakes at
/// least every `timing.min` to see leadership and membership changes.
pub async fn drive(
    node: NodeId,
    group: GroupId,
    raft: Raft<TypeConfig>,
    contact: Arc<Contact>,
    transport: Arc<dyn Transport>,
    timing: ElectionTiming,
    elections: prometheus::IntCounter,
) {
    let mut round = 0u64;
    let mut wait = draw(&timing, node, group, round);
    let mut last_try: Option<Instant> = None;
    loop {
        let (voters, me_voter, leading) = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            let voters: Vec<(NodeId, String)> = membership
                .voter_ids()
                .filter(|id| *id != node)
                .filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())))
                .collect();
            let me_voter = membership.voter_ids().any(|id| id == node);
            (voters, me_voter, m.state == ServerState::Leader)
        };
        if leading {
            // A leader is its own contact: once it steps down, it waits a full lease (and
            // refuses pre-votes for as long) like any follower that just heard a leader.
            contact.heard_from_leader();
            tokio::time::sleep(timing.min).await;
            continue;
        }
        if !me_voter {
            tokio::time::sleep(timing.min).await;
            continue;
        }
        // The first campaign after losing a leader waits out the voters' lease too; a
        // campaign that failed tries again after a new timeout.
        let since = match last_try {
            Some(at) if at > contact.last_heard() => at,
            _ => contact.last_heard() + timing.lease,
        };
        let due = since + wait;
        let now = Instant::now();
        if now < due {
            tokio::time::sleep_until((due.min(now + timing.min)).into()).await;
            continue;
        }
        let asked = Instant::now();
        last_try = Some(asked);
        round += 1;
        wait = draw(&timing, node, group, round);
        let request = PreVoteRequest {
            candidate: node,
            last_log: raft.data_metrics().borrow().last_log,
        };
        // A majority of every voter, this replica's own vote counted.
        let needed = voters.len().div_ceil(2);
        if !ask(&voters, group, &request, &transport, timing.min, needed).await {
            continue;
        }
        // A leader may have been elected (and heard from) while the voters answered; a
        // new term now would only depose it.
        let still_leaderless =
            contact.last_heard() < asked && raft.metrics().borrow().state != ServerState::Leader;
        if still_leaderless {
            elections.inc();
            if raft.trigger().elect().await.is_err() {
                return;
            }
        }
    }
}

/// Sends the pre-vote to every voter at once; true as soon as `needed` of them granted it
/// (this replica's own vote is counted by the caller), false when too many refused or
/// did not answer within `patience`.
async fn ask(
    voters: &[(NodeId, String)],
    group: GroupId,
    request: &PreVoteRequest,
    transport: &Arc<dyn Transport>,
    patience: Duration,
    needed: usize,
) -> bool {
    if needed == 0 {
        return true;
    }
    let mut asks = tokio::task::JoinSet::new();
    for (id, addr) in voters {
        let sent = transport.send(*id, addr, group, RaftRequest::PreVote(request.clone()));
        asks.spawn(async move {
            matches!(
                tokio::time::timeout(patience, sent).await,
                Ok(Ok(RaftResponse::PreVote(PreVoteResponse { granted: true })))
            )
        });
    }
    let mut granted = 0;
    while let Some(answer) = asks.join_next().await {
        granted += usize::from(answer.unwrap_or(false));
        if granted >= needed {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_drawn_anew_within_the_range() {
        let timing = ElectionTiming {
            min: Duration::from_millis(500),
            max: Duration::from_millis(1_000),
            lease: Duration::from_millis(1_000),
        };
        let draws: std::collections::BTreeSet<Duration> =
            (0..50).map(|round| draw(&timing, 1, 2, round)).collect();
        assert!(draws.len() > 10, "{draws:?}");
        assert!(draws.iter().all(|d| *d >= timing.min && *d < timing.max));
    }
}
