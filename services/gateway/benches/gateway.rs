//! Acquire+release cycles per second through the REST gateway (SDK → HTTP/1.1 → gateway →
//! gRPC → three nodes with Raft over gRPC and fsyncs), all in one process on loopback:
//! what a tenant service sees.
//!
//! `cargo bench -p lockplane-gateway --bench gateway`. Environment: `CLIENTS` (64),
//! `GROUPS` (16), `SECONDS` (10).
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../node/benches/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lockplane_client::{AcquireOptions, Client};
use lockplane_gateway::ratelimit::Limit;

use common::{ALICE, ThreeNodes, runtime};
use support::{env, gather, percentile as ms};

fn main() {
    runtime().block_on(async {
        let (clients, groups, seconds) = (env("CLIENTS", 64), env("GROUPS", 16) as u32, env("SECONDS", 10));
        // The tenant's rate limit is lifted: the bench measures the data path, not the limiter.
        let unlimited = Limit { per_second: 1e9, burst: 1e9 };
        let cluster = ThreeNodes::start_limited("bench", groups, unlimited).await;
        let client = Client::new(&cluster.url, ALICE);
        let warm = AcquireOptions::new("warm", Duration::from_secs(5));
        for g in 0..groups {
            let _ = client.try_acquire(&format!("warm-{g}"), &warm).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let (client, stop) = (client.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    let (mut acquires, mut releases, mut failures) = (Vec::new(), Vec::new(), 0u64);
                    let options = AcquireOptions::new(format!("client-{c}"), Duration::from_secs(30));
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = format!("bench/{c}/{n}");
                        let t = Instant::now();
                        let Ok(grant) = client.try_acquire(&key, &options).await else {
                            failures += 1;
                            continue;
                        };
                        acquires.push(t.elapsed());
                        let t = Instant::now();
                        match client.release(&key, &options.owner, grant.fencing_token).await {
                            Ok(()) => releases.push(t.elapsed()),
                            Err(_) => failures += 1,
                        }
                    }
                    (acquires, releases, failures)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let (acquires, releases, failures) = gather(workers).await;
        let elapsed = started.elapsed().as_secs_f64();
        println!("SDK -> gateway (HTTP/1.1) -> 3 nodes (gRPC, Raft, fsync), one process, {groups} groups, {clients} clients on distinct keys, {seconds} s");
        println!("| acquire+release cycles/s | acquire p50 / p99 ms | release p50 / p99 ms | failed calls |");
        println!("|---|---|---|---|");
        println!(
            "| {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {failures} |",
            releases.len() as f64 / elapsed,
            ms(&acquires, 0.5),
            ms(&acquires, 0.99),
            ms(&releases, 0.5),
            ms(&releases, 0.99),
        );
        cluster.shutdown().await;
    });
}
