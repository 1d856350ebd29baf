//! `lockplane dev`: Lockplane on one machine with nothing else installed. A node hosting
//! every lock group (one replica each) and the gateway, in one process; durable data in
//! `--data-dir`; a dev tenant whose API key is printed (or fixed with `--api-key`) and an
//! admin token, both kept in the data directory so a restart reuses them
//! (`dev_credentials`). Ctrl-C stops it gracefully; a restart finds every held lock again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lockplane_audit_consumer::{ConsumerConfig, ConsumerStats, run as run_consumer};
use lockplane_gateway::cluster::ClusterView;
use lockplane_gateway::ratelimit::Limit;
use lockplane_gateway::{AppState, serve};
use lockplane_node::clock::SystemClock;
use lockplane_node::grpc::GrpcTransport;
use lockplane_node::host::{MAX_GROUPS, Node, NodeConfig};
use lockplane_node::server::NodeServer;
use lockplane_proto::Dialer;
use openraft::BasicNode;

use crate::failure::usage;

/// Flags of `lockplane dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the REST API listens.
    #[arg(long, env = "LOCKPLANE_HTTP", default_value = "127.0.0.1:7070")]
    http: SocketAddr,
    /// Where the embedded node's gRPC (lock and admin API) listens.
    #[arg(long, env = "LOCKPLANE_NODE_LISTEN", default_value = "127.0.0.1:7071")]
    node_listen: SocketAddr,
    /// Directory for the data (kept across restarts).
    #[arg(long, env = "LOCKPLANE_DATA_DIR", default_value = "./lockplane-data")]
    data_dir: PathBuf,
    /// The dev tenant's API key; when absent, the one recorded in the data directory, else
    /// a new random one. A different key replaces the recorded one (which stops working).
    #[arg(long, env = "LOCKPLANE_DEV_API_KEY")]
    api_key: Option<String>,
    /// Lock groups (1..=1024).
    #[arg(long, default_value_t = 16)]
    groups: u32,
    #[command(flatten)]
    cache: crate::cache_args::CacheArgs,
    /// The audit trail: publishing (`--kafka`) and, with `--postgres`, a consumer in this
    /// process.
    #[command(flatten)]
    audit: crate::audit_args::PipelineArgs,
}

/// Runs the embedded node and gateway until Ctrl-C or SIGTERM.
pub fn run(args: DevArgs) -> anyhow::Result<()> {
    if !(1..=MAX_GROUPS).contains(&args.groups) {
        usage!("--groups must be in 1..={MAX_GROUPS}, got {}", args.groups);
    }
    if let Some(key) = &args.api_key {
        crate::keys::check(key)?;
    }
    let cache = args.cache.cache()?;
    args.audit.check()?;
    let runtime = crate::runtime::server()?;
    runtime.block_on(serve_dev(args, cache))
}

async fn serve_dev(
    args: DevArgs,
    cache: Option<Arc<lockplane_gateway::cache::StatusCache>>,
) -> anyhow::Result<()> {
    let stop_signal = crate::shutdown::signal(false);
    let node_listener = tokio::net::TcpListener::bind(args.node_listen)
        .await
        .with_context(|| format!("cannot listen on {} (--node-listen)", args.node_listen))?;
    let http_listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot listen on {} (--http)", args.http))?;
    let mut config = NodeConfig::new(1, args.data_dir.clone());
    config.groups = args.groups;
    let (publish, postgres) = args.audit.check()?;
    config.audit.clone_from(&publish);
    let node = Node::start(
        config,
        Arc::new(GrpcTransport::default()),
        Arc::new(SystemClock),
    )
    .await
    .with_context(|| format!("cannot start the node in {}", args.data_dir.display()))?;
    let (stop_node, node_stopped) = tokio::sync::oneshot::channel::<()>();
    let node_server = tokio::spawn(NodeServer::new(&node).serve(node_listener, async move {
        let _ = node_stopped.await;
    }));
    let node_addr = args.node_listen.to_string();
    node.initialize(BTreeMap::from([(1, BasicNode::new(node_addr.clone()))]))
        .await
        .context("cannot initialize the dev cluster")?;
    let credentials = crate::dev_credentials::ensure(
        &args.data_dir,
        Dialer::default(),
        &node_addr,
        args.api_key.as_deref(),
    )
    .await?;
    let key = credentials.api_key;
    let cluster = Arc::new(ClusterView::new(vec![node_addr.clone()], Dialer::default()));
    cluster
        .refresh(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("the node did not come up: {}", e.detail().message))?;
    let refresher = cluster.spawn_refresher(Duration::from_secs(5));
    // One scrape of dev's `/metrics` covers the gateway, the node, the audit consumer (when
    // it runs) and the process.
    let (node_metrics, process) = (
        node.metrics(),
        telemetry::process::ProcessMetrics::new().context("process metrics")?,
    );
    let consumer_stats = Arc::new(ConsumerStats::default());
    let shown = publish
        .as_ref()
        .filter(|_| postgres.is_some())
        .map(|audit| (Arc::clone(&consumer_stats), audit.topic.clone()));
    let state = AppState::new(cluster, Limit::default()).with_more_metrics(Arc::new(move || {
        let mut text = telemetry::metrics::render(&[node_metrics.scrape(), process.scrape()]);
        if let Some((stats, topic)) = &shown {
            text.push_str(&stats.render(topic));
        }
        text
    }));
    let (state, feeds) = state.with_cache(cache);
    let consumer = match (&publish, &postgres) {
        (Some(audit), Some(url)) => {
            let config = ConsumerConfig::new(&audit.brokers, &audit.topic, url);
            let stats = Arc::clone(&consumer_stats);
            Some(tokio::spawn(async move {
                if let Err(error) = run_consumer(config, stats, std::future::pending()).await {
                    tracing::error!(%error, "the audit consumer stopped");
                }
            }))
        }
        _ => None,
    };
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(serve(http_listener, None, state, async move {
        let _ = http_stopped.await;
    }));
    let url = format!("http://{}", args.http);
    println!(
        "lockplane dev: REST API on {url}, data in {}",
        args.data_dir.display()
    );
    println!("dev API key: {key}");
    println!(
        "admin token in {} (lock and admin API on {node_addr})",
        credentials.admin_token_path.display()
    );
    print!("{}", try_lines(&url, &key));
    println!("Ctrl-C stops it; held locks survive a restart.");
    stop_signal.await;
    tracing::info!("dev stopping");
    let _ = stop_http.send(());
    refresher.abort();
    if let Some(feeds) = feeds {
        feeds.abort();
    }
    // A batch cut short is read again at the next start; its rows are not doubled.
    if let Some(consumer) = consumer {
        consumer.abort();
    }
    let served = http.await.context("the HTTP server task failed")?;
    let _ = stop_node.send(());
    let node_served = node_server.await.context("the gRPC server task failed")?;
    node.shutdown().await;
    served.context("the HTTP server failed")?;
    node_served.context("the gRPC server failed")?;
    tracing::info!("dev stopped");
    Ok(())
}
/// The `curl` lines printed at start: acquire, status, renew, release, and a second owner
/// waiting in the queue (`N` is the fencing token the acquire answered).
fn try_lines(url: &str, key: &str) -> String {
    let auth = format!("-H 'Authorization: Bearer {key}'");
    let json = "-H 'Content-Type: application/json'";
    let post = |route: &str, body: &str| {
        format!(
            "  curl -s -X POST {url}/v1/locks/my-job/{route} {auth} \\\n       {json} -d '{body}'\n"
        )
    };
    let mut out = String::from("try (N is the fencing_token the acquire answers):\n");
    out.push_str(&post("acquire", r#"{"owner": "me", "ttl_ms": 30000}"#));
    out.push_str(&format!("  curl -s {url}/v1/locks/my-job {auth}\n"));
    out.push_str(&post(
        "renew",
        r#"{"owner": "me", "fencing_token": N, "ttl_ms": 30000}"#,
    ));
    out.push_str("  # in another terminal, wait up to 60 s in the queue:\n");
    out.push_str(&post(
        "acquire",
        r#"{"owner": "you", "ttl_ms": 30000, "wait_ms": 60000}"#,
    ));
    out.push_str(&post("release", r#"{"owner": "me", "fencing_token": N}"#));
    out
}
