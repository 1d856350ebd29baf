//! Read-only views for status reads and listings; they change nothing and emit nothing.

use std::ops::Bound;

use crate::machine::{HolderState, KeyState, Lease, LockMachine};
use crate::reply::LockStatus;
use crate::types::{LockKey, Millis, SessionId, TenantId};

impl LockMachine {
    /// The status of `key` as of time `now` (the caller's clock, for the remaining TTL).
    pub fn status(&self, key: &LockKey, now: Millis) -> LockStatus {
        match self.locks.get(key) {
            Some(state) => self.describe(key, state, now),
            None => LockStatus {
                key: key.clone(),
                holder: None,
                ttl_remaining_ms: None,
                waiters: 0,
            },
        }
    }

    /// Up to `limit` keys of `tenant` whose name starts with `prefix`, held or waited on,
    /// in name order, starting after the name `after` (a listing cursor).
    pub fn list(
        &self,
        tenant: TenantId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now: Millis,
    ) -> Vec<LockStatus> {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(LockKey::new(tenant, after)),
            _ => Bound::Included(LockKey::new(tenant, prefix)),
        };
        self.locks
            .range((start, Bound::Unbounded))
            .take_while(|(key, _)| key.tenant == tenant && key.name.starts_with(prefix))
            .filter(|(_, state)| state.holder.is_some() || !state.queue().is_empty())
            .take(limit)
            .map(|(key, state)| self.describe(key, state, now))
            .collect()
    }

    /// The time left on session `id` of `tenant` as of `now`, or `None` when it is not open.
    pub fn session_ttl_remaining(
        &self,
        id: SessionId,
        tenant: TenantId,
        now: Millis,
    ) -> Option<Millis> {
        let session = self.sessions.get(&id).filter(|s| s.tenant == tenant)?;
        Some(
            self.lease_end(session.expires_at, session.ttl_ms)
                .saturating_sub(now.max(self.clock)),
        )
    }

    /// How many locks `tenant` holds in this group (what its quota is checked against).
    pub fn held_by(&self, tenant: TenantId) -> u64 {
        self.held_by_tenant.get(&tenant).copied().unwrap_or(0)
    }

    /// How many keys are held, queued on or delayed, and how many sessions are open.
    /// Counting held keys walks the table: O(keys), for tests and occasional metrics.
    pub fn counts(&self) -> Counts {
        Counts {
            keys: self.locks.len(),
            held: self
                .locks
                .values()
                .filter(|state| state.holder.is_some())
                .count(),
            sessions: self.sessions.len(),
            remembered_requests: self.dedup.len(),
            pending_deadlines: self.timers.len(),
        }
    }

    /// Keys with a holder, over every tenant. O(tenants), for metrics.
    pub fn held(&self) -> u64 {
        self.held_by_tenant.values().sum()
    }

    /// Open sessions. O(1).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Keys still held more than `grace_ms` after their holder's lease ended (its own
    /// lease, or its session's) as of `now`. Expiry is applied by the leader's next tick,
    /// so this stays 0 unless expiry is stuck: an operator's alarm. O(1) while the
    /// earliest deadline of any kind is not overdue (no lease can be); O(keys) otherwise.
    pub fn overdue(&self, now: Millis, grace_ms: Millis) -> usize {
        if self
            .next_due()
            .is_none_or(|due| due.saturating_add(grace_ms) >= now)
        {
            return 0;
        }
        self.locks
            .values()
            .filter_map(|state| state.holder.as_ref())
            .filter(|holder| self.holder_lease_end(holder).saturating_add(grace_ms) < now)
            .count()
    }

    /// When `holder`'s lease ends: its own, or its session's (0 for a session gone).
    fn holder_lease_end(&self, holder: &HolderState) -> Millis {
        match holder.lease {
            Lease::Own { expires_at, ttl_ms } => self.lease_end(expires_at, ttl_ms),
            Lease::Session(id) => self
                .sessions
                .get(&id)
                .map_or(0, |s| self.lease_end(s.expires_at, s.ttl_ms)),
        }
    }

    fn describe(&self, key: &LockKey, state: &KeyState, now: Millis) -> LockStatus {
        let now = now.max(self.clock);
        let ttl_remaining_ms = state
            .holder
            .as_ref()
            .map(|holder| self.holder_lease_end(holder).saturating_sub(now));
        LockStatus {
            key: key.clone(),
            holder: state.holder.as_ref().map(|h| h.public()),
            ttl_remaining_ms,
            waiters: u32::try_from(state.queue().len()).unwrap_or(u32::MAX),
        }
    }
}

/// Sizes of the machine's tables, for metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Keys held, queued on, or in lock-delay.
    pub keys: usize,
    /// Keys with a holder.
    pub held: usize,
    /// Open sessions.
    pub sessions: usize,
    /// Acquire outcomes remembered for idempotent retries.
    pub remembered_requests: usize,
    /// Pending lease, session, wait and lock-delay deadlines.
    pub pending_deadlines: usize,
}
