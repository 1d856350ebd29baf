//! Metrics read from the node's state on each scrape: who leads each group, its term,
//! indexes and log length, snapshots, locks held (and held past their lease), changes
//! applied by kind, the audit backlog, and the write-ahead log's counters.
//!
//! Values every replica of a group holds alike (locks held, the audit backlog) are
//! reported by its leader only, and as 0 elsewhere, so that a sum over nodes counts each
//! group once. Applied changes are counted by every replica: a dashboard takes the
//! largest rate per group (`max by (group, change) (rate(…))`).

use std::sync::Weak;

use openraft::{Raft, ServerState};
use prometheus::{CounterVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::{Sources, counter_vec};
use crate::raft::{CHANGE_KINDS, GroupMachine, StateMachine, TypeConfig};
use crate::wal::{GroupId, LogHealth};

/// How long past its lease end a lock may still be held before it counts as overdue: the
/// leader applies expiry at its next tick, well within this.
const OVERDUE_GRACE_MS: u64 = 2_000;

/// The scraped families.
pub(super) struct Scraped {
    leader: IntGaugeVec,
    has_leader: IntGaugeVec,
    term: IntGaugeVec,
    applied_index: IntGaugeVec,
    log_entries: IntGaugeVec,
    snapshots: IntCounterVec,
    snapshot_seconds: CounterVec,
    locks_held: IntGaugeVec,
    sessions: IntGaugeVec,
    overdue: IntGaugeVec,
    changes: IntCounterVec,
    audit_backlog: IntGaugeVec,
    audit_dropped: IntGaugeVec,
    audit_published: IntCounter,
    audit_failures: IntCounter,
    wal_batches: IntCounter,
    wal_fsyncs: IntCounter,
    wal_records: IntCounter,
    wal_bytes: IntCounter,
    wal_write_errors: IntCounter,
    wal_segments: IntGauge,
    wal_healthy: IntGauge,
    disk_capacity: IntGauge,
    disk_available: IntGauge,
}

fn gauge_vec(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGaugeVec> {
    let gauges = IntGaugeVec::new(Opts::new(name, help), &["group"])?;
    registry.register(Box::new(gauges.clone()))?;
    Ok(gauges)
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let counter = IntCounter::new(name, help)?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let gauge = IntGauge::new(name, help)?;
    registry.register(Box::new(gauge.clone()))?;
    Ok(gauge)
}

/// Raises `counter` to `total` (a running total read from the node's own counters).
fn raise(counter: &IntCounter, total: u64) {
    let have = counter.get();
    if total > have {
        counter.inc_by(total - have);
    }
}

fn as_gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Scraped {
    pub(super) fn new(r: &Registry) -> prometheus::Result<Self> {
        let snapshot_seconds = CounterVec::new(
            Opts::new(
                "lockplane_raft_snapshot_build_seconds_total",
                "Seconds this replica spent building snapshots of its group.",
            ),
            &["group"],
        )?;
        r.register(Box::new(snapshot_seconds.clone()))?;
        Ok(Self {
            leader: gauge_vec(
                r,
                "lockplane_raft_leader",
                "1 if this node leads the group.",
            )?,
            has_leader: gauge_vec(
                r,
                "lockplane_raft_has_leader",
                "1 if this replica knows a leader of its group.",
            )?,
            term: gauge_vec(
                r,
                "lockplane_raft_term",
                "The group's term at this replica.",
            )?,
            applied_index: gauge_vec(
                r,
                "lockplane_raft_applied_index",
                "The last log index this replica applied.",
            )?,
            log_entries: gauge_vec(
                r,
                "lockplane_raft_log_entries",
                "Entries of the group's log kept at this replica (not yet purged behind a \
                 snapshot).",
            )?,
            snapshots: counter_vec(
                r,
                "lockplane_raft_snapshots_total",
                "Snapshots this replica built of its group.",
                &["group"],
            )?,
            snapshot_seconds,
            locks_held: gauge_vec(
                r,
                "lockplane_locks_held",
                "Keys with a holder (reported by the group's leader; 0 at other replicas).",
            )?,
            sessions: gauge_vec(
                r,
                "lockplane_lock_sessions",
                "Open sessions (reported by the group's leader; 0 at other replicas).",
            )?,
            overdue: gauge_vec(
                r,
                "lockplane_locks_overdue",
                "Keys still held more than 2 s after their lease ended: expiry is stuck. \
                 Must stay 0 (reported by the group's leader).",
            )?,
            changes: counter_vec(
                r,
                "lockplane_lock_changes_total",
                "Changes this replica applied since it started, by kind (acquired, renewed, \
                 released, expired, session_created, ...); every replica counts its \
                 group's: take the largest rate per group.",
                &["group", "change"],
            )?,
            audit_backlog: gauge_vec(
                r,
                "lockplane_audit_backlog_events",
                "Audit events applied and not yet confirmed by the broker (reported by the \
                 group's leader; 0 at other replicas).",
            )?,
            audit_dropped: gauge_vec(
                r,
                "lockplane_audit_dropped_events",
                "Audit events the group dropped unpublished because its backlog passed \
                 --audit-backlog-limit, ever (a replicated total: every replica reports it; \
                 a restarted replica catches up to it as it replays its log).",
            )?,
            audit_published: counter(
                r,
                "lockplane_audit_published_events_total",
                "Audit events this node published and the broker confirmed.",
            )?,
            audit_failures: counter(
                r,
                "lockplane_audit_publish_failures_total",
                "Batches of audit events the broker failed (each is sent again).",
            )?,
            wal_batches: counter(
                r,
                "lockplane_wal_batches_total",
                "Batches the write-ahead log wrote (one write each).",
            )?,
            wal_fsyncs: counter(
                r,
                "lockplane_wal_fsyncs_total",
                "fdatasync calls of the log.",
            )?,
            wal_records: counter(r, "lockplane_wal_records_total", "Records written.")?,
            wal_bytes: counter(r, "lockplane_wal_written_bytes_total", "Bytes written.")?,
            wal_write_errors: counter(
                r,
                "lockplane_wal_write_errors_total",
                "Failed writes of the log (each retry on a full disk counts).",
            )?,
            wal_segments: gauge(r, "lockplane_wal_segments", "Segment files on disk.")?,
            wal_healthy: gauge(
                r,
                "lockplane_wal_healthy",
                "1 while the log makes writes durable; 0 when stalled on a full disk or \
                 failed.",
            )?,
            disk_capacity: gauge(
                r,
                "lockplane_data_dir_capacity_bytes",
                "Size of the file system holding the node's data directory.",
            )?,
            disk_available: gauge(
                r,
                "lockplane_data_dir_available_bytes",
                "Bytes of that file system the node may still write.",
            )?,
        })
    }

    /// Reads everything from `sources` now.
    pub(super) fn refresh(&mut self, sources: &Sources) {
        let (Some(meta), Some(log)) = (sources.meta.upgrade(), sources.log.upgrade()) else {
            return; // the node stopped
        };
        let leads = self.raft(0, meta.raft(), meta.state_machine());
        self.outbox(0, leads, meta.state_machine());
        for group in sources.groups.iter().filter_map(Weak::upgrade) {
            let id = group.id();
            let state = group.state_machine();
            let leads = self.raft(id, group.raft(), state);
            self.outbox(id, leads, state);
            let label = id.to_string();
            let (held, sessions, overdue) = if leads {
                let now = group.now_ms();
                state.read(|m| (m.held(), m.sessions(), m.overdue(now, OVERDUE_GRACE_MS)))
            } else {
                (0, 0, 0)
            };
            self.locks_held
                .with_label_values(&[&label])
                .set(as_gauge(held));
            self.sessions
                .with_label_values(&[&label])
                .set(as_gauge(sessions as u64));
            self.overdue
                .with_label_values(&[&label])
                .set(as_gauge(overdue as u64));
            for (kind, total) in CHANGE_KINDS.iter().zip(state.changes().get()) {
                raise(
                    &self.changes.with_label_values(&[label.as_str(), kind]),
                    total,
                );
            }
        }
        let audit = &sources.audit;
        raise(
            &self.audit_published,
            audit.published.load(std::sync::atomic::Ordering::Relaxed),
        );
        raise(
            &self.audit_failures,
            audit.failures.load(std::sync::atomic::Ordering::Relaxed),
        );
        let wal = log.stats();
        raise(&self.wal_batches, wal.batches);
        raise(&self.wal_fsyncs, wal.fsyncs);
        raise(&self.wal_records, wal.records);
        raise(&self.wal_bytes, wal.bytes);
        raise(&self.wal_write_errors, wal.write_errors);
        self.wal_segments.set(as_gauge(wal.segments));
        self.wal_healthy
            .set(i64::from(matches!(log.health(), LogHealth::Healthy)));
        if let Ok(fs) = nix::sys::statvfs::statvfs(sources.data_dir.as_path()) {
            let block = fs.fragment_size();
            self.disk_capacity
                .set(as_gauge(fs.blocks().saturating_mul(block)));
            self.disk_available
                .set(as_gauge(fs.blocks_available().saturating_mul(block)));
        }
    }

    /// The Raft gauges of group `id`; whether this replica leads it.
    fn raft<M: GroupMachine>(
        &self,
        id: GroupId,
        raft: &Raft<TypeConfig>,
        state: &StateMachine<M>,
    ) -> bool {
        let label = id.to_string();
        let metrics = raft.metrics().borrow().clone();
        let leads = metrics.state == ServerState::Leader;
        self.leader
            .with_label_values(&[&label])
            .set(i64::from(leads));
        self.has_leader
            .with_label_values(&[&label])
            .set(i64::from(metrics.current_leader.is_some()));
        self.term
            .with_label_values(&[&label])
            .set(as_gauge(metrics.current_term));
        self.applied_index
            .with_label_values(&[&label])
            .set(as_gauge(metrics.last_applied.map_or(0, |id| id.index)));
        let first_kept = metrics.purged.map_or(0, |id| id.index + 1);
        let entries = metrics
            .last_log_index
            .map_or(0, |last| (last + 1).saturating_sub(first_kept));
        self.log_entries
            .with_label_values(&[&label])
            .set(as_gauge(entries));
        let (built, seconds) = state.snapshots_built();
        raise(&self.snapshots.with_label_values(&[&label]), built);
        let counter = self.snapshot_seconds.with_label_values(&[&label]);
        if seconds > counter.get() {
            counter.inc_by(seconds - counter.get());
        }
        leads
    }

    /// The audit backlog of group `id` (reported where this replica leads) and its drops.
    fn outbox<M: GroupMachine>(&self, id: GroupId, leads: bool, state: &StateMachine<M>) {
        let label = id.to_string();
        let (backlog, dropped) = state.outbox(|o| (o.backlog(), o.dropped()));
        self.audit_backlog
            .with_label_values(&[&label])
            .set(if leads { as_gauge(backlog as u64) } else { 0 });
        self.audit_dropped
            .with_label_values(&[&label])
            .set(as_gauge(dropped));
    }
}
