//! Bounds every replica of a group enforces identically; they travel inside snapshots.

use serde::{Deserialize, Serialize};

use crate::types::Millis;

/// Bounds on what one command may ask for and on what the machine keeps.
///
/// Every replica of a group must apply commands under the same limits, so they are part of
/// the replicated state: a snapshot carries them and a restored machine uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest key name in bytes (the lock contract: 512).
    pub max_key_bytes: u32,
    /// Longest owner string in bytes.
    pub max_owner_bytes: u32,
    /// Longest idempotency `request_id` in bytes.
    pub max_request_id_bytes: u32,
    /// Shortest lease a lock or session may ask for.
    pub min_ttl_ms: Millis,
    /// Longest lease a lock or session may ask for.
    pub max_ttl_ms: Millis,
    /// Longest a caller may wait in a key's queue.
    pub max_wait_ms: Millis,
    /// Longest lock-delay after an expiry.
    pub max_lock_delay_ms: Millis,
    /// Most callers queued on one key.
    pub max_waiters_per_key: u32,
    /// Most locks held plus waits queued by one session.
    pub max_locks_per_session: u32,
    /// How long an acquire outcome is remembered for its `request_id`.
    pub dedup_window_ms: Millis,
    /// Most acquire outcomes remembered at once; the oldest are forgotten first.
    pub dedup_max_entries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 512,
            max_owner_bytes: 256,
            max_request_id_bytes: 128,
            min_ttl_ms: 1,
            max_ttl_ms: 24 * 60 * 60 * 1000,
            max_wait_ms: 300_000,
            max_lock_delay_ms: 60_000,
            max_waiters_per_key: 10_000,
            max_locks_per_session: 10_000,
            dedup_window_ms: 10 * 60 * 1000,
            dedup_max_entries: 100_000,
        }
    }
}
