//! Seeded randomized fault runs: concurrent clients acquire and release locks on a
//! three-node cluster while nodes crash and restart, links are cut, slowed (random delays)
//! or lossy, and nodes' wall clocks jump minutes forward or back (taking effect when the
//! node restarts); every operation is recorded and the history is checked against the lock
//! contract (testkit::history).
//!
//! `LOCKPLANE_CHAOS_SEEDS=N` runs seeds 1..=N (default 50); `LOCKPLANE_CHAOS_SEED=S`
//! replays one seed; `LOCKPLANE_CHAOS_MS` sets how long each run's load lasts (default
//! 1,500). A failing run prints its seed and the command that replays it.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lock_core::{Command, LockKey, TenantId};
use testkit::history::{History, Summary};
use testkit::rng::Rng;
use tokio::sync::RwLock;

use common::cluster::Cluster;
use common::{recorded_acquire, recorded_release, runtime};

const KEYS: [&str; 4] = ["a", "b", "c", "d"];
const GROUPS: u32 = 2;
const CLIENTS: u64 = 4;

fn group_of(key: &str) -> u32 {
    KEYS.iter()
        .position(|k| *k == key)
        .map_or(1, |i| i as u32 % GROUPS + 1)
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn randomized_faults_never_break_the_lock_contract() {
    let seeds: Vec<u64> = match env("LOCKPLANE_CHAOS_SEED") {
        Some(seed) => vec![seed],
        None => (1..=env("LOCKPLANE_CHAOS_SEEDS").unwrap_or(50)).collect(),
    };
    let load = Duration::from_millis(env("LOCKPLANE_CHAOS_MS").unwrap_or(1_500));
    let mut total = Summary::default();
    for seed in seeds {
        match runtime().block_on(run(seed, load)) {
            Ok(summary) => {
                total.grants += summary.grants;
                total.releases += summary.releases;
                total.refused += summary.refused;
                total.unknown += summary.unknown;
            }
            Err(violations) => panic!(
                "seed {seed} broke the lock contract; replay with \
                 LOCKPLANE_CHAOS_SEED={seed} cargo test -p lockplane-node --test chaos\n{}",
                violations.join("\n")
            ),
        }
    }
    println!("chaos: {total}");
    assert!(
        total.grants > 0,
        "no lock was ever granted: the run tested nothing"
    );
}

async fn run(seed: u64, load: Duration) -> Result<Summary, Vec<String>> {
    let mut rng = Rng::new(seed);
    let cluster = Cluster::start(&format!("chaos-{seed}"), 3, GROUPS).await;
    cluster.net.reseed(seed);
    let cluster = Arc::new(RwLock::new(cluster));
    let history = Arc::new(History::new());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (cluster, history, stop) = (
                Arc::clone(&cluster),
                Arc::clone(&history),
                Arc::clone(&stop),
            );
            tokio::spawn(client(c, rng.fork(), cluster, history, stop))
        })
        .collect();
    let mut faults = rng.fork();
    let started = tokio::time::Instant::now();
    while started.elapsed() < load {
        tokio::time::sleep(Duration::from_millis(100 + faults.below(200))).await;
        let mut c = cluster.write().await;
        let running = c.running();
        match faults.below(7) {
            0 if running.len() == 3 => {
                let victim = running[faults.below(3) as usize];
                c.crash(victim).await;
            }
            1 if running.len() == 3 => {
                let alone = running[faults.below(3) as usize];
                let rest: Vec<_> = running.iter().copied().filter(|id| *id != alone).collect();
                c.net.partition(&[alone], &rest);
            }
            2 => {
                let (from, to) = (1 + faults.below(3), 1 + faults.below(3));
                c.net
                    .delay(from, to, Duration::from_millis(5 + faults.below(60)));
            }
            3 => {
                let (from, to) = (1 + faults.below(3), 1 + faults.below(3));
                c.net.lose(from, to, 5 + faults.below(30));
            }
            4 => {
                let id = 1 + faults.below(3);
                let minutes = 1 + faults.below(10) as i64;
                let sign = if faults.chance(50) { 1 } else { -1 };
                c.wall(id).set_offset_ms(sign * minutes * 60_000);
            }
            _ => {
                c.net.heal();
                for id in 1..=3 {
                    if !c.running().contains(&id) {
                        c.restart(id).await;
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let mut c = cluster.write().await;
    c.net.heal();
    for id in 1..=3 {
        if !c.running().contains(&id) {
            c.restart(id).await;
        }
    }
    let mut holders = BTreeMap::new();
    for key in KEYS {
        let group = group_of(key);
        c.propose(group, Command::Tick)
            .await
            .map_err(|e| vec![format!("final tick: {e}")])?;
        let status = c.status(group, &LockKey::new(TenantId(1), key)).await;
        holders.insert(key.to_string(), status.holder.map(|h| h.token.0));
    }
    let read_at = history.now();
    drop(c);
    if let Ok(cluster) = Arc::try_unwrap(cluster) {
        cluster.into_inner().stop().await;
    }
    history.check(&holders, read_at)
}

/// One client: acquire a random key (a fresh owner each time), hold it briefly, release.
async fn client(
    id: u64,
    mut rng: Rng,
    cluster: Arc<RwLock<Cluster>>,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = KEYS[rng.below(KEYS.len() as u64) as usize];
        let owner = format!("c{id}-{n}");
        let ttl = if rng.chance(30) { 300 } else { 10_000 };
        let Some(group) = cluster.read().await.leader_group(group_of(key)) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Some(token) = recorded_acquire(&history, &group, key, &owner, ttl).await else {
            continue;
        };
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
        let group = cluster.read().await.leader_group(group_of(key));
        recorded_release(&history, group, key, &owner, token).await;
    }
}
