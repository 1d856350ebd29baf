//! Snapshots and purging: a follower that missed purged entries catches up by snapshot
//! install, and under sustained load the write-ahead log's segments and every group's live
//! log stay bounded, idle groups included.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use lock_core::{Command, LockKey, Reply, TenantId};
use lockplane_node::host::NodeConfig;
use lockplane_node::wal::Options;
use openraft::SnapshotPolicy;
use tokio::time::Instant;

use common::cluster::Cluster;
use common::{acquire, granted, runtime};

fn small_snapshots(config: &mut NodeConfig) {
    config.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(50);
    config.raft.max_in_snapshot_log_to_keep = 0;
}

fn tiny_segments(config: &mut NodeConfig) {
    small_snapshots(config);
    config.wal = Options {
        segment_bytes: 32 << 10,
        ..Options::default()
    };
    config.maintenance_interval = Duration::from_millis(100);
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_lagging_follower_catches_up_from_a_snapshot() {
    runtime().block_on(async {
        let mut cluster = Cluster::start_with("lagging", 3, 1, small_snapshots).await;
        granted(cluster.propose(1, acquire("k0", "o", 600_000)).await);
        let leader = cluster.leader(1).await;
        let follower = cluster
            .running()
            .into_iter()
            .find(|id| *id != leader)
            .unwrap();
        cluster.crash(follower).await;
        for i in 1..200 {
            granted(
                cluster
                    .propose(1, acquire(&format!("k{i}"), "o", 600_000))
                    .await,
            );
        }
        let leader = cluster.node(cluster.leader(1).await).group(1).unwrap();
        eventually("the leader purges the entries the follower lacks", || {
            leader
                .raft()
                .metrics()
                .borrow()
                .purged
                .is_some_and(|p| p.index >= 100)
        })
        .await;
        cluster.restart(follower).await;
        let group = cluster.node(follower).group(1).unwrap();
        eventually("the follower holds every lock", || {
            group.state_machine().read(|m| {
                m.status(&LockKey::new(TenantId(1), "k199"), 0)
                    .holder
                    .is_some()
            })
        })
        .await;
        assert!(
            group.raft().metrics().borrow().snapshot.is_some(),
            "the follower caught up without installing a snapshot"
        );
        cluster.stop().await;
    });
}

#[test]
fn the_log_stays_bounded_under_sustained_load() {
    runtime().block_on(async {
        // Group 3 is never used: only its first entries, which must not pin old segments.
        let cluster = Cluster::start_with("bounded", 3, 3, tiny_segments).await;
        for round in 0..1_500u32 {
            let group = round % 2 + 1;
            let key = format!("k{round}");
            let token = granted(cluster.propose(group, acquire(&key, "o", 600_000)).await);
            let release = Command::Release {
                key: LockKey::new(TenantId(1), key),
                owner: "o".into(),
                token,
            };
            assert_eq!(cluster.propose(group, release).await, Ok(Reply::Released));
        }
        for id in cluster.running() {
            let node = cluster.node(id);
            eventually("old segments are deleted", || {
                node.log_stats().segments <= 3
            })
            .await;
            for group in node.groups() {
                let m = group.raft().metrics().borrow().clone();
                let live = m.last_log_index.unwrap_or(0) - m.purged.map_or(0, |p| p.index);
                assert!(
                    live <= 200,
                    "node {id} group {} keeps {live} entries",
                    group.id()
                );
            }
        }
        cluster.stop().await;
    });
}
