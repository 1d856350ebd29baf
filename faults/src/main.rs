//! `lockplane-faults`: a fault run over real processes. Three `lockplane node`s and a
//! gateway, each on its own network host (Linux network namespaces joined by a bridge;
//! needs root), serve clients that contend for a hot key and use keys of their own, while
//! faults aimed at the hot key's leader come and go: partitions, pauses (SIGSTOP), kill -9
//! of one node or of all, the gateway cut off from a node, and a client paused past its
//! lease against a fencing resource. Afterwards the history is checked for
//! linearizability, the fencing resource for two holders, and the answers for anything
//! outside 200, 4xx and 503; availability and recovery times are printed as a table,
//! with the command that replays the run.

mod client;
mod cluster;
mod disk;
mod fence;
mod netns;
mod paused_client;
mod record;
mod report;
mod schedule;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use shard_map::ShardRing;
use testkit::rng::Rng;

use crate::client::Gateway;
use crate::cluster::Cluster;
use crate::fence::Fence;
use crate::netns::Hosts;
use crate::record::Recorder;
use crate::report::Window;
use crate::schedule::{FaultKind, Planned};
use crate::workload::Shared;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "lockplane-faults",
    about = "Fault runs over real Lockplane processes on separate network hosts (root)"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a kept history (`history.jsonl` of a run's directory) again; with `--key`,
    /// only that key, and say the first call whose answer no order explains.
    Check {
        /// The history file.
        history: PathBuf,
        /// Only this key.
        #[arg(long)]
        key: Option<String>,
    },
    /// The paused client's process (started by a run; not for use by hand).
    #[command(hide = true)]
    PausedClient {
        #[arg(long)]
        gateway: String,
        #[arg(long)]
        api_key: String,
        #[arg(long)]
        resource: String,
        #[arg(long)]
        key: String,
    },
}

/// Flags of a run.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// How long the faults go on, in seconds (after a 5 s warm-up).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    duration: u64,
    /// The seed that draws the faults and the clients' choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// The faults to inject, comma-separated: partition, pause, kill, disk-full,
    /// clock-jump, gateway-cut, paused-client, kill-all (default: all).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<FaultKind>,
    /// Lock groups of the cluster.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=64))]
    groups: u32,
    /// The `lockplane` binary (default: the one beside this program).
    #[arg(long)]
    lockplane: Option<PathBuf>,
    /// Where data and logs go (default: a new directory under /tmp, deleted after a
    /// clean run).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Fail when a target (recovery times, deadlines) is missed, not only on violations.
    #[arg(long)]
    strict: bool,
}

/// Quiet time after each fault's heal, before the next fault.
const QUIET: Duration = Duration::from_secs(8);

/// Warm-up before the first fault.
const WARM_UP: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = match args.command {
        Some(Command::PausedClient {
            gateway,
            api_key,
            resource,
            key,
        }) => runtime().and_then(|rt| {
            rt.block_on(paused_client::run_client(
                &gateway, &api_key, &resource, &key,
            ))
        }),
        Some(Command::Check { history, key }) => check_again(&history, key.as_deref()),
        None => run(args.run),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lockplane-faults: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `lockplane-faults check`: the linearizability check of a kept history; for a key that
/// fails, the shortest prefix (by call time) that already fails, and its last call.
fn check_again(path: &std::path::Path, key: Option<&str>) -> anyhow::Result<()> {
    let records = record::read_jsonl(path)?;
    let mut ops: Vec<_> = records
        .into_iter()
        .map(|r| r.op)
        .filter(|op| key.is_none_or(|k| op.key == k))
        .collect();
    ops.sort_by_key(|op| op.called);
    let report = testkit::linear::check(&ops, testkit::linear::DEFAULT_BUDGET);
    println!("{report}");
    for violation in &report.violations {
        println!("violation: {violation}");
    }
    if let (Some(_), false) = (key, report.violations.is_empty()) {
        // The calls sent up to the n-th, those answered later counted as unknown (weaker,
        // so a prefix fails only if the whole history does from there on).
        let fails = |n: usize| {
            let cut = ops[n - 1].called;
            let prefix: Vec<_> = ops[..n]
                .iter()
                .cloned()
                .map(|mut op| {
                    if op.answered > cut {
                        op.answer = testkit::linear::Answer::Unknown;
                    }
                    op
                })
                .collect();
            !testkit::linear::check(&prefix, testkit::linear::DEFAULT_BUDGET)
                .violations
                .is_empty()
        };
        let (mut good, mut bad) = (0, ops.len());
        while bad - good > 1 {
            let mid = (good + bad) / 2;
            if fails(mid) { bad = mid } else { good = mid }
        }
        println!(
            "the first {bad} calls already fail; the last of them: {:?}",
            ops[bad - 1]
        );
        for op in &ops[bad.saturating_sub(12)..bad] {
            println!("  {op:?}");
        }
    }
    if report.violations.is_empty() && report.undecided.is_empty() {
        Ok(())
    } else {
        bail!("the history is not linearizable")
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() % 1_000_000)
    });
    let kinds = if args.faults.is_empty() {
        schedule::ALL.to_vec()
    } else {
        args.faults.clone()
    };
    let lockplane = match &args.lockplane {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program has no directory")?
            .join("lockplane"),
    };
    if !lockplane.is_file() {
        bail!(
            "no lockplane binary at {} (build it with `cargo build -p lockplane`, or give --lockplane)",
            lockplane.display()
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("lockplane-faults-{seed}-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let names: Vec<String> = kinds.iter().map(ToString::to_string).collect();
    let replay = format!(
        "lockplane-faults --seed {seed} --duration {} --groups {} --faults {}",
        args.duration,
        args.groups,
        names.join(",")
    );
    println!("{replay}\ndata and logs in {}", dir.display());
    let plan = schedule::plan(seed, &kinds, Duration::from_secs(args.duration), QUIET);
    let net = Hosts::create(
        &format!("lpf{}", std::process::id()),
        &["n1", "n2", "n3", "edge"],
    )?;
    net.enter("edge")?;
    // Ctrl-C or SIGTERM ends the run early but cleanly: the processes are stopped and the
    // namespaces deleted (by the drops) before this returns.
    let outcome = runtime()?.block_on(async {
        tokio::select! {
            outcome = faults(&lockplane, &dir, &net, args.groups, seed, &plan) => outcome,
            () = interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    drop(net);
    let verdict = outcome?;
    println!("\n{}", verdict.text);
    let mut failed = verdict.violations.clone();
    if args.strict {
        failed.extend(verdict.missed.iter().cloned());
    }
    for missed in &verdict.missed {
        println!("target missed: {missed}");
    }
    if failed.is_empty() {
        println!("0 violations");
        if args.dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Ok(());
    }
    for v in &verdict.violations {
        println!("violation: {v}");
    }
    bail!(
        "{} problems; replay with: {replay} (logs kept in {})",
        failed.len(),
        dir.display()
    )
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// What a run concluded.
struct Verdict {
    text: String,
    violations: Vec<String>,
    missed: Vec<String>,
}

async fn faults(
    lockplane: &std::path::Path,
    dir: &std::path::Path,
    net: &Hosts,
    groups: u32,
    seed: u64,
    plan: &[Planned],
) -> anyhow::Result<Verdict> {
    let mut cluster = Cluster::start(lockplane, dir, net, groups).await?;
    let gateway = Gateway::new(
        &format!("http://127.0.0.1:{}", cluster::GATEWAY_PORT),
        cluster::API_KEY,
    );
    wait_until_serving(&gateway).await?;
    let fence = Arc::new(Fence::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let resource = listener.local_addr()?.to_string();
    let serving = tokio::spawn(Arc::clone(&fence).serve(listener));
    let shared = Shared {
        gateway,
        recorder: Arc::new(Recorder::new()),
        fence: Arc::clone(&fence),
        ring: Arc::new(ShardRing::new(groups)),
        tenant: cluster.tenant,
        stop: Arc::new(AtomicBool::new(false)),
    };
    let mut rng = Rng::new(seed);
    let mut clients = Vec::new();
    for i in 0..6 {
        clients.push(tokio::spawn(workload::hot_client(
            shared.clone(),
            format!("hot{i}"),
            rng.fork(),
        )));
    }
    for i in 0..4 {
        clients.push(tokio::spawn(workload::own_client(
            shared.clone(),
            format!("c{i}"),
            8,
            rng.fork(),
        )));
    }
    clients.push(tokio::spawn(workload::reader(shared.clone())));
    for group in 1..=groups {
        let key = workload::probe_key(&shared.ring, shared.tenant, group);
        clients.push(tokio::spawn(workload::prober(shared.clone(), key)));
    }
    tokio::time::sleep(WARM_UP).await;
    let hot_group = shared.ring.group_of(shared.tenant, workload::HOT_KEY);
    let mut windows = Vec::new();
    let mut problems = Vec::new();
    for (n, planned) in plan.iter().enumerate() {
        let target = cluster.leader_of(hot_group).await.unwrap_or(1);
        let mut start = shared.recorder.now();
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let jump = if planned.kind == FaultKind::ClockJump {
            format!(" ({:+} min)", planned.jump_ms / 60_000)
        } else {
            String::new()
        };
        println!(
            "fault {}: {}{jump} of node {target} for {:?} at {:.3} s (unix {}.{:03})",
            n + 1,
            planned.kind,
            planned.length,
            start.as_secs_f64(),
            unix.as_secs(),
            unix.subsec_millis()
        );
        if planned.kind == FaultKind::PausedClient {
            let key = format!("paused-{n}");
            match paused_client::pause_once(&shared, &key, &resource, planned.length).await {
                Ok(outcome) => problems.extend(outcome.problems()),
                Err(e) => problems.push(format!("paused client: {e:#}")),
            }
        } else {
            let injected = schedule::inject(planned, target, &mut cluster, net).await?;
            if planned.kind == FaultKind::DiskFull {
                // The disk is full once the filler is written (hundreds of megabytes).
                start = shared.recorder.now();
            }
            tokio::time::sleep(planned.length).await;
            schedule::heal(injected, &mut cluster, net)?;
        }
        windows.push(Window {
            kind: planned.kind,
            target,
            start,
            healed: shared.recorder.now(),
        });
        tokio::time::sleep(QUIET).await;
        for (process, status) in cluster.crashed() {
            problems.push(format!("{process} exited on its own ({status})"));
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = tokio::time::timeout(Duration::from_secs(30), client).await;
    }
    serving.abort();
    drop(cluster);
    let records = shared.recorder.records();
    let history = dir.join("history.jsonl");
    record::write_jsonl(&records, &history)
        .with_context(|| format!("cannot write {}", history.display()))?;
    let operations: Vec<_> = records.iter().map(|r| r.op.clone()).collect();
    let linear = testkit::linear::check(&operations, testkit::linear::DEFAULT_BUDGET);
    let fenced = fence.stats();
    let figures = report::figures(&records, &windows);
    let mut text = figures.text;
    text.push_str(&format!("\nlinearizability: {linear}\n"));
    text.push_str(&format!(
        "fencing resource: {} writes accepted, {} stale writes refused (fencing at work), {} refused while the writer's lease was valid\n",
        fenced.accepted,
        fenced.fenced,
        fenced.violations.len()
    ));
    let mut violations = problems;
    violations.extend(
        linear
            .violations
            .iter()
            .map(|v| format!("linearizability: {v}")),
    );
    violations.extend(
        linear
            .undecided
            .iter()
            .map(|k| format!("linearizability: {k} undecided (search budget spent)")),
    );
    violations.extend(fenced.violations.iter().map(|v| format!("fencing: {v}")));
    violations.extend(figures.bad_answers.iter().map(|b| format!("answer: {b}")));
    violations.extend(figures.slow_heals.iter().map(|h| format!("recovery: {h}")));
    Ok(Verdict {
        text,
        violations,
        missed: figures.missed,
    })
}

/// Waits until the gateway answers a status read (the cluster is ready and the tenant
/// known).
async fn wait_until_serving(gateway: &Gateway) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if gateway.status(workload::HOT_KEY).await.status == 200 {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            bail!("the gateway did not serve within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
