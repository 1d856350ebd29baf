//! The workloads: W1 (uncontended), W2 (one hot lock), W3 (many held locks), W4 (mixed
//! reads and writes) and W5 (W1 beside many heartbeating sessions). The timed ones run for
//! a warm-up, then a measured duration; W3 runs until its count of locks is held. Each
//! returns one [`Outcome`], with the servers' CPU and memory when their PIDs are known.

pub mod freshness;
pub mod hot_lock;
pub mod many_held;
pub mod mixed;
pub mod sessions;
pub mod uncontended;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde::Serialize;

use crate::procstat::{Sample, Servers};
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
    /// W3: acquire many distinct locks with a long lease and hold them; memory per lock.
    W3,
    /// W4: 70% status reads of held keys, 30% acquire → release; cheapest reads.
    W4,
    /// W4 with linearizable reads.
    #[value(name = "w4-linearizable")]
    #[serde(rename = "w4-linearizable")]
    W4Linearizable,
    /// W5: W1 while many sessions heartbeat at a third of their TTL.
    W5,
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
    /// The target's server processes, for CPU and memory figures.
    pub servers: Servers,
    /// W3: how many locks to take and hold.
    pub locks: u64,
    /// W4: status reads per hundred operations.
    pub read_percent: u64,
    /// W5: how many sessions heartbeat beside the W1 clients.
    pub sessions: usize,
    /// W5: the sessions' TTL; each heartbeats every third of it.
    pub session_ttl: Duration,
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
    /// W4: status reads per hundred operations.
    pub read_percent: Option<u64>,
    /// W4 on Lockplane, cheapest reads: from a grant's or release's answer to the first
    /// status read that shows it, ms (`freshness`).
    pub change_shown_ms: Option<Percentiles>,
    /// Calls that failed (errors, not refusals).
    pub failures: u64,
    /// W2: times a grant found another holder inside, or a holder found it was not alone.
    pub overlaps: u64,
    /// W2: grants whose token was not above every earlier one.
    pub non_increasing_tokens: u64,
    /// W4: status reads that showed a key at a lower version than the same client had seen.
    pub versions_backwards: u64,
    /// W2: Jain's fairness index of grants per client.
    pub jain: Option<f64>,
    /// W2: most and fewest grants of one client.
    pub max_min_grants: Option<(u64, u64)>,
    /// What the server processes spent while measured (with `--server-pid`).
    pub server: Option<ServerCost>,
    /// W3: locks held at the end, and resident bytes each added to each server process.
    pub held: Option<HeldLocks>,
    /// W5: the sessions' keepalives.
    pub keepalives: Option<Keepalives>,
}

/// The servers' CPU and memory over a measured run.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCost {
    /// CPU time of all server processes per counted operation, µs.
    pub cpu_us_per_op: f64,
    /// Cores the server processes kept busy on average.
    pub cores: f64,
    /// Resident memory of each server process at the end, MiB (in `--server-pid` order).
    pub rss_mib: Vec<f64>,
}

impl ServerCost {
    fn between(before: &Sample, after: &Sample, seconds: f64, ops: u64) -> Self {
        let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
        Self {
            cpu_us_per_op: if ops == 0 {
                0.0
            } else {
                cpu * 1e6 / ops as f64
            },
            cores: cpu / seconds,
            rss_mib: after.rss.iter().map(|&b| b as f64 / 1_048_576.0).collect(),
        }
    }
}

/// W3's memory figures.
#[derive(Debug, Clone, Serialize)]
pub struct HeldLocks {
    /// Locks held when memory was read.
    pub locks: u64,
    /// Growth of each server process's resident memory per held lock, bytes (in
    /// `--server-pid` order).
    pub bytes_per_lock: Vec<f64>,
}

/// W5's keepalive figures.
#[derive(Debug, Clone, Serialize)]
pub struct Keepalives {
    /// Sessions heartbeating.
    pub sessions: usize,
    /// Sessions opened per second before the run.
    pub opened_per_second: f64,
    /// Keepalives answered per second.
    pub per_second: f64,
    /// Their latency, ms.
    pub latency_ms: Percentiles,
    /// Keepalives that found their session already ended.
    pub sessions_lost: u64,
    /// Keepalives that failed (errors).
    pub failures: u64,
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
    /// W4: status reads that showed a key at a lower version than this client saw before.
    pub versions_backwards: u64,
}

/// What the clients of a timed run measured.
pub struct Measured {
    /// Each client's tally, in client order.
    pub tallies: Vec<Tally>,
    /// The measured seconds.
    pub seconds: f64,
    /// The servers at the start and the end of the measured time.
    pub server: Option<(Sample, Sample)>,
}

/// Connects `run.clients` clients and runs `client(n, conn, phase)` for each through the
/// warm-up and the measured duration.
pub async fn drive<F, Fut>(run: &Run, mut client: F) -> anyhow::Result<Measured>
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
    let before = run.servers.sample()?;
    phase.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(run.duration).await;
    phase.stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let after = run.servers.sample()?;
    let mut tallies = Vec::with_capacity(run.clients);
    for client in clients {
        tallies.push(client.await?);
    }
    Ok(Measured {
        tallies,
        seconds,
        server: before.zip(after),
    })
}

impl Outcome {
    /// The outcome of `workload` from what the clients measured; the fields of W2, W3 and
    /// W5 empty.
    pub fn of(run: &Run, workload: Workload, measured: &Measured) -> Self {
        let (tallies, seconds) = (&measured.tallies, measured.seconds);
        let (mut acquires, mut releases, mut reads) = (
            Latencies::default(),
            Latencies::default(),
            Latencies::default(),
        );
        for tally in tallies.iter() {
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
            read_percent: None,
            change_shown_ms: None,
            failures: tallies.iter().map(|t| t.failures).sum(),
            overlaps: 0,
            non_increasing_tokens: 0,
            versions_backwards: tallies.iter().map(|t| t.versions_backwards).sum(),
            jain: None,
            max_min_grants: None,
            server: measured
                .server
                .as_ref()
                .map(|(before, after)| ServerCost::between(before, after, seconds, done)),
            held: None,
            keepalives: None,
        }
    }
}
