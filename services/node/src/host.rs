//! A node process's groups: one write-ahead log shared by all of them, one state machine
//! directory per group, and the router that hands incoming Raft messages to each group.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lock_core::Limits;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Config, SnapshotPolicy};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::group::LockGroup;
use crate::raft::{Entry, LogStore, NodeId, StateMachine};
use crate::transport::{GroupNetwork, Router, Transport};
use crate::wal::{GroupId, LogEngine, Options};

/// Most lock groups one node may host.
pub const MAX_GROUPS: u32 = 1_024;

/// How to run one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id, the same in every group.
    pub id: NodeId,
    /// Where the log and the snapshots live.
    pub data_dir: PathBuf,
    /// Lock groups hosted, numbered `1..=groups`.
    pub groups: u32,
    /// Bounds every group's state machine enforces.
    pub limits: Limits,
    /// Raft timing (heartbeats, elections, snapshots).
    pub raft: Config,
    /// Write-ahead log settings.
    pub wal: Options,
    /// How often to look for groups whose old log keeps segments on disk.
    pub maintenance_interval: Duration,
}

impl NodeConfig {
    /// The production defaults: 16 groups, heartbeats every 150 ms and elections after 1-2 s
    /// of silence (etcd's ratio), snapshots every 10,000 entries.
    pub fn new(id: NodeId, data_dir: PathBuf) -> Self {
        Self {
            id,
            data_dir,
            groups: 16,
            limits: Limits::default(),
            raft: Config {
                heartbeat_interval: 150,
                election_timeout_min: 1_000,
                election_timeout_max: 2_000,
                snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
                max_in_snapshot_log_to_keep: 1_000,
                ..Config::default()
            },
            wal: Options::default(),
            maintenance_interval: Duration::from_secs(1),
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
    groups: BTreeMap<GroupId, Arc<LockGroup>>,
    router: Arc<Router>,
    engine: Arc<LogEngine<Entry>>,
    maintenance: JoinHandle<()>,
}

impl Node {
    /// Opens the node's log and state, and starts every group's Raft over `transport`.
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
        let engine = Arc::new(LogEngine::<Entry>::open(
            &config.data_dir.join("wal"),
            config.wal.clone(),
        )?);
        let router = Arc::new(Router::default());
        let mut groups = BTreeMap::new();
        for id in 1..=config.groups {
            let dir = config.data_dir.join("groups").join(id.to_string());
            let state = StateMachine::open(&dir, config.limits)?;
            let log = LogStore::new(engine.group(id));
            let network = GroupNetwork::new(id, Arc::clone(&transport));
            let group = LockGroup::start(
                config.id,
                id,
                Arc::clone(&raft_config),
                log,
                state,
                network,
                Arc::clone(&clock),
            )
            .await
            .map_err(|e| NodeError::Raft {
                group: id,
                reason: e.to_string(),
            })?;
            router.register(id, group.raft().clone());
            groups.insert(id, Arc::new(group));
        }
        let maintenance = tokio::spawn(release_old_segments(
            Arc::clone(&engine),
            groups.clone(),
            config.maintenance_interval,
        ));
        Ok(Self {
            id: config.id,
            groups,
            router,
            engine,
            maintenance,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Hands incoming Raft messages to this node's groups.
    pub fn router(&self) -> Arc<Router> {
        Arc::clone(&self.router)
    }

    /// The replica of group `id`, if hosted here.
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

    /// Makes `members` the first membership of every group. Run once, on one node, for a
    /// new cluster; groups that already have a membership are left as they are.
    pub async fn initialize(&self, members: BTreeMap<NodeId, BasicNode>) -> Result<(), NodeError> {
        for group in self.groups.values() {
            match group.raft().initialize(members.clone()).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    return Err(NodeError::Raft {
                        group: group.id(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The node ids of every group's voters as this node knows them.
    pub fn voters(&self, group: GroupId) -> BTreeSet<NodeId> {
        self.group(group).map_or_else(BTreeSet::new, |g| {
            g.raft()
                .metrics()
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
        for (id, group) in self.groups {
            self.router.unregister(id);
            group.shutdown().await;
        }
        drop(self.engine);
    }
}

/// Keeps the log's disk use bounded: once more than two segments exist, the groups whose
/// unpurged entries hold the oldest one (typically idle groups, which never reach their
/// snapshot threshold) are snapshotted, then purged up to that snapshot.
async fn release_old_segments(
    engine: Arc<LogEngine<Entry>>,
    groups: BTreeMap<GroupId, Arc<LockGroup>>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        if engine.stats().segments <= 2 {
            continue;
        }
        for id in engine.pinning_groups() {
            let Some(group) = groups.get(&id) else {
                continue;
            };
            let (applied, snapshot) = {
                let m = group.raft().metrics();
                let m = m.borrow();
                (m.last_applied.map(|l| l.index), m.snapshot.map(|l| l.index))
            };
            let trigger = group.raft().trigger();
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
