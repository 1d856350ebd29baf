//! The workloads of issue 5 built so far: W1 (uncontended), W2 (one hot lock) and W4 (mixed
//! reads and writes). Each runs
//! for a warm-up, then a measured duration, and returns one [`Outcome`].

pub mod hot_lock;
pub mod mixed;
pub mod uncontended;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde::Serialize;

use crate::stats::Latencies;
use crate::target::{Conn, Endpoints, Kind};

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// W1: each client loops acquire → release on its own key.
    W1,
    /// W2: every client contends for one key with blocking acquires.
    W2,
    /// W4: 70% status reads of held keys, 30% acquire → release; cheapest reads.
    W4,
    /// W4 with linearizable reads.
    #[value(name = "w4-linearizable")]
    #[serde(rename = "w4-linearizable")]
    W4Linearizable,
}

/// What one run is.
#[derive(Debug, Clone)]
pub struct Run {
    /// The system.
    pub target: Kind,
    /// Where it is.
    pub endpoints: Endpoints,
    /// Concurrent clients.
    pub clients: usize,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Distinguishes this run's keys from earlier runs' (left-over leases).
    pub run_id: String,
}

/// What one run measured (one JSON line).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The system.
    pub target: Kind,
    /// The workload.
    pub workload: Workload,
    /// Concurrent clients.
    pub clients: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// W1: acquire+release cycles per second; W2: grants per second; W4: operations (reads
    /// and cycles) per second.
    pub per_second: f64,
    /// Acquire latency percentiles, ms.
    pub acquire_ms: Percentiles,
    /// Release latency percentiles, ms.
    pub release_ms: Percentiles,
    /// W4: status read latency percentiles, ms.
    pub read_ms: Option<Percentiles>,
    /// Calls that failed (errors, not refusals).
    pub failures: u64,
    /// W2: times a grant found another holder inside, or a holder found it was not alone.
    pub overlaps: u64,
    /// W2: grants whose token was not above every earlier one.
    pub non_increasing_tokens: u64,
    /// W2: Jain's fairness index of grants per client.
    pub jain: Option<f64>,
    /// W2: most and fewest grants of one client.
    pub max_min_grants: Option<(u64, u64)>,
}

/// p50, p99, p999 in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

impl Percentiles {
    /// The percentiles of `latencies`.
    pub fn of(latencies: &crate::stats::Latencies) -> Self {
        Self {
            p50: latencies.ms(0.5),
            p99: latencies.ms(0.99),
            p999: latencies.ms(0.999),
        }
    }
}

/// When a client counts what it does, and when it stops.
#[derive(Clone, Default)]
pub struct Phase {
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Phase {
    /// True once the warm-up is over (and until the end).
    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed) && !self.stopped()
    }

    /// True once the measured duration is over.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What one client measured.
#[derive(Default)]
pub struct Tally {
    /// Latencies of counted acquires.
    pub acquires: Latencies,
    /// Latencies of counted releases.
    pub releases: Latencies,
    /// Latencies of counted status reads (W4).
    pub reads: Latencies,
    /// Counted cycles (W1) or grants (W2).
    pub done: u64,
    /// Failed calls.
    pub failures: u64,
}

/// Connects `run.clients` clients and runs `client(n, conn, phase)` for each through the
/// warm-up and the measured duration: their tallies, in client order, and the measured
/// seconds.
pub async fn drive<F, Fut>(run: &Run, mut client: F) -> anyhow::Result<(Vec<Tally>, f64)>
where
    F: FnMut(usize, Conn, Phase) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let phase = Phase::default();
    let mut clients = Vec::with_capacity(run.clients);
    for n in 0..run.clients {
        let conn = Conn::connect(run.target, &run.endpoints, n as u64 + 1).await?;
        clients.push(tokio::spawn(client(n, conn, phase.clone())));
    }
    tokio::time::sleep(run.warmup).await;
    phase.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(run.duration).await;
    phase.stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let mut tallies = Vec::with_capacity(run.clients);
    for client in clients {
        tallies.push(client.await?);
    }
    Ok((tallies, seconds))
}

impl Outcome {
    /// The outcome of `workload` from the clients' tallies; the W2 fields empty.
    pub fn of(run: &Run, workload: Workload, tallies: &[Tally], seconds: f64) -> Self {
        let (mut acquires, mut releases, mut reads) = (
            Latencies::default(),
            Latencies::default(),
            Latencies::default(),
        );
        for tally in tallies {
            acquires.merge(&tally.acquires);
            releases.merge(&tally.releases);
            reads.merge(&tally.reads);
        }
        let done: u64 = tallies.iter().map(|t| t.done).sum();
        Self {
            target: run.target,
            workload,
            clients: run.clients,
            seconds,
            per_second: done as f64 / seconds,
            acquire_ms: Percentiles::of(&acquires),
            release_ms: Percentiles::of(&releases),
            read_ms: (!reads.is_empty()).then(|| Percentiles::of(&reads)),
            failures: tallies.iter().map(|t| t.failures).sum(),
            overlaps: 0,
            non_increasing_tokens: 0,
            jain: None,
            max_min_grants: None,
        }
    }
}
