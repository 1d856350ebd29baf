//! Helpers shared by the node's benchmarks.
#![allow(dead_code)]

use std::time::Duration;

/// The number in environment variable `name`, or `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile of `sorted` latencies, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// What one load worker measured: acquire latencies, release latencies, failed calls.
pub type WorkerResult = (Vec<Duration>, Vec<Duration>, u64);

/// Waits for every worker and merges what they measured, latencies sorted.
pub async fn gather(workers: Vec<tokio::task::JoinHandle<WorkerResult>>) -> WorkerResult {
    let (mut acquires, mut releases, mut failures) = (Vec::new(), Vec::new(), 0);
    for worker in workers {
        let (a, r, f) = worker.await.expect("a bench worker panicked");
        acquires.extend(a);
        releases.extend(r);
        failures += f;
    }
    acquires.sort_unstable();
    releases.sort_unstable();
    (acquires, releases, failures)
}
