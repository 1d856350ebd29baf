//! `lockplane cluster up`: a local cluster in the foreground. Starts `--nodes` node
//! processes of this same binary on loopback ports, bootstraps them as one cluster, prints
//! their addresses, with `--http` also a gateway (and the `dev` tenant's API key), and on
//! Ctrl-C or SIGTERM stops every one of them. It restarts nothing: a process that exits is
//! reported and left down.
//!
//! Each child's standard input is a pipe from this process; closing it stops the child
//! gracefully, and if this process dies the pipes close too, so no node outlives it. The
//! addresses chosen on the first run are kept in `DIR/cluster-addrs`, because Raft
//! memberships remember them: later runs on the same directory reuse them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lockplane_node::host::MAX_GROUPS;
use lockplane_node::membership::Admin;
use lockplane_proto::Dialer;

use super::certs::LocalTls;
use super::scrape;

use crate::failure::usage;

/// Flags of `lockplane cluster up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// How many node processes to run (1..=9; odd numbers tolerate the most failures).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Directory for every node's data (`DIR/node-ID`) and the cluster's addresses.
    #[arg(
        long,
        env = "LOCKPLANE_DATA_DIR",
        default_value = "./lockplane-cluster"
    )]
    data_dir: PathBuf,
    /// Listen on consecutive ports from this one; free ports are chosen when absent.
    #[arg(long)]
    base_port: Option<u16>,
    /// Lock groups (1..=1024).
    #[arg(long, default_value_t = 16)]
    groups: u32,
    /// Also run a gateway with the REST API on this address.
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<SocketAddr>,
    /// Mutual TLS between the processes and HTTPS for the gateway, with a throw-away CA
    /// and certificates made in DIR/tls (kept for later runs).
    #[arg(long)]
    tls: bool,
    /// The API key of the `dev` tenant the gateway is started with; when absent, the one
    /// recorded in the data directory, else a new random one.
    #[arg(long, env = "LOCKPLANE_DEV_API_KEY")]
    api_key: Option<String>,
    /// The gateway's status cache (with `--http`).
    #[command(flatten)]
    cache: crate::cache_args::CacheArgs,
    /// The audit trail: the nodes publish (`--kafka`); with `--postgres`, an audit
    /// consumer child (the URL in its environment, its `/metrics` on a free port it
    /// prints).
    #[command(flatten)]
    audit: crate::audit_args::PipelineArgs,
}

/// How long the cluster may take to elect leaders and record its shard map.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How long the nodes may take to stop before they are killed.
const STOP_WITHIN: Duration = Duration::from_secs(20);

const ADDRS_FILE: &str = "cluster-addrs";

/// The nodes' metrics addresses, kept like [`ADDRS_FILE`] so that a restarted cluster
/// keeps its scrape targets.
const METRICS_ADDRS_FILE: &str = "cluster-metrics-addrs";

/// Where the audit consumer writes the address of its `/metrics`.
const CONSUMER_METRICS_FILE: &str = "audit-consumer-metrics-addr";

/// Where the nodes publish audit events, and the database a consumer stores them in.
type Pipeline = (Option<lockplane_node::audit::AuditConfig>, Option<String>);

struct NodeChild {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    exited: Option<ExitStatus>,
}

/// Runs the cluster until Ctrl-C or SIGTERM.
pub fn run(args: UpArgs) -> anyhow::Result<()> {
    if !(1..=9).contains(&args.nodes) {
        usage!("--nodes must be in 1..=9, got {}", args.nodes);
    }
    if !(1..=MAX_GROUPS).contains(&args.groups) {
        usage!("--groups must be in 1..={MAX_GROUPS}, got {}", args.groups);
    }
    args.cache.check()?;
    let pipeline = args.audit.check()?;
    if let Some(key) = &args.api_key {
        crate::keys::check(key)?;
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let addrs = addresses(&args)?;
    let members = addrs
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let tls = if args.tls {
        Some(LocalTls::ensure(&args.data_dir)?)
    } else {
        None
    };
    let node_metrics = metrics_addresses(&args.data_dir, &addrs, args.http)?;
    let targets = scrape::Targets {
        nodes: node_metrics.iter().map(|(id, addr)| (*id, *addr)).collect(),
        gateway: args.http,
        gateway_ca: tls.as_ref().map(LocalTls::ca),
        consumer: None,
    };
    scrape::announce(&targets.write(&args.data_dir)?, &args.data_dir);
    let mut children = Vec::new();
    for (id, addr) in &addrs {
        let metrics = node_metrics.get(id).copied();
        match spawn(&exe, &args, *id, (*addr, metrics), &members, tls.as_ref()) {
            Ok(child) => children.push(child),
            Err(e) => {
                stop(&mut children);
                return Err(e);
            }
        }
    }
    for (id, addr) in &addrs {
        println!(
            "node {id}: {addr} (data in {}, metrics on http://{}/metrics)",
            node_dir(&args.data_dir, *id).display(),
            node_metrics[id]
        );
    }
    let runtime = crate::runtime::command()?;
    let endpoints: Vec<String> = addrs.values().map(ToString::to_string).collect();
    let outcome = runtime.block_on(serve(
        &mut children,
        &exe,
        &endpoints,
        &args,
        tls.as_ref(),
        (pipeline, targets),
    ));
    stop(&mut children);
    outcome
}

/// Once the cluster is ready: starts an audit consumer child storing `audit`'s topic in
/// the PostgreSQL at `url` (given in its environment, where a password is not shown).
fn start_consumer(
    exe: &Path,
    audit: &lockplane_node::audit::AuditConfig,
    url: &str,
    metrics_addr_file: &Path,
) -> anyhow::Result<NodeChild> {
    let mut child = Command::new(exe)
        .args(["audit-consumer", "--stop-on-stdin-eof"])
        .args(["--metrics-listen", "127.0.0.1:0", "--metrics-addr-file"])
        .arg(metrics_addr_file)
        .args(["--kafka", &audit.brokers, "--audit-topic", &audit.topic])
        .env("LOCKPLANE_POSTGRES_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the audit consumer")?;
    let stdin = child.stdin.take();
    if let Some(out) = child.stdout.take() {
        forward("audit consumer", out);
    }
    if let Some(err) = child.stderr.take() {
        forward("audit consumer", err);
    }
    println!("audit consumer: {} into PostgreSQL", audit.topic);
    Ok(NodeChild {
        name: "audit consumer".into(),
        child,
        stdin,
        exited: None,
    })
}

/// Once the cluster is ready: starts a gateway child on `http` that serves the `dev`
/// tenant with `key`.
fn start_gateway(
    exe: &Path,
    endpoints: &[String],
    http: SocketAddr,
    key: &str,
    tls: Option<&LocalTls>,
    cache: &crate::cache_args::CacheArgs,
) -> anyhow::Result<NodeChild> {
    let mut command = Command::new(exe);
    command
        .args([
            "gateway",
            "--stop-on-stdin-eof",
            "--listen",
            &http.to_string(),
        ])
        .args(["--endpoint", &endpoints.join(",")]);
    cache.pass_to(&mut command);
    if let Some(tls) = tls {
        command
            .args(tls.client().to_args())
            .args(tls.rest().to_args());
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the gateway")?;
    let stdin = child.stdin.take();
    if let Some(out) = child.stdout.take() {
        forward("gateway", out);
    }
    if let Some(err) = child.stderr.take() {
        forward("gateway", err);
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("gateway: {scheme}://{http} (tenant dev, API key {key})");
    Ok(NodeChild {
        name: "gateway".into(),
        child,
        stdin,
        exited: None,
    })
}

/// Waits for the cluster to be ready (then starts the gateway, if asked for), then for a
/// stop signal; reports children that exit.
async fn serve(
    children: &mut Vec<NodeChild>,
    exe: &Path,
    endpoints: &[String],
    args: &UpArgs,
    tls: Option<&LocalTls>,
    (pipeline, targets): (Pipeline, scrape::Targets),
) -> anyhow::Result<()> {
    let (first, groups) = (endpoints[0].as_str(), args.groups);
    let dialer = match tls {
        Some(tls) => tls.client().dialer()?,
        None => Dialer::default(),
    };
    let admin = Admin::new(dialer.clone(), first);
    let ready = tokio::time::timeout(READY_WITHIN, async {
        loop {
            if let Ok(map) = admin.shard_map().await {
                if map.shards > 0 {
                    return map;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let signal = crate::shutdown::signal(false);
    tokio::pin!(signal);
    let map = tokio::select! {
        map = ready => map.map_err(|_| anyhow::anyhow!("the cluster was not ready within {READY_WITHIN:?}"))?,
        () = &mut signal => return Ok(()),
    };
    let credentials =
        crate::dev_credentials::ensure(&args.data_dir, dialer, first, args.api_key.as_deref())
            .await?;
    if credentials.new_admin_token {
        println!(
            "admin token: {} (also kept in {})",
            credentials.admin_token,
            credentials.admin_token_path.display()
        );
    } else {
        println!("admin token in {}", credentials.admin_token_path.display());
    }
    println!(
        "cluster ready: {} nodes, {} lock groups (shard map version {}); \
         lock and admin API on the addresses above; Ctrl-C stops every node",
        map.nodes.len(),
        groups,
        map.version
    );
    if let Some(tls) = tls {
        print_tls_hints(tls, args.http);
    }
    if let Some(http) = args.http {
        let gateway = start_gateway(exe, endpoints, http, &credentials.api_key, tls, &args.cache)?;
        children.push(gateway);
    }
    if let (Some(audit), Some(url)) = pipeline {
        let addr_file = args.data_dir.join(CONSUMER_METRICS_FILE);
        let _ = std::fs::remove_file(&addr_file);
        children.push(start_consumer(exe, &audit, &url, &addr_file)?);
        // Its metrics port is its own choice: listed in the scrape config once it is known.
        let data_dir = args.data_dir.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                if let Some(addr) = std::fs::read_to_string(&addr_file)
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                {
                    let targets = scrape::Targets {
                        consumer: Some(addr),
                        ..targets
                    };
                    match targets.write(&data_dir) {
                        Ok(config) => println!(
                            "metrics: the audit consumer's http://{addr}/metrics added to {} \
                             (reload a Prometheus already running on it)",
                            config.display()
                        ),
                        Err(e) => println!("{e:#}"),
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            println!(
                "metrics: the audit consumer did not report its metrics address within 60 s; \
                 {} does not list it",
                data_dir.join(scrape::FILE).display()
            );
        });
    }
    loop {
        tokio::select! {
            () = &mut signal => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(250)) => report_exits(children),
        }
    }
}

fn report_exits(children: &mut [NodeChild]) {
    for node in children.iter_mut().filter(|n| n.exited.is_none()) {
        if let Ok(Some(status)) = node.child.try_wait() {
            node.exited = Some(status);
            println!(
                "{} exited ({status}); it is not restarted — Ctrl-C stops the others",
                node.name
            );
        }
    }
}

/// Stops every child: closes its standard input (a graceful stop), waits, then kills the
/// ones still running.
fn stop(children: &mut [NodeChild]) {
    println!("stopping {} processes", children.len());
    for node in children.iter_mut() {
        node.stdin = None;
    }
    let deadline = std::time::Instant::now() + STOP_WITHIN;
    for node in children.iter_mut() {
        while node.exited.is_none() {
            match node.child.try_wait() {
                Ok(Some(status)) => node.exited = Some(status),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = node.child.kill();
                    node.exited = node.child.wait().ok();
                    println!("{} did not stop in time and was killed", node.name);
                }
            }
        }
    }
    println!("all stopped");
}

fn node_dir(data_dir: &Path, id: u64) -> PathBuf {
    data_dir.join(format!("node-{id}"))
}

/// The nodes' addresses: those of an earlier run on this directory, else consecutive ports
/// from `--base-port`, else free loopback ports. Saved for later runs.
fn addresses(args: &UpArgs) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
    let file = args.data_dir.join(ADDRS_FILE);
    if let Ok(text) = std::fs::read_to_string(&file) {
        let saved = parse_addrs(&text)
            .with_context(|| format!("{} is damaged; remove the directory", file.display()))?;
        if saved.len() as u64 != args.nodes {
            usage!(
                "{} holds a {}-node cluster; run with --nodes {} or use another --data-dir",
                args.data_dir.display(),
                saved.len(),
                saved.len()
            );
        }
        return Ok(saved);
    }
    let ports: Vec<u16> = match args.base_port {
        Some(base) => (0..args.nodes)
            .map(|i| u16::try_from(u64::from(base) + i).ok().filter(|p| *p != 0))
            .collect::<Option<_>>()
            .context("--base-port leaves no room for every node below 65536")?,
        None => free_ports(args.nodes)?,
    };
    let addrs: BTreeMap<u64, SocketAddr> = (1..=args.nodes)
        .zip(ports)
        .map(|(id, port)| (id, SocketAddr::from(([127, 0, 0, 1], port))))
        .collect();
    let text: String = addrs.iter().map(|(id, a)| format!("{id}={a}\n")).collect();
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(addrs)
}

/// The nodes' metrics addresses: those of an earlier run on this directory, else free
/// loopback ports other than the nodes' own and the gateway's. Saved for later runs.
fn metrics_addresses(
    data_dir: &Path,
    nodes: &BTreeMap<u64, SocketAddr>,
    gateway: Option<SocketAddr>,
) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
    let file = data_dir.join(METRICS_ADDRS_FILE);
    if let Ok(text) = std::fs::read_to_string(&file) {
        let saved = parse_addrs(&text)
            .with_context(|| format!("{} is damaged; remove it", file.display()))?;
        if saved.keys().eq(nodes.keys()) {
            return Ok(saved);
        }
    }
    let taken: Vec<u16> = nodes
        .values()
        .chain(&gateway)
        .map(SocketAddr::port)
        .collect();
    let mut ports = Vec::new();
    while ports.len() < nodes.len() {
        let port = free_ports(1)?[0];
        if !taken.contains(&port) && !ports.contains(&port) {
            ports.push(port);
        }
    }
    let addrs: BTreeMap<u64, SocketAddr> = nodes
        .keys()
        .zip(ports)
        .map(|(id, port)| (*id, SocketAddr::from(([127, 0, 0, 1], port))))
        .collect();
    let text: String = addrs.iter().map(|(id, a)| format!("{id}={a}\n")).collect();
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(addrs)
}

fn parse_addrs(text: &str) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (id, addr) = line.split_once('=').context("a line is not ID=ADDR")?;
            Ok((id.trim().parse()?, addr.trim().parse()?))
        })
        .collect()
}

fn free_ports(n: u64) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find free loopback ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Tells how to point the CLI at the TLS cluster.
fn print_tls_hints(tls: &LocalTls, http: Option<SocketAddr>) {
    println!(
        "TLS: a throw-away CA and certificates in {} (for this machine only); for the CLI:",
        tls.dir().display()
    );
    if let Some(http) = http {
        println!(
            "  export LOCKPLANE_URL=https://{http} LOCKPLANE_CA_CERT={}",
            tls.ca().display()
        );
    }
    let client = tls.client();
    let show = |path: &Option<PathBuf>| {
        path.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    println!(
        "  export LOCKPLANE_CLUSTER_CA={} LOCKPLANE_CLUSTER_CERT={} LOCKPLANE_CLUSTER_KEY={}",
        show(&client.cluster_ca),
        show(&client.cluster_cert),
        show(&client.cluster_key)
    );
}

fn spawn(
    exe: &Path,
    args: &UpArgs,
    id: u64,
    (addr, metrics): (SocketAddr, Option<SocketAddr>),
    members: &str,
    tls: Option<&LocalTls>,
) -> anyhow::Result<NodeChild> {
    let tls_args = tls.map(|t| t.node().to_args()).unwrap_or_default();
    let mut command = Command::new(exe);
    command
        .args(["node", "--id", &id.to_string(), "--stop-on-stdin-eof"])
        .args([
            "--listen",
            &addr.to_string(),
            "--groups",
            &args.groups.to_string(),
        ])
        .arg("--data-dir")
        .arg(node_dir(&args.data_dir, id))
        .args(["--initial-cluster", members])
        .args(tls_args)
        .env_remove("LOCKPLANE_JOIN");
    if let Some(metrics) = metrics {
        command.args(["--metrics", &metrics.to_string()]);
    }
    args.audit.publish.pass_to(&mut command);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start node {id}"))?;
    let stdin = child.stdin.take();
    if let Some(out) = child.stdout.take() {
        forward(&format!("node {id}"), out);
    }
    if let Some(err) = child.stderr.take() {
        forward(&format!("node {id}"), err);
    }
    Ok(NodeChild {
        name: format!("node {id}"),
        child,
        stdin,
        exited: None,
    })
}

/// Prints a child's output lines, each prefixed with the child's name.
fn forward(name: &str, output: impl Read + Send + 'static) {
    let name = name.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            println!("[{name}] {line}");
        }
    });
}
