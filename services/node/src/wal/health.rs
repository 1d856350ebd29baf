//! Whether the log can make writes durable now: healthy, stalled on a full disk (writes
//! wait, unacknowledged, and go through once space returns), or failed (an fsync or other
//! I/O error after which nothing is acknowledged until the node restarts).
//!
//! A failed fsync is not retried: after one, the kernel may have dropped the dirty pages it
//! could not write and a second fsync can report success for data that never reached the
//! disk (PostgreSQL's "fsyncgate"). The log on disk is the truth, so recovery is a restart
//! that replays it. A full disk is different: the write that failed is cut off the segment
//! and written again later, and nothing waiting on it is told it is durable meanwhile.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock;

/// The first pause before a write that found the disk full is tried again (the log's and a
/// snapshot's); it doubles up to [`FULL_DISK_MAX_RETRY`].
pub(crate) const FULL_DISK_FIRST_RETRY: Duration = Duration::from_millis(20);

/// The longest pause between attempts while the disk is full: space is noticed this soon.
pub(crate) const FULL_DISK_MAX_RETRY: Duration = Duration::from_millis(500);

/// The log's condition, as [`super::LogEngine::health`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogHealth {
    /// Writes are being made durable.
    Healthy,
    /// A write found the disk full; it and every later write wait, unacknowledged, and are
    /// retried until space returns.
    Stalled {
        /// How long the log has been stalled.
        stalled_for: Duration,
        /// The error the last attempt got.
        error: String,
    },
    /// An I/O error the log cannot retry safely (a failed fsync, say): nothing more is
    /// acknowledged; restarting the node replays what is on disk.
    Failed {
        /// What failed.
        error: String,
    },
}

impl LogHealth {
    /// A one-line account for operators and error messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Healthy => "healthy".to_string(),
            Self::Stalled { stalled_for, error } => format!(
                "stalled for {:.1} s: the disk is full ({error}); writes wait, unacknowledged, \
                 until space is freed",
                stalled_for.as_secs_f64()
            ),
            Self::Failed { error } => format!(
                "failed ({error}); nothing more is acknowledged: restart the node to recover \
                 from what is on disk"
            ),
        }
    }
}

/// The writer's record of its condition, shared with readers.
#[derive(Debug, Default)]
pub(crate) struct HealthCell {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    stalled: Option<(Instant, String)>,
    failed: Option<String>,
}

impl HealthCell {
    /// Records that a write found the disk full.
    pub(crate) fn stall(&self, error: &std::io::Error) {
        let mut state = lock(&self.state);
        let since = state
            .stalled
            .as_ref()
            .map_or_else(Instant::now, |(at, _)| *at);
        state.stalled = Some((since, error.to_string()));
    }

    /// Records that writes go through again.
    pub(crate) fn resume(&self) {
        lock(&self.state).stalled = None;
    }

    /// Records an error the log cannot retry. The first one is kept.
    pub(crate) fn fail(&self, error: &std::io::Error) {
        let mut state = lock(&self.state);
        state.stalled = None;
        state.failed.get_or_insert_with(|| error.to_string());
    }

    /// The condition now.
    pub(crate) fn get(&self) -> LogHealth {
        let state = lock(&self.state);
        if let Some(error) = &state.failed {
            return LogHealth::Failed {
                error: error.clone(),
            };
        }
        match &state.stalled {
            Some((since, error)) => LogHealth::Stalled {
                stalled_for: since.elapsed(),
                error: error.clone(),
            },
            None => LogHealth::Healthy,
        }
    }
}

/// Whether a write error means "no space" (retry once space returns) rather than a fault.
pub(crate) fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_outranks_a_stall_and_the_first_failure_is_kept() {
        let cell = HealthCell::default();
        assert_eq!(cell.get(), LogHealth::Healthy);
        cell.stall(&std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(matches!(cell.get(), LogHealth::Stalled { .. }));
        cell.resume();
        assert_eq!(cell.get(), LogHealth::Healthy);
        cell.fail(&std::io::Error::other("fsync: EIO"));
        cell.fail(&std::io::Error::other("later"));
        cell.stall(&std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(
            cell.get(),
            LogHealth::Failed {
                error: "fsync: EIO".into()
            }
        );
    }

    #[test]
    fn only_no_space_errors_are_retried() {
        assert!(is_disk_full(&std::io::Error::from(
            std::io::ErrorKind::StorageFull
        )));
        assert!(is_disk_full(&std::io::Error::from_raw_os_error(28)));
        assert!(!is_disk_full(&std::io::Error::from_raw_os_error(5)));
    }
}
