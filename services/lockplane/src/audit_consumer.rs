//! `lockplane audit-consumer`: the audit topic into PostgreSQL (one row per event), with
//! its counters and lag on `/metrics`. Several consumers of one `--group` share the topic's
//! partitions.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use lockplane_audit_consumer::{ConsumerConfig, ConsumerStats, check_postgres_url, run};
use lockplane_node::audit::DEFAULT_TOPIC;

use crate::audit_args::check_brokers;
use crate::failure::usage;

/// Flags of `lockplane audit-consumer`.
#[derive(Debug, Args)]
pub struct AuditConsumerArgs {
    /// Kafka bootstrap servers, `HOST:PORT[,HOST:PORT…]`.
    #[arg(long, env = "LOCKPLANE_KAFKA", value_name = "BROKERS")]
    kafka: String,
    /// PostgreSQL, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (the schema is created
    /// and migrated at start).
    #[arg(
        long,
        env = "LOCKPLANE_POSTGRES_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    postgres: String,
    /// The audit topic.
    #[arg(long, env = "LOCKPLANE_AUDIT_TOPIC", default_value = DEFAULT_TOPIC)]
    audit_topic: String,
    /// The consumer group; consumers of one group share the partitions.
    #[arg(long, env = "LOCKPLANE_AUDIT_GROUP", default_value = "lockplane-audit")]
    group: String,
    /// Where `/metrics` (rows, duplicates, lag) is served.
    #[arg(
        long,
        env = "LOCKPLANE_METRICS_LISTEN",
        default_value = "127.0.0.1:9465"
    )]
    metrics_listen: SocketAddr,
    /// Where hourly retention puts the daily partitions older than --keep
    /// (`lock_audit_YYYYMMDD.csv.gz`) before dropping them.
    #[arg(
        long,
        env = "LOCKPLANE_AUDIT_ARCHIVE_DIR",
        default_value = "./lockplane-audit-archive"
    )]
    archive_dir: std::path::PathBuf,
    /// How long rows stay in PostgreSQL (e.g. 7d; 1h..=3650d).
    #[arg(long, env = "LOCKPLANE_AUDIT_KEEP", default_value = "7d", value_parser = crate::audit::parse_keep)]
    keep: std::time::Duration,
    /// Stop when standard input closes (used by `lockplane cluster up`).
    #[arg(long, hide = true)]
    stop_on_stdin_eof: bool,
    /// Write the address `/metrics` is served on into FILE once listening (used by
    /// `lockplane cluster up`, which gives `--metrics-listen 127.0.0.1:0`).
    #[arg(long, hide = true, value_name = "FILE")]
    metrics_addr_file: Option<std::path::PathBuf>,
}

/// Runs the consumer until SIGTERM or Ctrl-C.
pub fn run_consumer(args: AuditConsumerArgs) -> anyhow::Result<()> {
    let brokers = match check_brokers(&args.kafka) {
        Ok(brokers) => brokers,
        Err(e) => usage!("--kafka: {e}"),
    };
    if let Err(e) = check_postgres_url(&args.postgres) {
        usage!("--postgres: {e}");
    }
    if args.group.is_empty() {
        usage!("--group must not be empty");
    }
    let mut config = ConsumerConfig::new(&brokers, &args.audit_topic, &args.postgres);
    config.group.clone_from(&args.group);
    config.archive_dir = Some(args.archive_dir.clone());
    config.keep = args.keep;
    let runtime = crate::runtime::server()?;
    runtime.block_on(async move {
        let stats = Arc::new(ConsumerStats::default());
        let listener = tokio::net::TcpListener::bind(args.metrics_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (--metrics-listen)",
                    args.metrics_listen
                )
            })?;
        let metrics_addr = listener.local_addr().context("the metrics listener")?;
        if let Some(file) = &args.metrics_addr_file {
            // Whole or not at all: a reader never sees part of the address.
            let partial = file.with_extension("partial");
            std::fs::write(&partial, metrics_addr.to_string())
                .and_then(|()| std::fs::rename(&partial, file))
                .with_context(|| format!("cannot write {}", file.display()))?;
        }
        let topic = config.topic.clone();
        let shown = Arc::clone(&stats);
        let process = telemetry::process::ProcessMetrics::new().context("process metrics")?;
        let render = Arc::new(move || {
            let mut text = shown.render(&topic);
            text.push_str(&telemetry::metrics::render(&[process.scrape()]));
            text
        });
        tokio::spawn(telemetry::metrics::serve(
            listener,
            render,
            std::future::pending(),
        ));
        tracing::info!(topic = %config.topic, group = %config.group,
            metrics = %metrics_addr, "audit consumer running");
        run(
            config,
            stats,
            crate::shutdown::signal(args.stop_on_stdin_eof),
        )
        .await?;
        tracing::info!("audit consumer stopped");
        Ok(())
    })
}
