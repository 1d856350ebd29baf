//! W1: `clients` clients, each on its own key, loop acquire → release. Measures cycles per
//! second and the latency of each call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Outcome, Percentiles, Run, Workload};
use crate::stats::Latencies;
use crate::target::Conn;

/// Lease of each grant: long enough never to expire mid-cycle.
const TTL: Duration = Duration::from_secs(30);

struct ClientResult {
    acquires: Latencies,
    releases: Latencies,
    cycles: u64,
    failures: u64,
}

/// Runs W1.
pub async fn run(run: &Run) -> anyhow::Result<Outcome> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::with_capacity(run.clients);
    for c in 0..run.clients {
        let conn = Conn::connect(run.target, &run.endpoints, c as u64 + 1).await?;
        let key = format!("lt-{}-w1-{c}", run.run_id);
        let (measuring, stop) = (Arc::clone(&measuring), Arc::clone(&stop));
        clients.push(tokio::spawn(client(
            conn,
            key,
            format!("c{c}"),
            measuring,
            stop,
        )));
    }
    tokio::time::sleep(run.warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(run.duration).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let (mut acquires, mut releases, mut cycles, mut failures) =
        (Latencies::default(), Latencies::default(), 0, 0);
    for client in clients {
        let result = client.await?;
        acquires.merge(&result.acquires);
        releases.merge(&result.releases);
        cycles += result.cycles;
        failures += result.failures;
    }
    Ok(Outcome {
        target: run.target,
        workload: Workload::W1,
        clients: run.clients,
        seconds,
        per_second: cycles as f64 / seconds,
        acquire_ms: Percentiles::of(&acquires),
        release_ms: Percentiles::of(&releases),
        failures,
        overlaps: 0,
        non_increasing_tokens: 0,
        jain: None,
        max_min_grants: None,
    })
}

async fn client(
    mut conn: Conn,
    key: String,
    owner: String,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> ClientResult {
    let mut result = ClientResult {
        acquires: Latencies::default(),
        releases: Latencies::default(),
        cycles: 0,
        failures: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        let counted = measuring.load(Ordering::Relaxed);
        let t = Instant::now();
        let token = match conn.acquire(&key, &owner, TTL, Duration::ZERO).await {
            Ok(Some(token)) => token,
            Ok(None) | Err(_) => {
                result.failures += u64::from(counted);
                continue;
            }
        };
        let acquired = t.elapsed();
        let t = Instant::now();
        let released = conn.release(&key, &owner, token).await;
        let took = t.elapsed();
        if counted {
            result.acquires.record(acquired);
            match released {
                Ok(true) => {
                    result.releases.record(took);
                    result.cycles += 1;
                }
                Ok(false) | Err(_) => result.failures += 1,
            }
        }
    }
    result
}
