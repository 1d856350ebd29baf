//! Three nodes talking Raft over real gRPC on loopback ports chosen at run time: elections,
//! replication, a leader stopped and restarted on its address, and a snapshot streamed in
//! small chunks to a follower that fell behind.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lock_core::{Acquire, Command, FencingToken, LockError, LockKey, Reply, TenantId};
use lockplane_node::clock::SystemClock;
use lockplane_node::grpc::{GrpcTransport, RaftServer};
use lockplane_node::host::{Node, NodeConfig};
use lockplane_node::raft::NodeId;
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use common::TempDir;

struct Running {
    node: Node,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

struct GrpcCluster {
    dir: TempDir,
    addrs: BTreeMap<NodeId, String>,
    nodes: BTreeMap<NodeId, Option<Running>>,
    configure: fn(&mut NodeConfig),
}

impl GrpcCluster {
    async fn start(name: &str, configure: fn(&mut NodeConfig)) -> Self {
        let mut cluster = GrpcCluster {
            dir: TempDir::new(name),
            addrs: BTreeMap::new(),
            nodes: BTreeMap::new(),
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
        let mut config = NodeConfig::new(id, self.dir.path().join(format!("node-{id}")));
        config.groups = 1;
        (self.configure)(&mut config);
        let node = Node::start(
            config,
            Arc::new(GrpcTransport::default()),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        let (stop, stopped) = oneshot::channel();
        let serve = RaftServer::new(node.router()).serve(listener, async move {
            let _ = stopped.await;
        });
        let server = tokio::spawn(async move { serve.await.unwrap() });
        self.nodes.insert(id, Some(Running { node, stop, server }));
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id].as_ref().unwrap().node
    }

    fn running(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    async fn stop(&mut self, id: NodeId) {
        if let Some(running) = self.nodes.get_mut(&id).and_then(Option::take) {
            let _ = running.stop.send(());
            running.server.await.unwrap();
            running.node.shutdown().await;
        }
    }

    async fn restart(&mut self, id: NodeId) {
        let listener = TcpListener::bind(self.addrs[&id].as_str()).await.unwrap();
        self.boot(id, listener).await;
    }

    async fn leader(&self) -> NodeId {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let leader = self
                .running()
                .into_iter()
                .filter_map(|id| {
                    let m = self.node(id).group(1)?.raft().metrics().borrow().clone();
                    (m.state == ServerState::Leader).then_some((m.current_term, id))
                })
                .max();
            if let Some((_, id)) = leader {
                return id;
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn propose(&self, command: Command) -> lock_core::Response {
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

    async fn shutdown(mut self) {
        for id in self.running() {
            self.stop(id).await;
        }
    }
}

fn acquire(name: &str, owner: &str) -> Command {
    Command::Acquire(Acquire::new(
        LockKey::new(TenantId(1), name),
        owner,
        600_000,
    ))
}

fn granted(response: lock_core::Response) -> FencingToken {
    match response {
        Ok(Reply::Granted(grant)) => grant.token,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn three_nodes_over_grpc_replicate_and_fail_over() {
    runtime().block_on(async {
        let mut cluster = GrpcCluster::start("grpc", |_| {}).await;
        let held = granted(cluster.propose(acquire("a", "alice")).await);
        let old = cluster.leader().await;
        cluster.stop(old).await;
        match cluster.propose(acquire("a", "bob")).await {
            Err(LockError::Held { holder }) => assert_eq!(holder.token, held),
            other => panic!("the grant must survive the failover, got {other:?}"),
        }
        cluster.restart(old).await;
        let release = Command::Release {
            key: LockKey::new(TenantId(1), "a"),
            owner: "alice".into(),
            token: held,
        };
        assert_eq!(cluster.propose(release).await, Ok(Reply::Released));
        let next = granted(cluster.propose(acquire("a", "bob")).await);
        assert!(next > held);
        cluster.shutdown().await;
    });
}

#[test]
fn a_snapshot_streams_over_grpc_in_chunks() {
    fn small(config: &mut NodeConfig) {
        config.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(50);
        config.raft.max_in_snapshot_log_to_keep = 0;
        config.raft.snapshot_max_chunk_size = 1_024;
    }
    runtime().block_on(async {
        let mut cluster = GrpcCluster::start("grpc-snapshot", small).await;
        granted(cluster.propose(acquire("k0", "o")).await);
        let leader = cluster.leader().await;
        let follower = cluster
            .running()
            .into_iter()
            .find(|id| *id != leader)
            .unwrap();
        cluster.stop(follower).await;
        for i in 1..300 {
            granted(cluster.propose(acquire(&format!("k{i}"), "o")).await);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let leader_group = cluster.node(cluster.leader().await).group(1).unwrap();
        let purged = || {
            leader_group
                .raft()
                .metrics()
                .borrow()
                .purged
                .map(|p| p.index)
        };
        while purged().is_none_or(|p| p < 200) {
            assert!(Instant::now() < deadline, "the leader never purged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cluster.restart(follower).await;
        let group = cluster.node(follower).group(1).unwrap();
        let key = LockKey::new(TenantId(1), "k299");
        while group
            .state_machine()
            .read(|m| m.status(&key, 0).holder.is_none())
        {
            assert!(Instant::now() < deadline, "the follower never caught up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(group.raft().metrics().borrow().snapshot.is_some());
        cluster.shutdown().await;
    });
}
