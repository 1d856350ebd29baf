//! # lockplane-loadtest
//!
//! Runs lock workloads against Lockplane's REST gateway, etcd v3 or Redis, for a fixed
//! duration after a warm-up, with latencies in HDR histograms; prints one JSON line per run
//! and a Markdown table. W2 checks safety itself (overlapping holders, non-increasing
//! fencing tokens) and exits non-zero when `--require-safe` is given and either is seen.
//! Given the servers' PIDs (`--server-pid`), each run also reports their CPU per operation
//! and memory, and W3 the bytes each held lock costs each process.
//!
//! ```text
//! lockplane-loadtest --target lockplane --url http://127.0.0.1:7070 --api-key KEY \
//!     --workload w1 --workload w2 --clients 1,16,64 --duration-s 10 --warmup-s 2
//! ```
//!
//! Modules: `target` (the systems), `workload` (W1–W5), `stats` (histograms, fairness),
//! `procstat` (servers' CPU and memory), `report` (JSON lines, Markdown), `resp` (a minimal
//! Redis client).

mod procstat;
mod report;
mod resp;
mod stats;
mod target;
mod workload;

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use target::{Endpoints, Kind};
use workload::{Run, Workload};

/// mimalloc instead of glibc malloc: the load generator shares the machine with the
/// systems it measures, and every request allocates; the less CPU it spends, the more the
/// servers get (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "lockplane-loadtest",
    about = "Lock workloads against Lockplane, etcd or Redis"
)]
struct Args {
    /// The system to load.
    #[arg(long, value_enum)]
    target: Kind,
    /// The workloads to run, in order.
    #[arg(long = "workload", value_enum, required = true)]
    workloads: Vec<Workload>,
    /// Client counts to run each workload at.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    clients: Vec<usize>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Unmeasured seconds before each run.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Lockplane gateway URL.
    #[arg(long, env = "LOCKPLANE_URL", default_value = "http://127.0.0.1:7070")]
    url: String,
    /// Lockplane API key.
    #[arg(long, env = "LOCKPLANE_API_KEY", default_value = "")]
    api_key: String,
    /// Redis address.
    #[arg(long, default_value = "127.0.0.1:6379")]
    redis: String,
    /// etcd client endpoints.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd: Vec<String>,
    /// Exit with status 2 if a W2 run saw overlapping holders or non-increasing tokens.
    #[arg(long)]
    require_safe: bool,
    /// PIDs of the target's server processes (repeat or comma-separate): CPU per operation
    /// and resident memory are reported for them.
    #[arg(long = "server-pid", value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// W3: how many distinct locks to take and hold.
    #[arg(long, default_value_t = 1_000_000)]
    locks: u64,
    /// W4: status reads per hundred operations (the rest are acquire → release cycles);
    /// 100 measures the read path alone.
    #[arg(long, default_value_t = 70)]
    read_percent: u64,
    /// W5: how many sessions heartbeat beside the W1 clients.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// W5: the sessions' TTL in seconds; each heartbeats every third of it.
    #[arg(long, default_value_t = 15.0)]
    session_ttl_s: f64,
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    if !(value.is_finite() && (0.0..=86_400.0).contains(&value)) {
        bail!("--{flag} must be between 0 and 86400 seconds, not {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("lockplane-loadtest: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let duration = seconds(args.duration_s, "duration-s")?;
    let warmup = seconds(args.warmup_s, "warmup-s")?;
    if duration.is_zero() {
        bail!("--duration-s must be above 0");
    }
    if let Some(bad) = args.clients.iter().find(|&&c| c == 0 || c > 100_000) {
        bail!("--clients takes counts in 1..=100000, not {bad}");
    }
    let session_ttl = seconds(args.session_ttl_s, "session-ttl-s")?;
    if session_ttl < Duration::from_secs(3) {
        bail!("--session-ttl-s must be at least 3 (heartbeats go every third of it)");
    }
    if args.locks == 0 || args.locks > 100_000_000 {
        bail!("--locks takes a count in 1..=100000000, not {}", args.locks);
    }
    if args.read_percent > 100 {
        bail!("--read-percent takes 0..=100, not {}", args.read_percent);
    }
    if args.sessions > 1_000_000 {
        bail!(
            "--sessions takes a count up to 1000000, not {}",
            args.sessions
        );
    }
    if args.target == Kind::Lockplane && args.api_key.is_empty() {
        bail!("--api-key (or LOCKPLANE_API_KEY) is needed for the lockplane target");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let endpoints = Endpoints {
        lockplane_url: args.url,
        lockplane_key: args.api_key,
        redis_addr: args.redis,
        etcd_endpoints: args.etcd,
    };
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let mut outcomes = Vec::new();
    for &workload in &args.workloads {
        for &clients in &args.clients {
            let run = Run {
                target: args.target,
                endpoints: endpoints.clone(),
                clients,
                warmup,
                duration,
                run_id: format!("{run_id}-{clients}"),
                servers: procstat::Servers::new(args.server_pids.clone()),
                locks: args.locks,
                read_percent: args.read_percent,
                sessions: args.sessions,
                session_ttl,
            };
            let outcome = runtime
                .block_on(async {
                    match workload {
                        Workload::W1 => workload::uncontended::run(&run).await,
                        Workload::W2 => workload::hot_lock::run(&run).await,
                        Workload::W3 => workload::many_held::run(&run).await,
                        Workload::W4 => workload::mixed::run(&run, false).await,
                        Workload::W4Linearizable => workload::mixed::run(&run, true).await,
                        Workload::W5 => workload::sessions::run(&run).await,
                    }
                })
                .with_context(|| format!("{workload:?} at {clients} clients"))?;
            println!("{}", report::json_line(&outcome));
            outcomes.push(outcome);
        }
    }
    println!();
    print!("{}", report::markdown(&outcomes));
    let unsafe_runs = outcomes
        .iter()
        .filter(|o| o.overlaps > 0 || o.non_increasing_tokens > 0 || o.versions_backwards > 0)
        .count();
    if args.require_safe && unsafe_runs > 0 {
        eprintln!(
            "lockplane-loadtest: {unsafe_runs} run(s) saw overlapping holders, non-increasing \
             tokens or status versions going backwards"
        );
        std::process::exit(2);
    }
    Ok(())
}
