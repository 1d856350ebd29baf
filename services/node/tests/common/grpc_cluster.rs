//! Three real nodes in one process that talk Raft over gRPC, and serve the lock API, on
//! loopback ports chosen at run time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lock_core::Command;
use lockplane_node::clock::SystemClock;
use lockplane_node::group::LockGroup;
use lockplane_node::grpc::GrpcTransport;
use lockplane_node::host::{Node, NodeConfig};
use lockplane_node::raft::NodeId;
use lockplane_node::server::NodeServer;
use lockplane_node::wal::GroupId;
use openraft::BasicNode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::TempDir;

pub struct Running {
    node: Node,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

pub struct GrpcCluster {
    dir: TempDir,
    addrs: BTreeMap<NodeId, String>,
    nodes: BTreeMap<NodeId, Option<Running>>,
    groups: u32,
    configure: fn(&mut NodeConfig),
}

impl GrpcCluster {
    /// Starts three nodes hosting `groups` groups, each serving Raft over gRPC on a
    /// loopback port chosen at run time, and initializes them as one cluster.
    pub async fn start(name: &str, groups: u32, configure: fn(&mut NodeConfig)) -> Self {
        let mut cluster = GrpcCluster {
            dir: TempDir::new(name),
            addrs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            groups,
            configure,
        };
        let mut listeners = Vec::new();
        for id in 1..=3 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            cluster
                .addrs
                .insert(id, listener.local_addr().unwrap().to_string());
            listeners.push((id, listener));
        }
        for (id, listener) in listeners {
            cluster.boot(id, listener).await;
        }
        let members = cluster
            .addrs
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr.clone())))
            .collect();
        cluster.node(1).initialize(members).await.unwrap();
        cluster
    }

    async fn boot(&mut self, id: NodeId, listener: TcpListener) {
        let mut config =
            NodeConfig::new(id, self.dir.path().join(format!("node-{id}"))).with_fast_elections();
        config.groups = self.groups;
        (self.configure)(&mut config);
        let node = Node::start(
            config,
            Arc::new(GrpcTransport::default()),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        let (stop, stopped) = oneshot::channel();
        let serve = NodeServer::new(&node).serve(listener, async move {
            let _ = stopped.await;
        });
        let server = tokio::spawn(async move { serve.await.unwrap() });
        self.nodes.insert(id, Some(Running { node, stop, server }));
    }

    /// The address node `id` serves Raft and the lock API on.
    pub fn addr(&self, id: NodeId) -> &str {
        &self.addrs[&id]
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id].as_ref().unwrap().node
    }

    pub fn running(&self) -> Vec<NodeId> {
        super::running(&self.nodes)
    }

    pub async fn stop(&mut self, id: NodeId) {
        if let Some(running) = self.nodes.get_mut(&id).and_then(Option::take) {
            let _ = running.stop.send(());
            running.server.await.unwrap();
            running.node.shutdown().await;
        }
    }

    /// Starts a new node `id` that belongs to no group yet (it must join).
    pub async fn start_new_node(&mut self, id: NodeId) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addrs
            .insert(id, listener.local_addr().unwrap().to_string());
        self.boot(id, listener).await;
    }

    pub async fn restart(&mut self, id: NodeId) {
        let listener = TcpListener::bind(self.addrs[&id].as_str()).await.unwrap();
        self.boot(id, listener).await;
    }

    /// The running node that leads `group` in the highest term now, if any.
    pub fn current_leader(&self, group: GroupId) -> Option<NodeId> {
        super::leader_among(
            self.running().into_iter().map(|id| (id, self.node(id))),
            group,
        )
    }

    /// The current leader's replica of `group`, if any.
    pub fn leader_group(&self, group: GroupId) -> Option<Arc<LockGroup>> {
        self.node(self.current_leader(group)?).group(group)
    }

    /// Fsyncs of every running node's log so far.
    pub fn fsyncs(&self) -> u64 {
        self.running()
            .iter()
            .map(|id| self.node(*id).log_stats().fsyncs)
            .sum()
    }

    /// The leader of group 1, waiting up to 10 s for one.
    pub async fn leader(&self) -> NodeId {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(id) = self.current_leader(1) {
                return id;
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn propose(&self, command: Command) -> lock_core::Response {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let group = self.node(self.leader().await).group(1).unwrap();
            match group.propose(command.clone(), Duration::from_secs(2)).await {
                Ok(response) => return response,
                Err(e) => {
                    assert!(Instant::now() < deadline, "could not commit: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    pub async fn shutdown(mut self) {
        for id in self.running() {
            self.stop(id).await;
        }
    }
}
