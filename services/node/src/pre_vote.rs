//! What a pre-vote ([`crate::election`]) needs on both sides: the question and its
//! answer, as they travel in the Raft transport, and each replica's [`Contact`] with its
//! leader, from which it answers.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openraft::{LogId, Raft, ServerState};
use serde::{Deserialize, Serialize};

use crate::quorum::QuorumWatch;
use crate::raft::{NodeId, TypeConfig};

/// A candidate's question: would you vote for me in the next term?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// Who asks.
    pub candidate: NodeId,
    /// The candidate's last log entry.
    pub last_log: Option<LogId<NodeId>>,
}

/// A voter's answer to a [`PreVoteRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteResponse {
    /// True when the voter would vote for the candidate now.
    pub granted: bool,
}

/// When this replica last heard from a working leader of its group, shared by the router
/// (which sees the leader's appends arrive) and the election driver.
#[derive(Debug)]
pub struct Contact {
    heard: Mutex<Instant>,
    quorum: Arc<QuorumWatch>,
    /// How long without a leader before this replica would vote for a candidate.
    patience: Duration,
}

impl Contact {
    /// Contact state for one replica whose leadership health `quorum` tracks; it counts as
    /// having heard from a leader just now (a replica that starts waits a full timeout
    /// before it campaigns or grants a pre-vote).
    pub fn new(quorum: Arc<QuorumWatch>, patience: Duration) -> Self {
        Self {
            heard: Mutex::new(Instant::now()),
            quorum,
            patience,
        }
    }

    /// Records that a leader's append was accepted.
    pub fn heard_from_leader(&self) {
        *self.heard.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// When a leader's append was last accepted (or the replica started).
    pub fn last_heard(&self) -> Instant {
        *self.heard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This voter's answer to `request`: yes only when it has no working leader (it has not
    /// heard from one for its patience, and is not one itself, unless cut off) and the
    /// candidate's log is at least as new as its own.
    pub fn answer(&self, raft: &Raft<TypeConfig>, request: &PreVoteRequest) -> PreVoteResponse {
        let leading = raft.metrics().borrow().state == ServerState::Leader;
        let leaderless = if leading {
            self.quorum.is_lost()
        } else {
            self.last_heard().elapsed() >= self.patience
        };
        let mine = raft.data_metrics().borrow().last_log;
        PreVoteResponse {
            granted: leaderless && request.last_log >= mine,
        }
    }
}
