//! A node process's groups: the meta group (group 0, the shard map) and the lock groups
//! `1..=groups`, one write-ahead log shared by all of them, one state machine directory per
//! group, and the router that hands incoming Raft messages to each group.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lock_core::Limits;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use shard_map::{META_GROUP, MetaCommand, NodeInfo, ShardMap};
use tokio::task::JoinHandle;

use crate::audit::{AuditConfig, AuditStats, Producer, Publisher, Publishing, ensure_topic};
use crate::clock::{Clock, MonotonicClock};
use crate::group::{Group, LockGroup, MetaGroup};
use crate::metrics::{NodeMetrics, Sources, leadership};
use crate::quorum::{QuorumCheck, QuorumWatch};
use crate::raft::{Entry, GroupMachine, LogStore, NodeId, StateMachine, TypeConfig};
use crate::transport::{GroupNetwork, Router, Transport};
use crate::wal::{GroupId, LogEngine, LogHealth, Options};

/// Most lock groups one node may host.
pub const MAX_GROUPS: u32 = shard_map::command::MAX_SHARDS;

/// The region of a node started without one.
pub const DEFAULT_REGION: &str = "local";

/// How to run one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id, the same in every group.
    pub id: NodeId,
    /// Where the log and the snapshots live.
    pub data_dir: PathBuf,
    /// Lock groups hosted, numbered `1..=groups` (the meta group, 0, is always hosted).
    pub groups: u32,
    /// The region this node runs in, recorded in the shard map.
    pub region: String,
    /// Bounds every group's state machine enforces.
    pub limits: Limits,
    /// Raft timing (heartbeats, elections, snapshots).
    pub raft: Config,
    /// Write-ahead log settings.
    pub wal: Options,
    /// How often to look for groups whose old log keeps segments on disk.
    pub maintenance_interval: Duration,
    /// Where the groups' audit events go; `None` publishes nothing (and keeps no outbox).
    pub audit: Option<AuditConfig>,
}

impl NodeConfig {
    /// The production defaults: 16 groups, heartbeats every 200 ms, snapshots every 10,000
    /// entries. openraft draws each replica's election timeout from 500-1,000 ms and adds a
    /// leader lease of the maximum (1,000 ms) before a follower of a known leader campaigns,
    /// so a new election starts 1.5-2 s after the last heartbeat; a leader that no quorum
    /// answered for 750 ms (the middle of the range) stops serving (check-quorum), before
    /// any successor can exist. openraft also bounds each append by the heartbeat interval,
    /// which is why heartbeats are not more frequent.
    /// Heartbeats are sent by the node for all the groups it leads at once (see
    /// [`Node::start`]), not by each group's own timer, so that a peer receives them
    /// together. See docs/decisions/0022-check-quorum-pre-vote-and-failover-timing.md.
    pub fn new(id: NodeId, data_dir: PathBuf) -> Self {
        Self {
            id,
            data_dir,
            groups: 16,
            region: DEFAULT_REGION.to_string(),
            limits: Limits::default(),
            raft: Config {
                heartbeat_interval: 200,
                enable_heartbeat: false,
                enable_elect: false,
                election_timeout_min: 500,
                election_timeout_max: 1_000,
                snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
                max_in_snapshot_log_to_keep: 1_000,
                ..Config::default()
            },
            wal: Options::default(),
            maintenance_interval: Duration::from_secs(1),
            audit: None,
        }
    }

    /// Faster failure detection for tests that crash leaders many times: heartbeats every
    /// 50 ms, elections after 300-600 ms (at about three times the idle CPU).
    pub fn with_fast_elections(mut self) -> Self {
        self.raft.heartbeat_interval = 50;
        self.raft.election_timeout_min = 300;
        self.raft.election_timeout_max = 600;
        self
    }
}

/// Why a node could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration names a bad value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The disk failed (log, snapshots).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A group's Raft failed fatally.
    #[error("group {group}: {reason}")]
    Raft {
        /// The group.
        group: GroupId,
        /// What failed.
        reason: String,
    },
}

/// A running node.
pub struct Node {
    id: NodeId,
    meta: Arc<MetaGroup>,
    groups: BTreeMap<GroupId, Arc<LockGroup>>,
    router: Arc<Router>,
    engine: Arc<LogEngine<Entry>>,
    maintenance: JoinHandle<()>,
    meta_duties: JoinHandle<()>,
    heartbeats: JoinHandle<()>,
    /// The groups' audit publishers (none without a broker).
    publishers: Vec<JoinHandle<()>>,
    audit_stats: Arc<AuditStats>,
    metrics: Arc<NodeMetrics>,
    /// Tasks counting each group's leader changes and elections.
    leadership: Vec<JoinHandle<()>>,
}

impl Node {
    /// Opens the node's log and state, and starts every group's Raft over `transport`.
    /// `clock` is the wall clock: the node reads it once, now, and counts from there with
    /// the monotonic timer ([`crate::clock`]).
    pub async fn start(
        config: NodeConfig,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NodeError> {
        if !(1..=MAX_GROUPS).contains(&config.groups) {
            return Err(NodeError::Config(format!(
                "groups must be in 1..={MAX_GROUPS}, got {}",
                config.groups
            )));
        }
        let raft_config = Arc::new(
            config
                .raft
                .clone()
                .validate()
                .map_err(|e| NodeError::Config(format!("raft: {e}")))?,
        );
        // Leases are durations: the wall clock is read once, here, and never followed again.
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::anchored_on(clock.as_ref()));
        let engine = Arc::new(LogEngine::<Entry>::open(
            &config.data_dir.join("wal"),
            config.wal.clone(),
        )?);
        let router = Arc::new(Router::new(config.id));
        let metrics = Arc::new(
            NodeMetrics::new(config.id, &config.region)
                .map_err(|e| NodeError::Config(format!("metrics: {e}")))?,
        );
        let outbox_limit = config.audit.as_ref().map_or(0, |a| a.backlog_limit.max(1));
        let producer = config
            .audit
            .as_ref()
            .map(Producer::new)
            .transpose()
            .map_err(|e| NodeError::Config(format!("--kafka: {e}")))?;
        let meta_dir = config.data_dir.join("groups").join(META_GROUP.to_string());
        let meta = MetaGroup::start(
            config.id,
            META_GROUP,
            Arc::clone(&raft_config),
            LogStore::new(config.id, engine.group(META_GROUP)),
            StateMachine::open_with(&meta_dir, ShardMap::default(), outbox_limit)?,
            GroupNetwork::new(META_GROUP, Arc::clone(&transport)),
            Arc::clone(&clock),
            metrics.group(META_GROUP),
        )
        .await
        .map_err(|e| NodeError::Raft {
            group: META_GROUP,
            reason: e.to_string(),
        })?;
        router.register(META_GROUP, meta.raft().clone(), Arc::clone(meta.contact()));
        let meta = Arc::new(meta);
        let mut groups = BTreeMap::new();
        for id in 1..=config.groups {
            let dir = config.data_dir.join("groups").join(id.to_string());
            let state = StateMachine::open(&dir, config.limits, outbox_limit)?;
            let log = LogStore::new(config.id, engine.group(id));
            let network = GroupNetwork::new(id, Arc::clone(&transport));
            let group = LockGroup::start(
                config.id,
                id,
                Arc::clone(&raft_config),
                log,
                state,
                network,
                Arc::clone(&clock),
                metrics.group(id),
            )
            .await
            .map_err(|e| NodeError::Raft {
                group: id,
                reason: e.to_string(),
            })?;
            router.register(id, group.raft().clone(), Arc::clone(group.contact()));
            groups.insert(id, Arc::new(group));
        }
        let mut rafts: BTreeMap<GroupId, Raft<TypeConfig>> = groups
            .iter()
            .map(|(id, g): (&GroupId, &Arc<LockGroup>)| (*id, g.raft().clone()))
            .collect();
        rafts.insert(META_GROUP, meta.raft().clone());
        let watched = groups
            .values()
            .map(|g| (g.raft().clone(), Arc::clone(g.quorum())))
            .chain(std::iter::once((
                meta.raft().clone(),
                Arc::clone(meta.quorum()),
            )))
            .collect();
        let heartbeats = tokio::spawn(send_heartbeats(
            watched,
            Arc::clone(&engine),
            Duration::from_millis(raft_config.heartbeat_interval),
            quorum_limit(&raft_config),
            Duration::from_millis(raft_config.election_timeout_max),
        ));
        let maintenance = tokio::spawn(release_old_segments(
            Arc::clone(&engine),
            rafts,
            config.maintenance_interval,
        ));
        let meta_duties = tokio::spawn(initialize_shard_map(
            Arc::clone(&meta),
            config.groups,
            config.region.clone(),
        ));
        let audit_stats = Arc::new(AuditStats::default());
        let mut publishers = Vec::new();
        if let (Some(audit), Some(producer)) = (config.audit.clone(), producer) {
            publishers.push(tokio::spawn(create_topic(audit)));
            let shared = Arc::new(Publishing {
                producer,
                region: config.region.clone(),
                shard_map: meta.state_machine().clone(),
                stats: Arc::clone(&audit_stats),
                batch_seconds: metrics.publish_seconds.clone(),
            });
            publishers.push(publish(&meta, &shared));
            for group in groups.values() {
                publishers.push(publish(group, &shared));
            }
        }
        metrics
            .attach(Sources {
                data_dir: config.data_dir.clone(),
                meta: Arc::downgrade(&meta),
                groups: groups.values().map(Arc::downgrade).collect(),
                log: Arc::downgrade(&engine),
                audit: Arc::clone(&audit_stats),
            })
            .map_err(|e| NodeError::Config(format!("metrics: {e}")))?;
        let leadership = std::iter::once((META_GROUP, meta.raft().clone()))
            .chain(groups.iter().map(|(id, g)| (*id, g.raft().clone())))
            .map(|(id, raft)| tokio::spawn(leadership::follow(metrics.leader_changes(id), raft)))
            .collect();
        Ok(Self {
            id: config.id,
            meta,
            groups,
            router,
            engine,
            maintenance,
            meta_duties,
            heartbeats,
            publishers,
            audit_stats,
            metrics,
            leadership,
        })
    }

    /// The node's audit publishing counters.
    pub fn audit_stats(&self) -> &AuditStats {
        &self.audit_stats
    }

    /// Audit events applied but not yet confirmed by the broker, over this node's
    /// replicas (the meta group's included).
    pub fn audit_backlog(&self) -> usize {
        self.groups
            .values()
            .map(|g| g.state_machine().outbox(|o| o.backlog()))
            .sum::<usize>()
            + self.meta.state_machine().outbox(|o| o.backlog())
    }

    /// The node's metrics (what `/metrics` serves).
    pub fn metrics(&self) -> Arc<NodeMetrics> {
        Arc::clone(&self.metrics)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Hands incoming Raft messages to this node's groups.
    pub fn router(&self) -> Arc<Router> {
        Arc::clone(&self.router)
    }

    /// The replica of the meta group (the shard map).
    pub fn meta(&self) -> Arc<MetaGroup> {
        Arc::clone(&self.meta)
    }

    /// The Raft of group `id` (0 is the meta group), if hosted here.
    pub fn raft(&self, id: GroupId) -> Option<Raft<TypeConfig>> {
        if id == META_GROUP {
            return Some(self.meta.raft().clone());
        }
        self.groups.get(&id).map(|g| g.raft().clone())
    }

    /// The replica of lock group `id`, if hosted here.
    pub fn group(&self, id: GroupId) -> Option<Arc<LockGroup>> {
        self.groups.get(&id).cloned()
    }

    /// Every group hosted here, by id.
    pub fn groups(&self) -> impl Iterator<Item = &Arc<LockGroup>> {
        self.groups.values()
    }

    /// The write-ahead log's counters.
    pub fn log_stats(&self) -> crate::wal::Stats {
        self.engine.stats()
    }

    /// The node's write-ahead log: its health (stalled on a full disk, failed after an
    /// fsync error) and counters.
    pub fn log(&self) -> Arc<LogEngine<Entry>> {
        Arc::clone(&self.engine)
    }

    /// Makes `members` the first membership of every group, the meta group included. Run
    /// once, on one node, for a new cluster; groups that already have a membership are left
    /// as they are. The meta group's first leader then records the shard map.
    pub async fn initialize(&self, members: BTreeMap<NodeId, BasicNode>) -> Result<(), NodeError> {
        let rafts = std::iter::once((META_GROUP, self.meta.raft()))
            .chain(self.groups.iter().map(|(id, g)| (*id, g.raft())));
        for (id, raft) in rafts {
            match raft.initialize(members.clone()).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    return Err(NodeError::Raft {
                        group: id,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The node ids of every group's voters as this node knows them.
    pub fn voters(&self, group: GroupId) -> BTreeSet<NodeId> {
        self.raft(group).map_or_else(BTreeSet::new, |raft| {
            raft.metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect()
        })
    }

    /// Stops every group, then the log (after writing what is queued).
    pub async fn shutdown(self) {
        self.maintenance.abort();
        let _ = self.maintenance.await;
        self.meta_duties.abort();
        let _ = self.meta_duties.await;
        self.heartbeats.abort();
        let _ = self.heartbeats.await;
        for task in self.leadership {
            task.abort();
        }
        for publisher in self.publishers {
            publisher.abort();
            let _ = publisher.await;
        }
        // A group whose Raft waits on the log (saving a vote) cannot stop while the log
        // waits for a full disk: a stalled log is stopped first, and any log still holding
        // the groups after a grace period too. What waits on it then fails, unlogged.
        let engine = Arc::clone(&self.engine);
        let watchdog = tokio::spawn(async move {
            if engine.health() == LogHealth::Healthy {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            }
            engine.stop();
        });
        for (id, group) in self.groups {
            self.router.unregister(id);
            group.shutdown().await;
        }
        self.router.unregister(META_GROUP);
        self.meta.shutdown().await;
        watchdog.abort();
        drop(self.engine);
    }
}

/// Starts `group`'s audit publisher.
fn publish<M: GroupMachine>(group: &Group<M>, shared: &Arc<Publishing>) -> JoinHandle<()> {
    tokio::spawn(
        Publisher {
            group: group.id(),
            raft: group.raft().clone(),
            state: group.state_machine().clone(),
            quorum: Arc::clone(group.quorum()),
            shared: Arc::clone(shared),
        }
        .run(),
    )
}

/// Creates the audit topic if it is missing, retrying until the broker answers (the
/// publishers retry their sends meanwhile).
async fn create_topic(audit: AuditConfig) {
    let mut pause = Duration::from_millis(500);
    while let Err(error) = ensure_topic(&audit).await {
        tracing::warn!(topic = %audit.topic, %error, retry_in = ?pause,
            "cannot make sure the audit topic exists");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// How long a node's groups may take to stop before its log is stopped under them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Keeps the log's disk use bounded: once more than two segments exist, the groups whose
/// unpurged entries hold the oldest one (typically idle groups, which never reach their
/// snapshot threshold) are snapshotted, then purged up to that snapshot.
async fn release_old_segments(
    engine: Arc<LogEngine<Entry>>,
    groups: BTreeMap<GroupId, Raft<TypeConfig>>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        if engine.stats().segments <= 2 {
            continue;
        }
        for id in engine.pinning_groups() {
            let Some(raft) = groups.get(&id) else {
                continue;
            };
            let (applied, snapshot) = {
                let m = raft.metrics();
                let m = m.borrow();
                (m.last_applied.map(|l| l.index), m.snapshot.map(|l| l.index))
            };
            let trigger = raft.trigger();
            let done = match snapshot {
                Some(at) if Some(at) >= applied => trigger.purge_log(at).await,
                _ => trigger.snapshot().await,
            };
            if done.is_err() {
                return;
            }
        }
    }
}

/// How long a leader may go without a quorum's acknowledgement before it stops serving:
/// the middle of the election timeout range, so a leader that is merely slow (one missed
/// heartbeat under load) keeps serving, and one that is cut off stops before a follower of
/// it campaigns (after a leader lease of the range's maximum plus its own timeout).
fn quorum_limit(config: &Config) -> Duration {
    Duration::from_millis(
        config
            .election_timeout_min
            .midpoint(config.election_timeout_max),
    )
}

/// Every `every`, makes each group this node leads send its heartbeat, all in one sweep:
/// the heartbeats of every group bound for one peer leave together and travel in one batch
/// (see `grpc`), instead of one call per group at scattered times. openraft's own per-group
/// heartbeat timer is off (`enable_heartbeat: false`); elections still run on each group's
/// own timer. The same sweep is the check-quorum ([`crate::quorum`]): a group it leads that
/// no quorum acknowledged for `quorum_limit` is marked cut off, and serves nothing until a
/// quorum answers again or a new leader replaces it; after a `lease` of that, it stops
/// heartbeating, so followers that still hear it elect another leader.
async fn send_heartbeats(
    groups: Vec<(Raft<TypeConfig>, Arc<QuorumWatch>)>,
    engine: Arc<LogEngine<Entry>>,
    every: Duration,
    quorum_limit: Duration,
    lease: Duration,
) {
    let mut checks: Vec<QuorumCheck> = groups.iter().map(|_| QuorumCheck::default()).collect();
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_sweep = std::time::Instant::now();
    loop {
        interval.tick().await;
        let now = std::time::Instant::now();
        // A sweep that comes late (this process was starved or paused) sent no heartbeats
        // meanwhile: the silence is its own, so it judges nothing this time.
        let on_time = now.saturating_duration_since(last_sweep) <= every * 2;
        last_sweep = now;
        let log_disk = log_disk_trouble(&engine.health(), every);
        for ((raft, quorum), check) in groups.iter().zip(&mut checks) {
            let leading = {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                if on_time {
                    check.judge(&metrics, quorum, quorum_limit, now, log_disk.as_deref());
                }
                metrics.state == ServerState::Leader
            };
            // A leader whose log cannot persist stops heartbeating at once, so its
            // followers elect a replica that can log. (Until then it still commits what
            // both followers log, which is safe, but it serves nothing new.)
            if leading && !check.silent_for(lease, now) && log_disk.is_none() {
                let _ = raft.trigger().heartbeat().await;
            }
        }
    }
}

/// Why this node's log keeps its leaders from acting as leaders: it failed, or a full disk
/// has stalled it for `limit` (one heartbeat interval: a stall means the disk said "no
/// space", not that it is slow, but space freed by a deleted segment ends a brief one).
/// The text is stable while the trouble lasts, so the watches do not churn.
fn log_disk_trouble(health: &LogHealth, limit: Duration) -> Option<String> {
    match health {
        LogHealth::Healthy => None,
        LogHealth::Stalled { stalled_for, error } => {
            (*stalled_for >= limit).then(|| format!("the disk is full ({error})"))
        }
        LogHealth::Failed { error } => Some(format!("the log failed ({error})")),
    }
}

/// How long the meta group's leader may take to record the first shard map.
const INIT_DEADLINE: Duration = Duration::from_secs(5);

/// Records the first shard map once this node leads a meta group that has a membership but
/// no map yet: `shards` lock groups, every group placed on the meta group's first voters.
/// Nodes start in `region` as far as the map knows until they register themselves.
async fn initialize_shard_map(meta: Arc<MetaGroup>, shards: u32, region: String) {
    let mut metrics = meta.raft().metrics();
    loop {
        let nodes = {
            let m = metrics.borrow_and_update();
            let leading = m.state == ServerState::Leader;
            leading.then(|| {
                m.membership_config
                    .membership()
                    .nodes()
                    .map(|(id, node)| {
                        let info = NodeInfo {
                            addr: node.addr.clone(),
                            region: region.clone(),
                        };
                        (*id, info)
                    })
                    .collect::<BTreeMap<_, _>>()
            })
        };
        if let Some(nodes) = nodes {
            if meta.shard_map().is_initialized() {
                return;
            }
            let init = MetaCommand::Init { shards, nodes };
            match meta.propose_meta(init, INIT_DEADLINE).await {
                Ok(_) => return,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
