//! The bounded idempotency window: acquire outcomes remembered by `(tenant, request_id)`.
//!
//! Only outcomes that changed state are remembered (a grant, a wait). A refused acquire
//! changed nothing, so a retry of it is simply evaluated again.

use std::collections::{BTreeMap, VecDeque};

use crate::name::Name;
use crate::reply::Grant;
use crate::types::{LockKey, Millis, TenantId, WaitId};

/// What an acquire with a `request_id` led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Granted(Grant),
    Queued(WaitId),
}

/// One remembered acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: LockKey,
    pub(crate) owner: Name,
    pub(crate) outcome: Outcome,
    /// When it was remembered; the window is counted from here.
    pub(crate) at: Millis,
}

type RequestKey = (TenantId, Box<str>);

/// Remembered outcomes plus their insertion order, for eviction by age and by count.
///
/// `order` may hold entries whose record was since forgotten or replaced; they are skipped
/// when they reach the front, and compacted away when they outnumber the live ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dedup {
    records: BTreeMap<RequestKey, Record>,
    order: VecDeque<(Millis, RequestKey)>,
}

impl Dedup {
    pub(crate) fn get(&self, tenant: TenantId, request_id: &str) -> Option<&Record> {
        self.records.get(&(tenant, Box::from(request_id)))
    }

    /// Remembers an outcome, then forgets the oldest ones beyond `max_entries`.
    pub(crate) fn remember(
        &mut self,
        tenant: TenantId,
        request_id: Box<str>,
        record: Record,
        max_entries: usize,
    ) {
        let at = record.at;
        self.order.push_back((at, (tenant, request_id.clone())));
        self.records.insert((tenant, request_id), record);
        while self.records.len() > max_entries {
            if !self.pop_front() {
                break;
            }
        }
        if self.order.len() > 2 * self.records.len() + 64 {
            let records = &self.records;
            self.order
                .retain(|(at, key)| records.get(key).is_some_and(|r| r.at == *at));
        }
    }

    /// Changes a remembered wait into the grant it became.
    pub(crate) fn granted(&mut self, tenant: TenantId, request_id: &str, grant: Grant) {
        if let Some(record) = self.records.get_mut(&(tenant, Box::from(request_id))) {
            record.outcome = Outcome::Granted(grant);
        }
    }

    /// Forgets a remembered wait that ended without a grant, so a retry waits again.
    pub(crate) fn forget(&mut self, tenant: TenantId, request_id: &str) {
        self.records.remove(&(tenant, Box::from(request_id)));
    }

    /// Forgets every outcome remembered at or before `now - window_ms`.
    pub(crate) fn expire(&mut self, now: Millis, window_ms: Millis) {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(window_ms) > now {
                break;
            }
            self.pop_front();
        }
    }

    /// Live records in the order they were remembered (for snapshots).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&RequestKey, &Record)> {
        self.order.iter().filter_map(|(at, key)| {
            self.records
                .get_key_value(key)
                .filter(|(_, record)| record.at == *at)
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Drops the oldest order entry and its record if that entry is still the live one.
    /// Returns false when there was nothing to drop.
    fn pop_front(&mut self) -> bool {
        let Some((at, key)) = self.order.pop_front() else {
            return false;
        };
        if self.records.get(&key).is_some_and(|r| r.at == at) {
            self.records.remove(&key);
        }
        true
    }
}
