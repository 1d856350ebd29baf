//! Three nodes talking Raft over real gRPC on loopback ports chosen at run time: elections,
//! replication, a leader stopped and restarted on its address, and a snapshot streamed in
//! small chunks to a follower that fell behind.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use lock_core::{Command, LockError, LockKey, Reply, TenantId};
use lockplane_node::host::NodeConfig;
use openraft::SnapshotPolicy;
use tokio::time::Instant;

use common::grpc_cluster::GrpcCluster;
use common::{acquire, granted, runtime};

#[test]
fn three_nodes_over_grpc_replicate_and_fail_over() {
    runtime().block_on(async {
        let mut cluster = GrpcCluster::start("grpc", 1, |_| {}).await;
        let held = granted(cluster.propose(acquire("a", "alice", 600_000)).await);
        let old = cluster.leader().await;
        cluster.stop(old).await;
        match cluster.propose(acquire("a", "bob", 600_000)).await {
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
        let next = granted(cluster.propose(acquire("a", "bob", 600_000)).await);
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
        let mut cluster = GrpcCluster::start("grpc-snapshot", 1, small).await;
        granted(cluster.propose(acquire("k0", "o", 600_000)).await);
        let leader = cluster.leader().await;
        let follower = cluster
            .running()
            .into_iter()
            .find(|id| *id != leader)
            .unwrap();
        cluster.stop(follower).await;
        for i in 1..300 {
            granted(
                cluster
                    .propose(acquire(&format!("k{i}"), "o", 600_000))
                    .await,
            );
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
