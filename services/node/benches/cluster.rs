//! Throughput and idle cost of three nodes in one process, with real write-ahead logs and
//! fsyncs: once over the in-process transport (no serialization) and once with Raft over
//! gRPC on loopback. Clients propose at each group's leader directly (the client RPC is
//! measured by the `client_rpc` bench).
//!
//! `cargo bench -p lockplane-node --bench cluster`. Environment: `CLIENTS` (64), `GROUPS`
//! (16), `SECONDS` (5), `IDLE_GROUPS` (256; 0 skips the idle measurement).
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lock_core::{Acquire, Command, LockKey, Reply, TenantId};
use lockplane_node::group::LockGroup;

use common::cluster::Cluster;
use common::grpc_cluster::GrpcCluster;
use support::{env, percentile};

/// Finds the current leader's replica of a group.
type Leaders = Arc<dyn Fn(u32) -> Option<Arc<LockGroup>> + Send + Sync>;

/// CPU time (user + system) this process has used, from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn main() {
    common::runtime().block_on(async {
        let clients = env("CLIENTS", 64);
        let groups = env("GROUPS", 16) as u32;
        let seconds = env("SECONDS", 5);
        println!("3 nodes in one process, {groups} groups, {clients} clients on distinct keys, {seconds} s per row");
        println!("| Raft transport | acquire+release cycles/s | acquire p50 / p99 ms | release p50 / p99 ms | fsyncs/s (3 nodes) |");
        println!("|---|---|---|---|---|");

        let cluster = Arc::new(Cluster::start("bench", 3, groups).await);
        for g in 1..=groups {
            cluster.leader(g).await;
        }
        let (c, f) = (Arc::clone(&cluster), Arc::clone(&cluster));
        let leaders: Leaders = Arc::new(move |g| c.leader_group(g));
        load("in-process", clients, groups, seconds, leaders, &move || f.fsyncs()).await;
        if let Ok(cluster) = Arc::try_unwrap(cluster) {
            cluster.stop().await;
        }

        let cluster = Arc::new(GrpcCluster::start("bench-grpc", groups, |_| {}).await);
        for g in 1..=groups {
            while cluster.current_leader(g).is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let (c, f) = (Arc::clone(&cluster), Arc::clone(&cluster));
        let leaders: Leaders = Arc::new(move |g| c.leader_group(g));
        load("gRPC (loopback)", clients, groups, seconds, leaders, &move || f.fsyncs()).await;
        if let Ok(cluster) = Arc::try_unwrap(cluster) {
            cluster.shutdown().await;
        }

        let idle = env("IDLE_GROUPS", 256) as u32;
        if idle > 0 {
            idle_cost(idle).await;
        }
    });
}

async fn load(
    transport: &str,
    clients: u64,
    groups: u32,
    seconds: u64,
    leaders: Leaders,
    fsyncs: &dyn Fn() -> u64,
) {
    let fsyncs_before = fsyncs();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (leaders, stop) = (Arc::clone(&leaders), Arc::clone(&stop));
            tokio::spawn(async move {
                let group_id = (c % u64::from(groups)) as u32 + 1;
                let (mut acquires, mut releases) = (Vec::new(), Vec::new());
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Some(group) = leaders(group_id) else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    n += 1;
                    let key = LockKey::new(TenantId(1), format!("bench/{c}/{n}"));
                    let owner = format!("client-{c}");
                    let t = Instant::now();
                    let acquire =
                        Command::Acquire(Acquire::new(key.clone(), owner.clone(), 30_000));
                    let Ok(Ok(Reply::Granted(grant))) =
                        group.propose(acquire, Duration::from_secs(5)).await
                    else {
                        continue;
                    };
                    acquires.push(t.elapsed());
                    let t = Instant::now();
                    let release = Command::Release {
                        key,
                        owner,
                        token: grant.token,
                    };
                    if let Ok(Ok(Reply::Released)) =
                        group.propose(release, Duration::from_secs(5)).await
                    {
                        releases.push(t.elapsed());
                    }
                }
                (acquires, releases)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut acquires, mut releases) = (Vec::new(), Vec::new());
    for w in workers {
        let (a, r) = w.await.unwrap();
        acquires.extend(a);
        releases.extend(r);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let synced = fsyncs() - fsyncs_before;
    acquires.sort_unstable();
    releases.sort_unstable();
    println!(
        "| {transport} | {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {:.0} |",
        releases.len() as f64 / elapsed,
        percentile(&acquires, 0.5),
        percentile(&acquires, 0.99),
        percentile(&releases, 0.5),
        percentile(&releases, 0.99),
        synced as f64 / elapsed,
    );
}

/// Production timing, not the tests' fast elections.
fn production_timing(config: &mut lockplane_node::host::NodeConfig) {
    config.raft = lockplane_node::host::NodeConfig::new(0, Default::default()).raft;
}

/// CPU used per second of wall time while `wait` runs.
async fn cpu_share(wait: Duration) -> f64 {
    let (cpu, wall) = (cpu_time(), Instant::now());
    tokio::time::sleep(wait).await;
    (cpu_time() - cpu).as_secs_f64() / wall.elapsed().as_secs_f64()
}

async fn idle_cost(groups: u32) {
    let cluster = Cluster::start_with("bench-idle", 3, groups, production_timing).await;
    for g in 1..=groups {
        cluster.leader(g).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let in_process = cpu_share(Duration::from_secs(5)).await;
    cluster.stop().await;
    let cluster = GrpcCluster::start("bench-idle-grpc", groups, production_timing).await;
    for g in 1..=groups {
        while cluster.current_leader(g).is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grpc = cpu_share(Duration::from_secs(5)).await;
    cluster.shutdown().await;
    let heartbeat = lockplane_node::host::NodeConfig::new(0, Default::default())
        .raft
        .heartbeat_interval;
    println!(
        "idle, 3 nodes x {groups} groups (+ the meta group), heartbeat {heartbeat} ms: CPU per node (share of one core)"
    );
    println!("| Raft transport | CPU per node |");
    println!("|---|---|");
    println!("| in-process | {:.1}% |", in_process * 100.0 / 3.0);
    println!("| gRPC (loopback) | {:.1}% |", grpc * 100.0 / 3.0);
}
