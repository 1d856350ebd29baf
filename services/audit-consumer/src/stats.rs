//! The consumer's counters and its lag, in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a consumer process did, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Rows inserted.
    pub rows: AtomicU64,
    /// Events skipped because their row already existed (republished copies).
    pub duplicates: AtomicU64,
    /// Messages kept in `lock_audit_unreadable`.
    pub unreadable: AtomicU64,
    /// Batches PostgreSQL refused or did not answer (each is stored again).
    pub store_failures: AtomicU64,
    /// Batches whose offsets the broker did not take after their rows were stored.
    pub commit_failures: AtomicU64,
    /// Messages behind the end of each assigned partition, by partition.
    lag: Mutex<BTreeMap<i32, i64>>,
    /// Partitions of the topic the group gave this consumer, as last seen.
    assigned: AtomicU64,
}

impl ConsumerStats {
    /// Records how many partitions are assigned and the lag of those measured (the others
    /// are forgotten).
    pub fn set_lag(&self, assigned: usize, lag: BTreeMap<i32, i64>) {
        self.assigned.store(assigned as u64, Ordering::Relaxed);
        *self
            .lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = lag;
    }

    /// The lag last measured, by partition.
    pub fn lag(&self) -> BTreeMap<i32, i64> {
        self.lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Partitions assigned to this consumer, as last seen.
    pub fn assigned(&self) -> usize {
        usize::try_from(self.assigned.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Messages behind, over every assigned partition.
    pub fn total_lag(&self) -> i64 {
        self.lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .sum()
    }

    /// The Prometheus text exposition of every counter and the lag.
    pub fn render(&self, topic: &str) -> String {
        let mut out = String::new();
        let counters = [
            ("rows_total", "Rows inserted into lock_audit.", &self.rows),
            (
                "duplicates_total",
                "Events whose row already existed (republished copies).",
                &self.duplicates,
            ),
            (
                "unreadable_total",
                "Messages kept in lock_audit_unreadable.",
                &self.unreadable,
            ),
            (
                "store_failures_total",
                "Batches PostgreSQL did not store (retried).",
                &self.store_failures,
            ),
            (
                "commit_failures_total",
                "Offset commits the broker refused after the rows were stored.",
                &self.commit_failures,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP lockplane_audit_consumer_{name} {help}");
            let _ = writeln!(out, "# TYPE lockplane_audit_consumer_{name} counter");
            let _ = writeln!(
                out,
                "lockplane_audit_consumer_{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP lockplane_audit_consumer_assigned_partitions Partitions of the topic the \
             group gave this consumer.\n\
             # TYPE lockplane_audit_consumer_assigned_partitions gauge\n\
             lockplane_audit_consumer_assigned_partitions {}",
            self.assigned()
        );
        let _ = writeln!(
            out,
            "# HELP lockplane_audit_consumer_lag_messages Messages of the partition not yet stored."
        );
        let _ = writeln!(out, "# TYPE lockplane_audit_consumer_lag_messages gauge");
        let lag = self
            .lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (partition, behind) in lag.iter() {
            let _ = writeln!(
                out,
                "lockplane_audit_consumer_lag_messages{{topic=\"{topic}\",partition=\"{partition}\"}} {behind}"
            );
        }
        out
    }
}
