//! The leader's clock, behind a trait so tests can control it.

use std::time::{SystemTime, UNIX_EPOCH};

use lock_core::Millis;

/// Milliseconds for stamping proposals. Only leaders read it; the state machine never does.
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds.
    fn now_ms(&self) -> Millis;
}

/// Wall-clock time since the Unix epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}
