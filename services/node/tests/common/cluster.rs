//! A cluster of real nodes (real log and snapshots in temp dirs) in one process, over the
//! fault-injecting in-process network.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lock_core::{Command, LockKey, LockStatus, Response};
use lockplane_node::audit::AuditConfig;
use lockplane_node::clock::{Clock, ShiftedClock, SystemClock};
use lockplane_node::group::{LockGroup, ProposeError};
use lockplane_node::host::{Node, NodeConfig};
use lockplane_node::raft::NodeId;
use lockplane_node::wal::GroupId;
use openraft::BasicNode;
use tokio::time::Instant;

use super::TempDir;
use super::net::Net;

pub struct Cluster {
    pub net: Arc<Net>,
    nodes: BTreeMap<NodeId, Option<Node>>,
    groups: u32,
    configure: fn(&mut NodeConfig),
    dir: TempDir,
    /// Data directories chosen by the test (a small disk it fills), by node.
    data_dirs: BTreeMap<NodeId, std::path::PathBuf>,
    /// Each node's wall clock, which the test may jump.
    walls: BTreeMap<NodeId, Arc<ShiftedClock>>,
    /// Where every node publishes its audit events, if anywhere.
    audit: Option<AuditConfig>,
}

impl Cluster {
    /// Starts `n` nodes hosting `groups` groups each and initializes them as one cluster.
    pub async fn start(name: &str, n: u64, groups: u32) -> Self {
        Self::start_with(name, n, groups, |_| {}).await
    }

    /// [`Cluster::start`] with every node's configuration adjusted by `configure`.
    pub async fn start_with(
        name: &str,
        n: u64,
        groups: u32,
        configure: fn(&mut NodeConfig),
    ) -> Self {
        Self::start_on(name, n, groups, configure, BTreeMap::new()).await
    }

    /// [`Cluster::start_with`], keeping the nodes named in `data_dirs` in those directories.
    pub async fn start_on(
        name: &str,
        n: u64,
        groups: u32,
        configure: fn(&mut NodeConfig),
        data_dirs: BTreeMap<NodeId, std::path::PathBuf>,
    ) -> Self {
        Self::start_full(name, n, groups, configure, data_dirs, None).await
    }

    /// [`Cluster::start_with`], every node publishing its audit events as `audit` says.
    pub async fn start_audited(
        name: &str,
        n: u64,
        groups: u32,
        configure: fn(&mut NodeConfig),
        audit: AuditConfig,
    ) -> Self {
        Self::start_full(name, n, groups, configure, BTreeMap::new(), Some(audit)).await
    }

    async fn start_full(
        name: &str,
        n: u64,
        groups: u32,
        configure: fn(&mut NodeConfig),
        data_dirs: BTreeMap<NodeId, std::path::PathBuf>,
        audit: Option<AuditConfig>,
    ) -> Self {
        let mut cluster = Cluster {
            net: Arc::new(Net::default()),
            nodes: BTreeMap::new(),
            groups,
            configure,
            dir: TempDir::new(name),
            data_dirs,
            walls: BTreeMap::new(),
            audit,
        };
        for id in 1..=n {
            cluster.boot(id).await;
        }
        let members: BTreeMap<NodeId, BasicNode> = (1..=n)
            .map(|id| (id, BasicNode::new(format!("node-{id}"))))
            .collect();
        cluster.node(1).initialize(members).await.unwrap();
        cluster
    }

    async fn boot(&mut self, id: NodeId) {
        let data_dir = self
            .data_dirs
            .get(&id)
            .cloned()
            .unwrap_or_else(|| self.dir.path().join(format!("node-{id}")));
        let mut config = NodeConfig::new(id, data_dir).with_fast_elections();
        config.groups = self.groups;
        config.audit.clone_from(&self.audit);
        (self.configure)(&mut config);
        let wall = Arc::clone(self.walls.entry(id).or_default());
        let node = Node::start(config, self.net.endpoint(id), wall)
            .await
            .unwrap();
        self.net.attach(id, node.router());
        self.nodes.insert(id, Some(node));
    }

    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes[&id].as_ref().expect("node is running")
    }

    /// Node `id`'s wall clock: jump it with [`ShiftedClock::set_offset_ms`].
    pub fn wall(&self, id: NodeId) -> &ShiftedClock {
        &self.walls[&id]
    }

    pub fn running(&self) -> Vec<NodeId> {
        super::running(&self.nodes)
    }

    /// Kills node `id` as a crash would: it drops off the network and stops; its disk stays.
    pub async fn crash(&mut self, id: NodeId) {
        self.net.detach(id);
        if let Some(node) = self.nodes.get_mut(&id).and_then(Option::take) {
            node.shutdown().await;
        }
    }

    /// Starts node `id` again from its disk, or for the first time (not yet a member of
    /// any group: add it with [`Cluster::add_voter`]).
    pub async fn restart(&mut self, id: NodeId) {
        self.boot(id).await;
    }

    /// Makes node `id` a voter of every group (as a learner first, caught up), and removes
    /// `remove` from every group's voters, through each group's leader.
    pub async fn change_voters(&self, add: NodeId, remove: NodeId) {
        for group in 1..=self.groups {
            let leader = self.node(self.leader(group).await).group(group).unwrap();
            leader
                .raft()
                .add_learner(add, BasicNode::new(format!("node-{add}")), true)
                .await
                .unwrap();
            let mut voters: std::collections::BTreeSet<NodeId> = leader
                .raft()
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect();
            voters.insert(add);
            voters.remove(&remove);
            leader
                .raft()
                .change_membership(voters, false)
                .await
                .unwrap();
        }
    }

    /// The running node that leads `group` in the highest term now, if any.
    pub fn current_leader(&self, group: GroupId) -> Option<NodeId> {
        super::leader_among(
            self.running().into_iter().map(|id| (id, self.node(id))),
            group,
        )
    }

    /// [`Cluster::current_leader`], waiting up to 10 s for one.
    pub async fn leader(&self, group: GroupId) -> NodeId {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(id) = self.current_leader(group) {
                return id;
            }
            assert!(Instant::now() < deadline, "no leader for group {group}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The current leader's replica of `group`, if there is a leader now, to propose at
    /// without holding the cluster.
    pub fn leader_group(&self, group: GroupId) -> Option<Arc<LockGroup>> {
        let leader = self.current_leader(group)?;
        self.node(leader).group(group)
    }

    /// Proposes at the current leader, following redirects, for up to 10 s.
    pub async fn propose(&self, group: GroupId, command: Command) -> Response {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let leader = self.leader(group).await;
            let g = self.node(leader).group(group).unwrap();
            match g.propose(command.clone(), Duration::from_secs(2)).await {
                Ok(response) => return response,
                Err(ProposeError::NotLeader { .. } | ProposeError::Unavailable { .. }) => {
                    assert!(Instant::now() < deadline, "could not commit {command:?}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// The status of `key` as the group's leader has applied it.
    pub async fn status(&self, group: GroupId, key: &LockKey) -> LockStatus {
        let leader = self.leader(group).await;
        let now = SystemClock.now_ms();
        self.node(leader)
            .group(group)
            .unwrap()
            .state_machine()
            .read(|m| m.status(key, now))
    }

    /// Fsyncs of every running node's log so far.
    pub fn fsyncs(&self) -> u64 {
        self.running()
            .iter()
            .map(|id| self.node(*id).log_stats().fsyncs)
            .sum()
    }

    pub async fn stop(mut self) {
        for id in self.running() {
            self.crash(id).await;
        }
    }
}
