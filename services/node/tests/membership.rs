//! Replacing a node while a client keeps locking: node 4 joins every group as a learner,
//! becomes a voter, node 1 leaves; the client's history must satisfy the lock contract and
//! the removed node can then stop without the groups noticing.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lock_core::{Command, LockKey, TenantId};
use testkit::history::History;
use tokio::sync::RwLock;

use common::cluster::Cluster;
use common::{recorded_acquire, recorded_release, runtime};

const GROUPS: u32 = 2;

#[test]
fn a_node_is_replaced_while_clients_lock() {
    runtime().block_on(async {
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
        let Some(token) = recorded_acquire(&history, &leader, key, &owner, 60_000).await else {
            continue;
        };
        let leader = cluster.read().await.leader_group(group);
        recorded_release(&history, leader, key, &owner, token).await;
    }
}
