//! What a node's `/metrics` reports (`lockplane node --metrics ADDR`, and `lockplane dev`'s
//! one endpoint). Three kinds of source:
//! - [`requests`]: acquires as this node's lock API answered them (result, latency, wait),
//!   recorded as they happen;
//! - [`leadership`]: leader changes of each group as this replica's Raft reports them,
//!   and the elections it starts (counted by [`crate::election`] into a group's
//!   [`GroupMetrics`]);
//! - [`scraped`]: state read on each scrape (who leads, terms and indexes, locks held,
//!   the audit backlog, the write-ahead log's counters, changes applied by kind).
//!
//! Labels are bounded: `group` (at most the node's `--groups`, 1024), `result` (the
//! error codes of the lock API), `change` (a dozen kinds). Never a key, an owner or a
//! tenant.

pub mod leadership;
pub mod requests;
mod scraped;

use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};
use telemetry::metrics::LATENCY_BUCKETS_SECONDS;

use crate::audit::AuditStats;
use crate::group::{GroupMetrics, LockGroup, MetaGroup};
use crate::raft::Entry;
use crate::wal::{GroupId, LogEngine};

pub use requests::AcquireMetrics;
use scraped::Scraped;

/// What the node reads on each scrape: weak, so that a `/metrics` listener outliving
/// the node keeps none of it open (its scrapes then read nothing new).
pub(crate) struct Sources {
    pub(crate) data_dir: std::path::PathBuf,
    pub(crate) meta: Weak<MetaGroup>,
    pub(crate) groups: Vec<Weak<LockGroup>>,
    pub(crate) log: Weak<LogEngine<Entry>>,
    pub(crate) audit: Arc<AuditStats>,
}

/// A node's metrics, in a registry of its own (several nodes can share a test process).
pub struct NodeMetrics {
    registry: Registry,
    /// Acquires as the lock API answered them.
    pub acquires: AcquireMetrics,
    /// Seconds from proposing a command to its reply (committed and applied).
    pub proposal_seconds: Histogram,
    /// Seconds from sending a batch of audit events to the broker's last confirmation.
    pub publish_seconds: Histogram,
    /// Leader changes (`lockplane_raft_leader_changes_total`) and elections started here
    /// (`lockplane_raft_elections_total`), by group.
    leadership: leadership::Counters,
    scraped: Mutex<Scraped>,
    sources: OnceLock<Sources>,
}

impl NodeMetrics {
    /// Every metric of node `id` in `region`, registered and at zero.
    pub fn new(id: u64, region: &str) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let info = prometheus::IntGaugeVec::new(
            Opts::new(
                "lockplane_node_info",
                "1, labelled with the node's id and region (join on `instance` to break \
                 any node metric down by region).",
            ),
            &["id", "region"],
        )?;
        registry.register(Box::new(info.clone()))?;
        info.with_label_values(&[&id.to_string(), region]).set(1);
        let proposal_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "lockplane_raft_proposal_duration_seconds",
                "Seconds from proposing a command to its reply: committed by a quorum and \
                 applied.",
            )
            .buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
        )?;
        registry.register(Box::new(proposal_seconds.clone()))?;
        let publish_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "lockplane_audit_publish_duration_seconds",
                "Seconds from sending a batch of audit events to the broker's last \
                 confirmation of it.",
            )
            .buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
        )?;
        registry.register(Box::new(publish_seconds.clone()))?;
        let leadership = leadership::Counters {
            leader_changes: counter_vec(
                &registry,
                "lockplane_raft_leader_changes_total",
                "Times this replica saw its group's leader change (or become unknown).",
                &["group"],
            )?,
            elections: counter_vec(
                &registry,
                "lockplane_raft_elections_total",
                "Elections this replica started for its group (it became a candidate).",
                &["group"],
            )?,
        };
        Ok(Self {
            acquires: AcquireMetrics::new(&registry)?,
            proposal_seconds,
            publish_seconds,
            leadership,
            scraped: Mutex::new(Scraped::new(&registry)?),
            sources: OnceLock::new(),
            registry,
        })
    }

    /// What group `id`'s replica records: its proposals' latency and its elections.
    pub fn group(&self, id: GroupId) -> GroupMetrics {
        GroupMetrics {
            proposal_seconds: self.proposal_seconds.clone(),
            elections: self
                .leadership
                .elections
                .with_label_values(&[&id.to_string()]),
        }
    }

    /// The counter of group `id`'s leader changes, as this replica sees them.
    pub fn leader_changes(&self, id: GroupId) -> prometheus::IntCounter {
        self.leadership
            .leader_changes
            .with_label_values(&[&id.to_string()])
    }

    /// Sets what scrapes read, once the node's groups and log are open, and registers the
    /// log's fsync and batch histograms.
    pub(crate) fn attach(&self, sources: Sources) -> prometheus::Result<()> {
        if let Some(log) = sources.log.upgrade() {
            let timings = log.timings();
            self.registry
                .register(Box::new(timings.fsync_seconds.clone()))?;
            self.registry
                .register(Box::new(timings.batch_records.clone()))?;
        }
        let _ = self.sources.set(sources);
        Ok(())
    }

    /// Reads the node's state into the scraped metrics; then the registry, ready to
    /// render.
    pub fn scrape(&self) -> &Registry {
        if let Some(sources) = self.sources.get() {
            self.scraped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .refresh(sources);
        }
        &self.registry
    }

    /// The Prometheus text of every metric of the node, read now.
    pub fn render(&self) -> String {
        telemetry::metrics::render(&[self.scrape()])
    }
}

/// A counter family registered in `registry`.
pub(crate) fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let counters = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(counters.clone()))?;
    Ok(counters)
}
