//! A group replica on this node: its openraft `Raft`, its state machine, and the leader's
//! duties (ticking expiry exactly when the machine says something is due). Lock groups are
//! [`LockGroup`]s; the meta group, which replicates the shard map, is a [`MetaGroup`].

use std::sync::Arc;
use std::time::Duration;

use lock_core::{Command, LockMachine, Proposal, Response};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{Config, Raft, ServerState};
use shard_map::{MetaCommand, MetaError, MetaReply, ShardMap};
use tokio::task::JoinHandle;

use crate::clock::{Clock, GroupClock};
use crate::election::{self, ElectionTiming};
use crate::pre_vote::Contact;
use crate::quorum::QuorumWatch;
use crate::raft::{GroupMachine, LogStore, NodeId, Reply, Request, StateMachine, TypeConfig};
use crate::transport::GroupNetwork;
use crate::wal::GroupId;

/// Why a proposal was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This node does not lead the group; retry at the leader, if one is known.
    #[error("not the leader of group {group}")]
    NotLeader {
        /// The group.
        group: GroupId,
        /// The leader this node knows of.
        leader: Option<NodeId>,
        /// That leader's address.
        leader_addr: Option<String>,
    },
    /// The group cannot commit now (no quorum, shutting down); retry later.
    #[error("group {group} is unavailable: {reason}")]
    Unavailable {
        /// The group.
        group: GroupId,
        /// What failed.
        reason: String,
    },
}

/// What one group replica records as it works (registered in the node's metrics).
#[derive(Clone)]
pub struct GroupMetrics {
    /// Seconds from proposing a command to its reply.
    pub proposal_seconds: prometheus::Histogram,
    /// Elections this replica started (`lockplane_raft_elections_total{group}`).
    pub elections: prometheus::IntCounter,
}

/// One group replica hosted by this node.
pub struct Group<M = LockMachine> {
    id: GroupId,
    raft: Raft<TypeConfig>,
    state: StateMachine<M>,
    clock: Arc<GroupClock>,
    quorum: Arc<QuorumWatch>,
    contact: Arc<Contact>,
    duties: JoinHandle<()>,
    elections: JoinHandle<()>,
    /// Seconds from proposal to reply, for the node's metrics.
    proposal_seconds: prometheus::Histogram,
}

/// A lock group replica.
pub type LockGroup = Group<LockMachine>;

/// A replica of the meta group (group 0), which replicates the shard map.
pub type MetaGroup = Group<ShardMap>;

impl<M: GroupMachine> Group<M> {
    /// Starts the group's Raft over its log store and state machine, the leader duties and
    /// the elections ([`crate::election`]), recording into `metrics`.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        node: NodeId,
        id: GroupId,
        config: Arc<Config>,
        log: LogStore,
        state: StateMachine<M>,
        network: GroupNetwork,
        clock: Arc<dyn Clock>,
        metrics: GroupMetrics,
    ) -> Result<Self, openraft::error::Fatal<NodeId>> {
        let transport = network.transport();
        let timing = ElectionTiming {
            min: Duration::from_millis(config.election_timeout_min),
            max: Duration::from_millis(config.election_timeout_max),
            lease: Duration::from_millis(config.election_timeout_max),
        };
        let raft = Raft::new(node, config, network, log, state.clone()).await?;
        let clock = Arc::new(GroupClock::new(clock, state.applied_clock()));
        let quorum = Arc::new(QuorumWatch::default());
        // A voter grants a pre-vote only once openraft would grant the real vote too.
        let contact = Arc::new(Contact::new(Arc::clone(&quorum), timing.lease));
        let duties = tokio::spawn(leader_duties(
            raft.clone(),
            state.clone(),
            Arc::clone(&clock),
            Arc::clone(&quorum),
        ));
        let elections = tokio::spawn(election::drive(
            node,
            id,
            raft.clone(),
            Arc::clone(&contact),
            transport,
            timing,
            metrics.elections,
        ));
        Ok(Self {
            id,
            raft,
            state,
            clock,
            quorum,
            contact,
            duties,
            elections,
            proposal_seconds: metrics.proposal_seconds,
        })
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// The group's Raft handle (membership, metrics, incoming RPCs).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Whether this replica, while it leads, still hears from a quorum (set by the node's
    /// heartbeat sweep).
    pub fn quorum(&self) -> &Arc<QuorumWatch> {
        &self.quorum
    }

    /// When this replica last heard from its leader (for the router and pre-votes).
    pub fn contact(&self) -> &Arc<Contact> {
        &self.contact
    }

    /// The group's state machine (status reads, applied effects).
    pub fn state_machine(&self) -> &StateMachine<M> {
        &self.state
    }

    /// The group's time at this replica, as proposals are stamped with it (for status
    /// reads).
    pub fn now_ms(&self) -> lock_core::Millis {
        self.clock.now_ms()
    }

    /// Fails with `NotLeader` (naming the leader this node knows of) unless this replica
    /// leads the group now.
    pub fn check_leader(&self) -> Result<(), ProposeError> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.state == ServerState::Leader {
            return self.check_quorum();
        }
        let leader = metrics.current_leader;
        let leader_addr = leader.and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())
        });
        Err(ProposeError::NotLeader {
            group: self.id,
            leader,
            leader_addr,
        })
    }

    /// Fails with `Unavailable` while this replica leads but may not act as leader: it has
    /// not heard from a quorum (it may have been replaced, and nothing it proposes can
    /// commit), or its node's log cannot make writes durable.
    fn check_quorum(&self) -> Result<(), ProposeError> {
        if let Some(unfit) = self.quorum.unfit() {
            return Err(ProposeError::Unavailable {
                group: self.id,
                reason: format!(
                    "this node leads the group but {}; ask another node",
                    unfit.describe()
                ),
            });
        }
        Ok(())
    }

    /// Waits until this replica has applied everything committed before the call, after
    /// confirming with a quorum that it still leads (a read index): reads of the state
    /// machine after it are linearizable.
    pub async fn read_barrier(&self, deadline: Duration) -> Result<(), ProposeError> {
        self.check_quorum()?;
        let confirmed = tokio::time::timeout(deadline, self.raft.ensure_linearizable()).await;
        match confirmed {
            Err(_) => Err(ProposeError::Unavailable {
                group: self.id,
                reason: format!("leadership not confirmed within {deadline:?}"),
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)))) => {
                Err(ProposeError::NotLeader {
                    group: self.id,
                    leader: forward.leader_id,
                    leader_addr: forward.leader_node.map(|n| n.addr),
                })
            }
            Ok(Err(e)) => Err(ProposeError::Unavailable {
                group: self.id,
                reason: e.to_string(),
            }),
        }
    }

    /// Proposes `request` and waits until it is applied, for at most `deadline`.
    /// `Unavailable` after the deadline means the outcome is unknown (a leader cut off
    /// from its majority cannot commit, but the entry may still commit if the leader
    /// recovers): retry idempotently. A leader cut off from its quorum refuses at once, and
    /// gives up on a proposal in flight as soon as it finds itself cut off (outcome
    /// unknown).
    pub async fn propose_request(
        &self,
        request: Request,
        deadline: Duration,
    ) -> Result<Reply, ProposeError> {
        self.check_quorum()?;
        let started = std::time::Instant::now();
        let written = tokio::select! {
            written = tokio::time::timeout(deadline, self.raft.client_write(request)) => written,
            unfit = self.quorum.lost() => {
                return Err(ProposeError::Unavailable {
                    group: self.id,
                    reason: format!(
                        "this node stopped acting as leader before the proposal committed \
                         ({}); the outcome is not known (retry with the same request)",
                        unfit.describe()
                    ),
                });
            }
        };
        let Ok(written) = written else {
            return Err(ProposeError::Unavailable {
                group: self.id,
                reason: format!("not committed within {deadline:?}"),
            });
        };
        match written {
            Ok(written) => {
                self.proposal_seconds
                    .observe(started.elapsed().as_secs_f64());
                Ok(written.data)
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(ProposeError::NotLeader {
                    group: self.id,
                    leader: forward.leader_id,
                    leader_addr: forward.leader_node.map(|n| n.addr),
                })
            }
            Err(e) => Err(ProposeError::Unavailable {
                group: self.id,
                reason: e.to_string(),
            }),
        }
    }

    /// Stops the leader duties and the group's Raft; later proposals fail.
    pub async fn shutdown(&self) {
        self.duties.abort();
        self.elections.abort();
        let _ = self.raft.shutdown().await;
    }
}

impl LockGroup {
    /// Proposes `command` stamped with this node's clock and waits until it is applied, for
    /// at most `deadline` (see [`Group::propose_request`]; retry with the same
    /// `request_id`).
    pub async fn propose(
        &self,
        command: Command,
        deadline: Duration,
    ) -> Result<Response, ProposeError> {
        let proposal = Proposal::new(self.clock.now_ms(), command);
        match self
            .propose_request(Request::Lock(proposal), deadline)
            .await?
        {
            Reply::Lock(response) => Ok(response),
            other => Err(misrouted(self.id, &other)),
        }
    }
}

impl MetaGroup {
    /// Proposes a change to the shard map and waits until it is applied.
    pub async fn propose_meta(
        &self,
        command: MetaCommand,
        deadline: Duration,
    ) -> Result<Result<MetaReply, MetaError>, ProposeError> {
        match self
            .propose_request(Request::Meta(command), deadline)
            .await?
        {
            Reply::Meta(response) => Ok(response),
            other => Err(misrouted(self.id, &other)),
        }
    }

    /// The shard map as this replica has applied it.
    pub fn shard_map(&self) -> ShardMap {
        self.state.read(Clone::clone)
    }
}

/// A reply of the other group kind: a routing bug, reported rather than trusted.
fn misrouted(group: GroupId, reply: &Reply) -> ProposeError {
    ProposeError::Unavailable {
        group,
        reason: format!("request answered by the wrong kind of group: {reply:?}"),
    }
}

/// How long to wait before retrying a tick that failed (leadership lost, no quorum).
const TICK_RETRY: Duration = Duration::from_millis(20);

/// How long a tick may take to commit before the duties look at leadership again (a
/// leader cut off from its majority cannot commit it).
const TICK_DEADLINE: Duration = Duration::from_secs(1);

/// While this node leads the group, proposes a `Tick` whenever the state machine's next
/// deadline arrives and no other entry has carried the time past it. Sleeps otherwise: no
/// polling, so idle groups cost nothing here.
async fn leader_duties<M: GroupMachine>(
    raft: Raft<TypeConfig>,
    state: StateMachine<M>,
    clock: Arc<GroupClock>,
    quorum: Arc<QuorumWatch>,
) {
    let mut metrics = raft.metrics();
    let mut cut_off = quorum.subscribe();
    let mut due = state.watch_due();
    loop {
        let leading = metrics.borrow().state == ServerState::Leader && cut_off.borrow().is_none();
        if !leading {
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                _ = cut_off.changed() => {}
            }
            continue;
        }
        let now = clock.now_ms();
        let next = *due.borrow_and_update();
        match next {
            Some(at) if at <= now => {
                let tick = Request::Lock(Proposal::new(now, Command::Tick));
                let committed = tokio::time::timeout(TICK_DEADLINE, raft.client_write(tick)).await;
                if !matches!(committed, Ok(Ok(_))) {
                    tokio::time::sleep(TICK_RETRY).await;
                }
            }
            _ => {
                let sleep = next.map(|at| Duration::from_millis(at - now));
                tokio::select! {
                    changed = metrics.changed() => if changed.is_err() { return },
                    _ = due.changed() => {}
                    _ = async {
                        match sleep {
                            Some(d) => tokio::time::sleep(d).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
            }
        }
    }
}
