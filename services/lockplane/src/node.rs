//! `lockplane node`: runs one node until SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lockplane_node::clock::{Clock, SystemClock};
use lockplane_node::group::MetaGroup;
use lockplane_node::grpc::GrpcTransport;
use lockplane_node::host::{DEFAULT_REGION, MAX_GROUPS, Node, NodeConfig};
use lockplane_node::membership::Admin;
use lockplane_node::quorum::Unfit;
use lockplane_node::raft::{Entry, NodeId};
use lockplane_node::server::NodeServer;
use lockplane_node::wal::{LogEngine, LogHealth};
use lockplane_proto::Dialer;
use lockplane_proto::admin::NodeEntry;
use lockplane_proto::lock::ErrorCode;
use openraft::BasicNode;

use crate::failure::usage;
use crate::tls::ClusterTlsArgs;

/// Flags of `lockplane node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This node's id, the same in every lock group (a positive number).
    #[arg(long, env = "LOCKPLANE_NODE_ID")]
    id: NodeId,
    /// Address to serve Raft and the lock API on, as other nodes and gateways reach it.
    #[arg(long, env = "LOCKPLANE_LISTEN", default_value = "127.0.0.1:7101")]
    listen: SocketAddr,
    /// Directory for the write-ahead log and snapshots.
    #[arg(long, env = "LOCKPLANE_DATA_DIR", default_value = "./lockplane-data")]
    data_dir: PathBuf,
    /// Lock groups hosted (1..=1024); every node of a cluster must use the same number.
    #[arg(long, env = "LOCKPLANE_GROUPS", default_value_t = 16)]
    groups: u32,
    /// The region this node runs in, recorded in the shard map.
    #[arg(long, env = "LOCKPLANE_REGION", default_value = DEFAULT_REGION)]
    region: String,
    /// Members of a new cluster, `ID=HOST:PORT,...`, this node included. Every member
    /// starts with the same list; a node that already has state ignores it.
    #[arg(long, env = "LOCKPLANE_INITIAL_CLUSTER", value_parser = parse_members,
          conflicts_with_all = ["bootstrap", "join"])]
    initial_cluster: Option<Members>,
    /// Start a new cluster with this node as its only member (others then `--join`).
    #[arg(long, conflicts_with = "join")]
    bootstrap: bool,
    /// Join the cluster that the node at HOST:PORT belongs to: record this node in its
    /// shard map; `lockplane cluster add-node` then makes it a member of the groups.
    #[arg(long, env = "LOCKPLANE_JOIN", value_name = "HOST:PORT")]
    join: Option<String>,
    /// The cluster's admin token: needed to join (`--join`) or to record a changed address
    /// or region; with `--bootstrap`, the token to create instead of a random one.
    #[arg(long, env = "LOCKPLANE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Where to serve `GET /metrics` (Prometheus text: Raft, locks, the write-ahead log,
    /// the audit backlog, the process); not served unless given.
    #[arg(long, env = "LOCKPLANE_METRICS_LISTEN", value_name = "HOST:PORT")]
    metrics: Option<SocketAddr>,
    #[command(flatten)]
    tls: ClusterTlsArgs,
    #[command(flatten)]
    audit: crate::audit_args::AuditArgs,
    /// Stop when standard input closes (used by `lockplane cluster up`, so that no node
    /// outlives the command that started it).
    #[arg(long, hide = true)]
    stop_on_stdin_eof: bool,
    /// Test hook: the wall clock is off by the signed number of milliseconds this file
    /// holds, read at start and whenever it changes (the fault suite's clock jumps).
    #[arg(long, hide = true, value_name = "FILE")]
    test_clock_offset_file: Option<PathBuf>,
}

/// The `--initial-cluster` list.
#[derive(Debug, Clone)]
struct Members(BTreeMap<NodeId, SocketAddr>);

fn parse_members(text: &str) -> Result<Members, String> {
    let mut members = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not ID=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("node id {id:?} in {item:?} is not a number"))?;
        if id == 0 {
            return Err(format!("node id 0 in {item:?}: ids start at 1"));
        }
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("address {addr:?} of node {id} is not HOST:PORT"))?;
        if members.insert(id, addr).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if members.is_empty() {
        return Err("the list is empty".into());
    }
    Ok(Members(members))
}

/// Starts the node and serves until SIGTERM or Ctrl-C, then shuts down cleanly.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    if args.id == 0 {
        usage!("--id must be a positive number");
    }
    if !(1..=MAX_GROUPS).contains(&args.groups) {
        usage!("--groups must be in 1..={MAX_GROUPS}, got {}", args.groups);
    }
    if args.region.is_empty() || args.region.len() > 256 {
        usage!(
            "--region must be 1..=256 bytes, got {} bytes",
            args.region.len()
        );
    }
    if let Some(Members(members)) = &args.initial_cluster {
        match members.get(&args.id) {
            None => usage!("--initial-cluster does not list this node (id {})", args.id),
            Some(addr) if *addr != args.listen => usage!(
                "--initial-cluster lists node {} at {addr}, but --listen is {}",
                args.id,
                args.listen
            ),
            Some(_) => {}
        }
    }
    let runtime = crate::runtime::server()?;
    runtime.block_on(serve(args))
}

async fn serve(args: NodeArgs) -> anyhow::Result<()> {
    let tls = args.tls.load()?;
    let dialer = Dialer::new(tls.clone());
    let stop_signal = crate::shutdown::signal(args.stop_on_stdin_eof);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let metrics_listener = match args.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--metrics)"))?,
        ),
        None => None,
    };
    let mut config = NodeConfig::new(args.id, args.data_dir.clone());
    config.groups = args.groups;
    config.region = args.region.clone();
    config.audit = args.audit.config()?;
    let wall: Arc<dyn Clock> = match &args.test_clock_offset_file {
        Some(path) => {
            let clock = crate::test_clock::clock_from(path)?;
            tokio::spawn(crate::test_clock::follow(
                args.id,
                path.clone(),
                Arc::clone(&clock),
            ));
            clock
        }
        None => Arc::new(SystemClock),
    };
    let node = Node::start(config, Arc::new(GrpcTransport::new(dialer.clone())), wall)
        .await
        .with_context(|| format!("cannot start the node in {}", args.data_dir.display()))?;
    let metrics_server = match metrics_listener {
        Some(listener) => {
            let (node_metrics, process) = (
                node.metrics(),
                telemetry::process::ProcessMetrics::new().context("process metrics")?,
            );
            let render = Arc::new(move || {
                telemetry::metrics::render(&[node_metrics.scrape(), process.scrape()])
            });
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let served = tokio::spawn(telemetry::metrics::serve(listener, render, async move {
                let _ = stopped.await;
            }));
            Some((stop, served))
        }
        None => None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = NodeServer::new(&node).with_tls(tls);
    let server = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    tracing::info!(
        node = args.id,
        groups = args.groups,
        listen = %args.listen,
        transport = if dialer.uses_tls() { "mutual TLS" } else { "plain gRPC" },
        data_dir = %args.data_dir.display(),
        metrics = %args.metrics.map_or_else(|| "off".to_string(), |a| format!("http://{a}/metrics")),
        "node serving Raft and the lock API"
    );
    let initial = match (&args.initial_cluster, args.bootstrap) {
        (Some(Members(members)), _) => Some(members.clone()),
        (None, true) => Some(BTreeMap::from([(args.id, args.listen)])),
        (None, false) => None,
    };
    if let Some(members) = initial {
        let members = members
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr.to_string())))
            .collect();
        node.initialize(members)
            .await
            .context("cannot initialize the cluster")?;
    }
    let own = Admin::new(dialer.clone(), args.listen.to_string());
    if args.bootstrap {
        tokio::spawn(bootstrap_admin(own, args.id, args.admin_token.clone()));
    }
    let entry = NodeEntry {
        id: args.id,
        addr: args.listen.to_string(),
        region: args.region.clone(),
    };
    let endpoint = args.join.clone().unwrap_or_else(|| args.listen.to_string());
    let admin = Admin::new(dialer.with_admin_token(args.admin_token.clone()), endpoint);
    let registration = Registration {
        admin,
        entry,
        joining: args.join.is_some(),
        has_token: args.admin_token.is_some(),
    };
    tokio::spawn(registration.run(node.meta()));
    for group in node.groups() {
        tokio::spawn(report_leaders(group.id(), group.raft().metrics()));
        tokio::spawn(report_quorum(group.id(), group.quorum().subscribe()));
    }
    let log_failed = tokio::select! {
        () = stop_signal => None,
        failure = watch_log_health(args.id, node.log()) => Some(failure),
    };
    if let Some(failure) = &log_failed {
        tracing::error!(node = args.id, "the write-ahead log {failure}; stopping");
    }
    tracing::info!(node = args.id, "node stopping");
    if let Some((stop, served)) = metrics_server {
        // Stopped before the groups: scrapes are not answered while the node closes.
        let _ = stop.send(());
        if tokio::time::timeout(METRICS_STOP_WITHIN, served)
            .await
            .is_err()
        {
            tracing::warn!(
                node = args.id,
                "a /metrics scrape did not finish; stopping anyway"
            );
        }
    }
    let _ = stop.send(());
    let served = server.await.context("the gRPC server task failed")?;
    tracing::info!(node = args.id, "server closed; stopping the groups");
    node.shutdown().await;
    served.context("the gRPC server failed")?;
    tracing::info!(node = args.id, "node stopped");
    match log_failed {
        Some(failure) => anyhow::bail!("the write-ahead log {failure}"),
        None => Ok(()),
    }
}

/// Creates the admin token of a cluster this node bootstraps: `chosen`, or a new one that
/// is printed once. A restart finds it created already.
async fn bootstrap_admin(own: Admin, id: NodeId, chosen: Option<String>) {
    let token = match chosen.clone().map_or_else(crate::keys::new_admin_token, Ok) {
        Ok(token) => token,
        Err(e) => {
            tracing::error!(node = id, "could not create the admin token: {e:#}");
            return;
        }
    };
    match own.set_admin_token(shard_map::key_hash(&token), true).await {
        // Printed, not logged: the one time the token is shown, to whoever started the
        // node, and not kept by whatever collects the logs.
        Ok(()) if chosen.is_none() => {
            println!("lockplane node {id}: admin token: {token}");
            println!("lockplane node {id}: (shown once; the cluster keeps only its hash)");
        }
        Ok(()) => tracing::info!(node = id, "admin token set"),
        Err(e) if e.code() == ErrorCode::PermissionDenied => {
            tracing::info!(node = id, "the cluster has its admin token already");
        }
        Err(e) => tracing::error!(
            node = id,
            "could not create the admin token: {}",
            e.detail().message
        ),
    }
}

/// Recording this node (address and region) in the shard map.
struct Registration {
    admin: Admin,
    entry: NodeEntry,
    joining: bool,
    has_token: bool,
}

impl Registration {
    /// Records the node unless the map (as this node's meta replica shows it once it has
    /// one) already does; joining, or changing a recorded address or region, needs the
    /// admin token.
    async fn run(self, meta: Arc<MetaGroup>) {
        let id = self.entry.id;
        if !self.joining && self.recorded(&meta).await {
            return;
        }
        if !self.has_token {
            tracing::error!(
                node = id,
                addr = %self.entry.addr,
                region = %self.entry.region,
                "cannot record this node in the shard map: joining or changing a node needs \
                 the admin token (--admin-token or LOCKPLANE_ADMIN_TOKEN)"
            );
            return;
        }
        let endpoint = self.admin.endpoint().to_string();
        match self.admin.register(self.entry).await {
            Ok(_) if self.joining => tracing::info!(
                node = id,
                "joined via {endpoint}; make it a member of the groups with \
                 `lockplane cluster add-node --endpoint {endpoint} --id {id}`"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(
                node = id,
                "could not record this node in the shard map via {endpoint}: {}",
                e.detail().message
            ),
        }
    }

    /// True once this node's meta replica shows the node recorded as it is (waits up to a
    /// minute for the replica to learn the map).
    async fn recorded(&self, meta: &MetaGroup) -> bool {
        let info = shard_map::NodeInfo {
            addr: self.entry.addr.clone(),
            region: self.entry.region.clone(),
        };
        for _ in 0..600 {
            let map = meta.shard_map();
            if map.is_initialized() {
                return map.nodes.get(&self.entry.id) == Some(&info);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// Prints each leader (and term) this node learns of for group `id`.
async fn report_leaders(
    id: u32,
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>,
) {
    let mut known = None;
    loop {
        let (leader, term) = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.current_term)
        };
        if let (Some(leader), true) = (leader, known != Some((leader, term))) {
            known = Some((Some(leader), term));
            tracing::info!(group = id, leader, term, "leader known");
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Prints when this node, leading group `id`, stops acting as its leader (no quorum heard,
/// or a log that cannot make writes durable) and serves nothing for it, and when that ends.
async fn report_quorum(id: u32, mut lost: tokio::sync::watch::Receiver<Option<Unfit>>) {
    while lost.changed().await.is_ok() {
        let unfit = lost.borrow_and_update().clone();
        match unfit {
            Some(unfit) => tracing::warn!(
                group = id,
                "this node leads the group but {}; serving nothing for it until that ends or \
                 another leader is elected",
                unfit.describe()
            ),
            None => tracing::info!(
                group = id,
                "this node may lead again (a quorum answers and its log works), or another \
                 node leads"
            ),
        }
    }
}

/// How long the `/metrics` listener may take to finish its scrapes when the node stops.
const METRICS_STOP_WITHIN: Duration = Duration::from_secs(5);

/// How often the node looks at its write-ahead log's health.
const LOG_HEALTH_EVERY: Duration = Duration::from_millis(250);

/// Prints when the write-ahead log stalls on a full disk and when it resumes, and returns
/// the error once it has failed for good (a failed fsync): the node must then stop, and a
/// restart recovers from what is on disk.
async fn watch_log_health(id: NodeId, log: Arc<LogEngine<Entry>>) -> String {
    let mut stalled = false;
    loop {
        match log.health() {
            LogHealth::Healthy if stalled => {
                stalled = false;
                tracing::info!(node = id, "the write-ahead log writes again");
            }
            LogHealth::Healthy => {}
            health @ LogHealth::Stalled { .. } if !stalled => {
                stalled = true;
                tracing::warn!(node = id, "the write-ahead log is {}", health.describe());
            }
            LogHealth::Stalled { .. } => {}
            health @ LogHealth::Failed { .. } => return health.describe(),
        }
        tokio::time::sleep(LOG_HEALTH_EVERY).await;
    }
}
