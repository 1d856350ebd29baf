//! The meta group and the admin API over real gRPC: the first shard map, a node joining and
//! being added to every group (learner, then voter) while the data stays, a node removed
//! from every group and forgotten, and the refusals that keep the map consistent.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use lock_core::{LockKey, TenantId};
use lockplane_node::membership;
use lockplane_proto::admin::NodeEntry;
use lockplane_proto::lock::ErrorCode;
use tokio::time::Instant;

use common::grpc_cluster::GrpcCluster;
use common::{acquire, granted, runtime};

const GROUPS: u32 = 3;

#[test]
fn the_first_shard_map_places_every_group_on_the_initial_nodes() {
    runtime().block_on(async {
        let cluster = GrpcCluster::start("admin-map", GROUPS, |_| {}).await;
        let map = wait_for_map(cluster.addr(2)).await;
        assert_eq!(map.shards, GROUPS);
        let ids: Vec<_> = map.nodes.iter().map(|n| n.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        for node in &map.nodes {
            assert_eq!(node.addr, cluster.addr(node.id));
        }
        let groups: Vec<_> = map.placement.iter().map(|p| p.group).collect();
        assert_eq!(groups, [0, 1, 2, 3]);
        assert!(map.placement.iter().all(|p| p.voters == [1, 2, 3]));
        cluster.shutdown().await;
    });
}

async fn wait_for_map(endpoint: &str) -> lockplane_proto::admin::ShardMap {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let map = membership::shard_map(endpoint).await.unwrap();
        if map.shards > 0 {
            return map;
        }
        assert!(
            Instant::now() < deadline,
            "the shard map was never initialized"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_node_joins_every_group_and_another_leaves_while_the_locks_stay() {
    runtime().block_on(async {
        let mut cluster = GrpcCluster::start("admin-move", GROUPS, |_| {}).await;
        let seed = cluster.addr(1).to_string();
        wait_for_map(&seed).await;
        let held = granted(cluster.propose(acquire("kept", "alice", 600_000)).await);

        cluster.start_new_node(4).await;
        let unknown = membership::add_node(&seed, 4, None).await.unwrap_err();
        assert_eq!(unknown.code(), ErrorCode::UnknownNode);
        let joined = NodeEntry {
            id: 4,
            addr: cluster.addr(4).to_string(),
            region: "eu".into(),
        };
        let map = membership::register(&seed, joined.clone()).await.unwrap();
        assert!(map.nodes.contains(&joined));

        let one = membership::add_node(&seed, 4, Some(&[1])).await.unwrap();
        assert_eq!(one.voters, [(1, vec![1, 2, 3, 4])]);
        let map = membership::shard_map(&seed).await.unwrap();
        for placement in &map.placement {
            let expected: &[u64] = if placement.group == 1 {
                &[1, 2, 3, 4]
            } else {
                &[1, 2, 3]
            };
            assert_eq!(placement.voters, expected, "group {}", placement.group);
        }
        let bad_group = membership::add_node(&seed, 4, Some(&[GROUPS + 1]))
            .await
            .unwrap_err();
        assert_eq!(bad_group.code(), ErrorCode::InvalidArgument);

        let added = membership::add_node(&seed, 4, None).await.unwrap();
        assert_eq!(added.voters.len(), GROUPS as usize + 1);
        assert!(added.voters.iter().all(|(_, v)| v == &[1, 2, 3, 4]));
        for group in 0..=GROUPS {
            assert!(cluster.node(4).voters(group).contains(&4), "group {group}");
        }
        let replica = cluster.node(4).group(1).unwrap();
        let key = LockKey::new(TenantId(1), "kept");
        wait_until(|| {
            replica
                .state_machine()
                .read(|m| m.status(&key, 0).holder.map(|h| h.token))
                == Some(held)
        })
        .await;

        let in_use = membership::shard_map(&seed).await.unwrap();
        assert!(in_use.placement.iter().all(|p| p.voters == [1, 2, 3, 4]));

        let removed = membership::remove_node(cluster.addr(2), 1, None)
            .await
            .unwrap();
        assert!(removed.voters.iter().all(|(_, v)| v == &[2, 3, 4]));
        let map = membership::shard_map(cluster.addr(2)).await.unwrap();
        let ids: Vec<_> = map.nodes.iter().map(|n| n.id).collect();
        assert_eq!(ids, [2, 3, 4]);
        assert!(map.placement.iter().all(|p| p.voters == [2, 3, 4]));

        cluster.stop(1).await;
        let mut committed = false;
        for _ in 0..100 {
            let leader =
                (2..=4).find(|id| cluster.node(*id).group(1).unwrap().check_leader().is_ok());
            if let Some(leader) = leader {
                let group = cluster.node(leader).group(1).unwrap();
                if let Ok(Ok(_)) = group
                    .propose(acquire("after", "bob", 600_000), Duration::from_secs(2))
                    .await
                {
                    committed = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            committed,
            "the three remaining voters keep the group available"
        );
        cluster.shutdown().await;
    });
}

#[test]
fn the_map_refuses_to_forget_a_node_that_still_holds_replicas() {
    runtime().block_on(async {
        let cluster = GrpcCluster::start("admin-refuse", GROUPS, |_| {}).await;
        let seed = cluster.addr(3).to_string();
        wait_for_map(&seed).await;
        let in_use =
            lockplane_proto::follow::at_leader(&seed, Duration::from_secs(10), |c| async move {
                lockplane_proto::admin::admin_service_client::AdminServiceClient::new(c)
                    .remove_node(lockplane_proto::admin::RemoveNodeRequest { id: 2 })
                    .await
            })
            .await
            .unwrap_err();
        assert_eq!(in_use.code(), ErrorCode::NodeInUse);
        let bad = NodeEntry {
            id: 0,
            addr: "x:1".into(),
            region: "r".into(),
        };
        let invalid = membership::register(&seed, bad).await.unwrap_err();
        assert_eq!(invalid.code(), ErrorCode::InvalidArgument);
        cluster.shutdown().await;
    });
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
