//! The workloads of issue 5 built so far: W1 (uncontended) and W2 (one hot lock). Each runs
//! for a warm-up, then a measured duration, and returns one [`Outcome`].

pub mod hot_lock;
pub mod uncontended;

use std::time::Duration;

use clap::ValueEnum;
use serde::Serialize;

use crate::target::{Endpoints, Kind};

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// W1: each client loops acquire → release on its own key.
    W1,
    /// W2: every client contends for one key with blocking acquires.
    W2,
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
    /// W1: acquire+release cycles per second; W2: grants per second.
    pub per_second: f64,
    /// Acquire latency percentiles, ms.
    pub acquire_ms: Percentiles,
    /// Release latency percentiles, ms.
    pub release_ms: Percentiles,
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
