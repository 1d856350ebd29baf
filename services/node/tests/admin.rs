//! The meta group and the admin API over real gRPC: the first shard map, a node joining and
//! being added to every group (learner, then voter) while the data stays, a node removed
//! from every group and forgotten, the refusals that keep the map consistent, and the
//! admin token every change needs.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use lock_core::{LockKey, TenantId};
use lockplane_node::membership::Admin;
use lockplane_proto::admin::NodeEntry;
use lockplane_proto::lock::ErrorCode;
use lockplane_proto::{Dialer, RpcError};
use shard_map::key_hash;
use tokio::time::Instant;

use common::grpc_cluster::GrpcCluster;
use common::{acquire, granted, runtime};

const GROUPS: u32 = 3;

const TOKEN: &str = "admin-token-for-tests";

/// Admin calls through `endpoint` carrying `token`.
fn admin_with(endpoint: &str, token: Option<&str>) -> Admin {
    Admin::new(
        Dialer::default().with_admin_token(token.map(str::to_string)),
        endpoint,
    )
}

/// Admin calls through `endpoint` with the admin token, once the cluster has its map and
/// its admin token.
async fn admin(endpoint: &str) -> Admin {
    wait_for_map(endpoint).await;
    let admin = admin_with(endpoint, Some(TOKEN));
    admin.set_admin_token(key_hash(TOKEN), true).await.unwrap();
    admin
}

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
        let map = admin_with(endpoint, None).shard_map().await.unwrap();
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
        let admin = admin(&seed).await;
        let held = granted(cluster.propose(acquire("kept", "alice", 600_000)).await);

        cluster.start_new_node(4).await;
        let unknown = admin.add_node(4, None).await.unwrap_err();
        assert_eq!(unknown.code(), ErrorCode::UnknownNode);
        let joined = NodeEntry {
            id: 4,
            addr: cluster.addr(4).to_string(),
            region: "eu".into(),
        };
        let map = admin.register(joined.clone()).await.unwrap();
        assert!(map.nodes.contains(&joined));

        let one = admin.add_node(4, Some(&[1])).await.unwrap();
        assert_eq!(one.voters, [(1, vec![1, 2, 3, 4])]);
        let map = admin.shard_map().await.unwrap();
        for placement in &map.placement {
            let expected: &[u64] = if placement.group == 1 {
                &[1, 2, 3, 4]
            } else {
                &[1, 2, 3]
            };
            assert_eq!(placement.voters, expected, "group {}", placement.group);
        }
        let bad_group = admin.add_node(4, Some(&[GROUPS + 1])).await.unwrap_err();
        assert_eq!(bad_group.code(), ErrorCode::InvalidArgument);

        let added = admin.add_node(4, None).await.unwrap();
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

        let in_use = admin.shard_map().await.unwrap();
        assert!(in_use.placement.iter().all(|p| p.voters == [1, 2, 3, 4]));

        let via_two = admin_with(cluster.addr(2), Some(TOKEN));
        let removed = via_two.remove_node(1, None).await.unwrap();
        assert!(removed.voters.iter().all(|(_, v)| v == &[2, 3, 4]));
        let map = via_two.shard_map().await.unwrap();
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
        let admin = admin(&seed).await;
        let in_use = admin_remove_node_only(&admin, 2).await.unwrap_err();
        assert_eq!(in_use.code(), ErrorCode::NodeInUse);
        let bad = NodeEntry {
            id: 0,
            addr: "x:1".into(),
            region: "r".into(),
        };
        let invalid = admin.register(bad).await.unwrap_err();
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

/// Forgets node `id` without taking it out of any group first (refused while it holds
/// replicas).
async fn admin_remove_node_only(admin: &Admin, id: u64) -> Result<(), RpcError> {
    let endpoint = admin.endpoint().to_string();
    let dialer = Dialer::default().with_admin_token(Some(TOKEN.into()));
    lockplane_proto::follow::at_leader(&dialer, &endpoint, Duration::from_secs(10), |c| {
        let request = dialer.request(
            lockplane_proto::admin::RemoveNodeRequest { id },
            Duration::from_secs(5),
        );
        async move {
            lockplane_proto::admin::admin_service_client::AdminServiceClient::new(c)
                .remove_node(request)
                .await
        }
    })
    .await
    .map(|_| ())
}

#[test]
fn every_change_needs_the_admin_token_which_is_set_once_and_then_only_replaced() {
    runtime().block_on(async {
        let cluster = GrpcCluster::start("admin-token", GROUPS, |_| {}).await;
        let seed = cluster.addr(2).to_string();
        wait_for_map(&seed).await;
        let anyone = admin_with(&seed, None);
        let denied = |result: Result<(), RpcError>, what: &str| {
            let error = result.expect_err(what);
            assert_eq!(error.code(), ErrorCode::PermissionDenied, "{what}: {error}");
            error.detail().message.clone()
        };
        let before = denied(
            anyone
                .add_tenant_key("mallory", key_hash("k"))
                .await
                .map(|_| ()),
            "tenant create before bootstrap",
        );
        assert!(before.contains("lockplane cluster bootstrap"), "{before}");

        anyone.set_admin_token(key_hash(TOKEN), true).await.unwrap();
        assert!(anyone.shard_map().await.unwrap().admin_token_set);
        denied(
            anyone.set_admin_token(key_hash("mine"), true).await,
            "a second bootstrap",
        );
        let wrong = admin_with(&seed, Some("not-the-token"));
        for (who, name) in [(&anyone, "no token"), (&wrong, "a wrong token")] {
            denied(
                who.add_tenant_key("t", key_hash("k")).await.map(|_| ()),
                name,
            );
            denied(who.set_tenant_quota("t", Some(1)).await, name);
            denied(who.revoke_tenant_key("t", key_hash("k")).await, name);
            denied(
                who.replace_tenant_keys("t", key_hash("k"))
                    .await
                    .map(|_| ()),
                name,
            );
            denied(who.add_node(3, Some(&[1])).await.map(|_| ()), name);
            denied(who.remove_node(3, Some(&[1])).await.map(|_| ()), name);
            let entry = NodeEntry {
                id: 9,
                addr: "127.0.0.1:1".into(),
                region: "r".into(),
            };
            denied(who.register(entry).await.map(|_| ()), name);
            denied(who.set_admin_token(key_hash("x"), false).await, name);
        }
        let map = anyone.shard_map().await.unwrap();
        assert!(
            map.tenants.is_empty() && map.nodes.len() == 3,
            "nothing changed"
        );

        let admin = admin_with(&seed, Some(TOKEN));
        admin.add_tenant_key("t", key_hash("k")).await.unwrap();
        admin
            .set_admin_token(key_hash("rotated"), false)
            .await
            .unwrap();
        denied(
            admin.set_tenant_quota("t", Some(1)).await,
            "the old token after a rotation",
        );
        let rotated = admin_with(cluster.addr(1), Some("rotated"));
        rotated.set_tenant_quota("t", Some(1)).await.unwrap();
        cluster.shutdown().await;
    });
}
