//! Lock groups replicated over three in-process nodes with real storage: elections,
//! redirects, leader crash, minority partition, and a whole-cluster restart (locks and
//! sessions).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use lock_core::{Command, LockError, LockKey, Reply, SessionId, TenantId};
use lockplane_node::group::ProposeError;
use lockplane_node::raft::Entry;
use lockplane_node::wal::{LogEngine, Options};

use common::cluster::Cluster;
use common::{acquire, granted, runtime};

fn key(name: &str) -> LockKey {
    LockKey::new(TenantId(1), name)
}

#[test]
fn every_group_elects_a_leader_and_followers_redirect() {
    runtime().block_on(async {
        let cluster = Cluster::start("elect", 3, 4).await;
        for group in 1..=4 {
            let leader = cluster.leader(group).await;
            let token = granted(cluster.propose(group, acquire("a", "alice", 30_000)).await);
            assert!(token.0 > 0);
            let follower = cluster
                .running()
                .into_iter()
                .find(|id| *id != leader)
                .unwrap();
            let answer = cluster
                .node(follower)
                .group(group)
                .unwrap()
                .propose(acquire("b", "bob", 30_000), Duration::from_secs(2))
                .await;
            match answer {
                Err(ProposeError::NotLeader { leader: hint, .. }) => assert_eq!(hint, Some(leader)),
                other => panic!("a follower must redirect, got {other:?}"),
            }
        }
        cluster.stop().await;
    });
}

#[test]
fn a_lock_survives_its_leader_crashing_and_tokens_keep_rising() {
    runtime().block_on(async {
        let mut cluster = Cluster::start("failover", 3, 1).await;
        let held = granted(cluster.propose(1, acquire("a", "alice", 60_000)).await);
        let old_leader = cluster.leader(1).await;
        cluster.crash(old_leader).await;
        let new_leader = cluster.leader(1).await;
        assert_ne!(new_leader, old_leader);
        match cluster.propose(1, acquire("a", "bob", 60_000)).await {
            Err(LockError::Held { holder }) => {
                assert_eq!((holder.owner.as_str(), holder.token), ("alice", held));
            }
            other => panic!("the grant must survive the failover, got {other:?}"),
        }
        let release = Command::Release {
            key: key("a"),
            owner: "alice".into(),
            token: held,
        };
        assert_eq!(cluster.propose(1, release).await, Ok(Reply::Released));
        let next = granted(cluster.propose(1, acquire("a", "bob", 60_000)).await);
        assert!(next > held, "token {next:?} after {held:?}");
        cluster.restart(old_leader).await;
        cluster.stop().await;
    });
}

#[test]
fn an_isolated_leader_cannot_grant_and_the_majority_goes_on() {
    runtime().block_on(async {
        let cluster = Cluster::start("partition", 3, 1).await;
        granted(cluster.propose(1, acquire("warm-up", "w", 60_000)).await);
        let old = cluster.leader(1).await;
        let rest: Vec<_> = cluster
            .running()
            .into_iter()
            .filter(|id| *id != old)
            .collect();
        cluster.net.partition(&[old], &rest);
        let isolated = cluster.node(old).group(1).unwrap();
        let attempt = isolated
            .propose(
                acquire("a", "mallory", 60_000),
                Duration::from_millis(1_500),
            )
            .await;
        assert!(
            matches!(
                attempt,
                Err(ProposeError::Unavailable { .. } | ProposeError::NotLeader { .. })
            ),
            "a minority leader must not grant: {attempt:?}"
        );
        let token = granted(cluster.propose(1, acquire("a", "alice", 60_000)).await);
        assert_ne!(cluster.leader(1).await, old);
        cluster.net.heal();
        let status = cluster.status(1, &key("a")).await;
        assert_eq!(
            status.holder.map(|h| (h.owner, h.token)),
            Some(("alice".into(), token))
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen = isolated
                .state_machine()
                .read(|m| m.status(&key("a"), 0).holder.map(|h| (h.owner, h.token)));
            if seen == Some(("alice".into(), token)) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the healed old leader never converged: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.stop().await;
    });
}

#[test]
fn a_whole_cluster_restart_restores_every_held_lock_and_session() {
    runtime().block_on(async {
        let mut cluster = Cluster::start("restart", 3, 2).await;
        let a = granted(cluster.propose(1, acquire("a", "alice", 600_000)).await);
        let b = granted(cluster.propose(2, acquire("b", "bob", 600_000)).await);
        let session = SessionId(77);
        let open = Command::CreateSession {
            id: session,
            tenant: TenantId(1),
            ttl_ms: 600_000,
        };
        assert!(cluster.propose(1, open).await.is_ok());
        let Command::Acquire(mut bound) = acquire("s", "worker", 600_000) else {
            unreachable!()
        };
        bound.session = Some(session);
        let s = granted(cluster.propose(1, Command::Acquire(bound)).await);
        for id in cluster.running() {
            cluster.crash(id).await;
        }
        for id in 1..=3 {
            cluster.restart(id).await;
        }
        let status = cluster.status(1, &key("a")).await;
        assert_eq!(
            status.holder.map(|h| (h.owner, h.token)),
            Some(("alice".into(), a))
        );
        let status = cluster.status(2, &key("b")).await;
        assert_eq!(
            status.holder.map(|h| (h.owner, h.token)),
            Some(("bob".into(), b))
        );
        let status = cluster.status(1, &key("s")).await;
        let holder = status.holder.unwrap();
        assert_eq!((holder.token, holder.session), (s, Some(session)));
        let keepalive = Command::KeepAlive {
            id: session,
            tenant: TenantId(1),
        };
        assert_eq!(
            cluster.propose(1, keepalive).await,
            Ok(Reply::SessionKeptAlive { ttl_ms: 600_000 }),
            "the session survives the restart"
        );
        let later = granted(cluster.propose(1, acquire("c", "carol", 1_000)).await);
        assert!(later > s && later > a);
        cluster.stop().await;
    });
}

#[test]
fn the_leader_expires_leases_by_itself() {
    runtime().block_on(async {
        let cluster = Cluster::start("expiry", 3, 1).await;
        granted(cluster.propose(1, acquire("short", "alice", 300)).await);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if cluster.status(1, &key("short")).await.holder.is_none() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lease never expired"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        granted(cluster.propose(1, acquire("short", "bob", 60_000)).await);
        cluster.stop().await;
    });
}

#[test]
fn a_leader_whose_disk_fills_hands_its_group_over_and_catches_up_once_space_returns() {
    let disks: Vec<_> = (1..=3)
        .map(|id| common::SmallDisk::mount(&format!("cluster-disk-{id}"), 64 << 20))
        .collect();
    let Some(disks) = disks.into_iter().collect::<Option<Vec<_>>>() else {
        return;
    };
    runtime().block_on(async {
        let dirs = (1..=3u64)
            .map(|id| (id, disks[id as usize - 1].path().join("node")))
            .collect();
        let mut cluster = Cluster::start_on("disk-full", 3, 1, |_| {}, dirs).await;
        let first = granted(cluster.propose(1, acquire("before", "alice", 60_000)).await);
        let full = cluster.leader(1).await;
        let disk = &disks[full as usize - 1];
        disk.fill();
        // Enough commands that the full node's log needs fresh pages: each either commits
        // (at a leader that can log it) or is refused; none is acknowledged by a node that
        // did not log it.
        let mut last = first;
        for n in 0..200 {
            let token = granted(
                cluster
                    .propose(1, acquire(&format!("during-{n}"), "bob", 60_000))
                    .await,
            );
            assert!(token > last, "tokens keep rising");
            last = token;
        }
        let stalled = cluster.node(full).log().health();
        assert!(
            matches!(stalled, lockplane_node::wal::LogHealth::Stalled { .. }),
            "{stalled:?}"
        );
        let now_leader = cluster.leader(1).await;
        assert_ne!(now_leader, full, "the group moved off the full disk");
        let refused = cluster
            .node(full)
            .group(1)
            .unwrap()
            .propose(acquire("at-full", "carol", 60_000), Duration::from_secs(1))
            .await;
        assert!(refused.is_err(), "a node that cannot log accepted {refused:?}");

        disk.free();
        let leader_applied = || {
            cluster
                .node(now_leader)
                .group(1)
                .unwrap()
                .raft()
                .metrics()
                .borrow()
                .last_applied
        };
        let target = leader_applied();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let health = cluster.node(full).log().health();
            let applied = cluster
                .node(full)
                .group(1)
                .unwrap()
                .raft()
                .metrics()
                .borrow()
                .last_applied;
            if health == lockplane_node::wal::LogHealth::Healthy && applied >= target {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {full} did not catch up after space returned: {health:?}, {applied:?} < {target:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Its own disk holds everything it caught up on.
        cluster.crash(full).await;
        let wal = disk.path().join("node").join("wal");
        let logged = LogEngine::<Entry>::open(&wal, Options::default())
            .unwrap()
            .group(1)
            .read(|log| log.last_index());
        assert!(
            logged >= target.map(|id| id.index),
            "node {full} logged up to {logged:?}, applied {target:?}"
        );
        cluster.restart(full).await;
        let after = granted(cluster.propose(1, acquire("after", "dave", 60_000)).await);
        assert!(after > last);
        cluster.stop().await;
    });
}

#[test]
fn a_node_whose_disk_is_full_still_stops_promptly() {
    let disks: Vec<_> = (1..=3)
        .map(|id| common::SmallDisk::mount(&format!("stop-disk-{id}"), 64 << 20))
        .collect();
    let Some(disks) = disks.into_iter().collect::<Option<Vec<_>>>() else {
        return;
    };
    runtime().block_on(async {
        let dirs = (1..=3u64)
            .map(|id| (id, disks[id as usize - 1].path().join("node")))
            .collect();
        let mut cluster = Cluster::start_on("disk-full-stop", 3, 1, |_| {}, dirs).await;
        granted(cluster.propose(1, acquire("before", "alice", 60_000)).await);
        let leader = cluster.leader(1).await;
        let full = if leader == 1 { 2 } else { 1 };
        disks[full as usize - 1].fill();
        // Entries replicated to the full node (a follower) stall its log.
        let mut n = 0;
        while !matches!(
            cluster.node(full).log().health(),
            lockplane_node::wal::LogHealth::Stalled { .. }
        ) {
            n += 1;
            assert!(n < 1_000, "the log never stalled");
            granted(
                cluster
                    .propose(1, acquire(&format!("k{n}"), "alice", 60_000))
                    .await,
            );
        }
        // An election then makes the full node save a vote, which waits for space: its
        // Raft is stuck on the log.
        cluster.crash(leader).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::time::timeout(Duration::from_secs(10), cluster.crash(full))
            .await
            .expect("a node with a full disk did not stop within 10 s");
        disks[full as usize - 1].free();
        cluster.restart(full).await;
        cluster.restart(leader).await;
        granted(cluster.propose(1, acquire("after", "bob", 60_000)).await);
        cluster.stop().await;
    });
}

const FIVE_MINUTES_MS: i64 = 5 * 60 * 1_000;

#[test]
fn a_leader_whose_wall_clock_jumps_minutes_forward_ends_no_lease_early() {
    runtime().block_on(async {
        let cluster = Cluster::start("clock-forward", 3, 1).await;
        let held = granted(cluster.propose(1, acquire("a", "alice", 5_000)).await);
        let leader = cluster.leader(1).await;
        cluster.wall(leader).set_offset_ms(FIVE_MINUTES_MS);
        // Entries the leader stamps after the jump must not carry the lease past its end.
        for _ in 0..5 {
            match cluster.propose(1, acquire("a", "bob", 5_000)).await {
                Err(LockError::Held { holder }) => {
                    assert_eq!((holder.owner.as_str(), holder.token), ("alice", held));
                }
                other => panic!("alice's lease ended early: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let renewed = cluster
            .propose(
                1,
                Command::Renew {
                    key: key("a"),
                    owner: "alice".into(),
                    token: held,
                    ttl_ms: 5_000,
                },
            )
            .await;
        assert!(renewed.is_ok(), "alice lost the lock: {renewed:?}");
        cluster.stop().await;
    });
}

#[test]
fn a_cluster_restarted_with_clocks_minutes_behind_still_expires_leases_on_time() {
    runtime().block_on(async {
        let mut cluster = Cluster::start("clock-back", 3, 1).await;
        granted(cluster.propose(1, acquire("warm", "alice", 60_000)).await);
        for id in 1..=3 {
            cluster.crash(id).await;
        }
        for id in 1..=3 {
            cluster.wall(id).set_offset_ms(-FIVE_MINUTES_MS);
            cluster.restart(id).await;
        }
        // The group's log carries times five minutes ahead of every clock now.
        let held = granted(cluster.propose(1, acquire("a", "bob", 1_000)).await);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match cluster.propose(1, acquire("a", "carol", 60_000)).await {
                Ok(lock_core::Reply::Granted(grant)) => {
                    assert!(grant.token > held);
                    break;
                }
                Err(LockError::Held { .. }) => {}
                other => panic!("unexpected answer: {other:?}"),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bob's 1 s lease did not end within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster.stop().await;
    });
}

#[test]
fn a_leader_restarted_at_once_with_its_clock_minutes_ahead_ends_no_lease_early() {
    runtime().block_on(async {
        let mut cluster = Cluster::start("clock-restart", 3, 1).await;
        let held = granted(cluster.propose(1, acquire("a", "alice", 10_000)).await);
        let leader = cluster.leader(1).await;
        let term = |cluster: &Cluster, id| {
            cluster
                .node(id)
                .raft(1)
                .unwrap()
                .metrics()
                .borrow()
                .current_term
        };
        let before = term(&cluster, leader);
        // Back before anyone else could campaign, and five minutes ahead.
        cluster.crash(leader).await;
        cluster.wall(leader).set_offset_ms(FIVE_MINUTES_MS);
        cluster.restart(leader).await;
        match cluster.propose(1, acquire("a", "bob", 10_000)).await {
            Err(LockError::Held { holder }) => {
                assert_eq!((holder.owner.as_str(), holder.token), ("alice", held));
            }
            other => panic!("alice's lease ended early: {other:?}"),
        }
        let now_leader = cluster.leader(1).await;
        assert!(
            term(&cluster, now_leader) > before,
            "a restarted leader resumed its old term"
        );
        cluster.stop().await;
    });
}
