//! Lock groups replicated over three in-process nodes with real storage: elections,
//! redirects, leader crash, minority partition, and a whole-cluster restart (locks and
//! sessions).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use lock_core::{Command, LockError, LockKey, Reply, SessionId, TenantId};
use lockplane_node::group::ProposeError;

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
