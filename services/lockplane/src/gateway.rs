//! `lockplane gateway`: the stateless REST gateway in front of a cluster, until SIGTERM or
//! Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use lockplane_gateway::cluster::ClusterView;
use lockplane_gateway::ratelimit::Limit;
use lockplane_gateway::{AppState, serve};

use crate::cache_args::CacheArgs;
use crate::failure::usage;
use crate::tls::{ClusterTlsArgs, RestTlsArgs};

/// Flags of `lockplane gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Where the REST API listens.
    #[arg(long, env = "LOCKPLANE_HTTP", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Nodes to learn the cluster from (any of them; more for when one is down).
    #[arg(
        long = "endpoint",
        env = "LOCKPLANE_ENDPOINTS",
        value_delimiter = ',',
        required = true,
        value_name = "HOST:PORT"
    )]
    endpoints: Vec<String>,
    /// Requests per second each tenant may send through this gateway (bursts of twice as
    /// many); over it, `429` with `Retry-After`.
    #[arg(long, env = "LOCKPLANE_RATE_LIMIT", default_value_t = 5_000)]
    rate_limit: u32,
    #[command(flatten)]
    tls: ClusterTlsArgs,
    #[command(flatten)]
    https: RestTlsArgs,
    #[command(flatten)]
    cache: CacheArgs,
    /// Stop when standard input closes (used by `lockplane cluster up`).
    #[arg(long, hide = true)]
    stop_on_stdin_eof: bool,
}

/// How long the gateway waits for the cluster's shard map at start.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// How often the gateway re-reads the shard map.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Serves the REST API until SIGTERM or Ctrl-C.
pub fn run(args: GatewayArgs) -> anyhow::Result<()> {
    if args.endpoints.iter().any(|e| e.trim().is_empty()) {
        usage!("--endpoint must name HOST:PORT");
    }
    if args.rate_limit == 0 {
        usage!("--rate-limit must be at least 1 request per second");
    }
    let limit = Limit {
        per_second: f64::from(args.rate_limit),
        burst: 2.0 * f64::from(args.rate_limit),
    };
    let dialer = args.tls.dialer()?;
    let https = args.https.load()?;
    let cache = args.cache.cache()?;
    let runtime = crate::runtime::server()?;
    runtime.block_on(async {
        let stop_signal = crate::shutdown::signal(args.stop_on_stdin_eof);
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let cluster = Arc::new(ClusterView::new(args.endpoints.clone(), dialer));
        cluster.refresh(START_PATIENCE).await.map_err(|e| {
            anyhow!(
                "cannot read the shard map from {}: {}",
                args.endpoints.join(","),
                e.detail().message
            )
        })?;
        let refresher = cluster.spawn_refresher(REFRESH_EVERY);
        let scheme = if https.is_some() { "https" } else { "http" };
        tracing::info!(url = %format!("{scheme}://{}", args.listen), "gateway serving");
        let process = telemetry::process::ProcessMetrics::new().context("process metrics")?;
        let state = AppState::new(cluster, limit).with_more_metrics(Arc::new(move || {
            telemetry::metrics::render(&[process.scrape()])
        }));
        let (state, feeds) = state.with_cache(cache);
        serve(listener, https, state, stop_signal)
            .await
            .context("the HTTP server failed")?;
        refresher.abort();
        if let Some(feeds) = feeds {
            feeds.abort();
        }
        tracing::info!("gateway stopped");
        Ok(())
    })
}
