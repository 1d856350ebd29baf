//! Failures a test can inject into the log's disk I/O, for what a real disk cannot be made
//! to do on demand (an fsync that fails). A full disk needs no hook: tests fill a small
//! tmpfs.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

/// Injected I/O failures, shared between a test and the log it opened.
#[derive(Debug, Default)]
pub struct FaultHooks {
    failing_syncs: AtomicU32,
}

impl FaultHooks {
    /// Makes the next `count` fsyncs of the log fail with `EIO` instead of running.
    pub fn fail_next_syncs(&self, count: u32) {
        self.failing_syncs.store(count, Ordering::Release);
    }

    /// Consumes one injected fsync failure, if any is pending.
    pub(crate) fn take_sync_failure(&self) -> io::Result<()> {
        let taken = self
            .failing_syncs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        match taken {
            Ok(_) => Err(io::Error::other(
                "fsync failed: Input/output error (os error 5, injected by a test)",
            )),
            Err(_) => Ok(()),
        }
    }
}
