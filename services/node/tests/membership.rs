//! Replacing a node while a client keeps locking: node 4 joins every group as a learner,
//! becomes a voter, node 1 leaves; the client's history must satisfy the lock contract and
//! the removed node can then stop without the groups noticing.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lock_core::{Acquire, Command, LockKey, Reply, TenantId};
use testkit::history::{History, Outcome};
use tokio::sync::RwLock;

use common::cluster::Cluster;

const GROUPS: u32 = 2;

#[test]
fn a_node_is_replaced_while_clients_lock() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cluster = Arc::new(RwLock::new(Cluster::start("membership", 3, GROUPS).await));
        let history = Arc::new(History::new());
        let stop = Arc::new(AtomicBool::new(false));
        let client = tokio::spawn(lock_loop(
            Arc::clone(&cluster),
            Arc::clone(&history),
            Arc::clone(&stop),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.write().await.restart(4).await;
        cluster.read().await.change_voters(4, 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.write().await.crash(1).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        client.await.unwrap();

        let c = cluster.read().await;
        for group in 1..=GROUPS {
            let leader = c.leader(group).await;
            assert_eq!(c.node(leader).voters(group), BTreeSet::from([2, 3, 4]));
        }
        let mut holders = BTreeMap::new();
        for (i, key) in ["a", "b"].into_iter().enumerate() {
            let group = i as u32 % GROUPS + 1;
            c.propose(group, Command::Tick).await.unwrap();
            let status = c.status(group, &LockKey::new(TenantId(1), key)).await;
            holders.insert(key.to_string(), status.holder.map(|h| h.token.0));
        }
        let summary = history.check(&holders, history.now()).unwrap();
        assert!(
            summary.grants > 10,
            "too little traffic to mean anything: {summary}"
        );
    });
}

async fn lock_loop(cluster: Arc<RwLock<Cluster>>, history: Arc<History>, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let (key, group) = if n % 2 == 0 { ("a", 1) } else { ("b", 2) };
        let owner = format!("client-{n}");
        let Some(leader) = cluster.read().await.leader_group(group) else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let op = history.invoke_acquire(key, &owner, Duration::from_secs(60));
        let acquire = Command::Acquire(Acquire::new(
            LockKey::new(TenantId(1), key),
            owner.clone(),
            60_000,
        ));
        let token = match leader.propose(acquire, Duration::from_secs(1)).await {
            Ok(Ok(Reply::Granted(grant))) => {
                history.complete(op, Outcome::Granted(grant.token.0));
                grant.token
            }
            Ok(_) => {
                history.complete(op, Outcome::Refused);
                continue;
            }
            Err(_) => {
                history.complete(op, Outcome::Unknown);
                continue;
            }
        };
        let op = history.invoke_release(key, &owner, token.0);
        let release = Command::Release {
            key: LockKey::new(TenantId(1), key),
            owner,
            token,
        };
        let outcome = match cluster.read().await.leader_group(group) {
            Some(leader) => match leader.propose(release, Duration::from_secs(1)).await {
                Ok(Ok(Reply::Released)) => Outcome::Released,
                Ok(_) => Outcome::Refused,
                Err(_) => Outcome::Unknown,
            },
            None => Outcome::Unknown,
        };
        history.complete(op, outcome);
    }
}
