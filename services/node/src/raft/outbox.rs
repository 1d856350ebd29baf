//! A group's audit outbox: the audit events its entries produced that the group's leader
//! has not yet seen the broker confirm.
//!
//! The outbox is replicated state. Every replica records the same events as it applies the
//! same entries, and drops them when it applies the leader's [`super::Request::Published`]
//! entry, so the publish cursor survives restarts and leader changes: a new leader resumes
//! after the last position any leader confirmed. Snapshots carry the outbox
//! ([`Outbox::wrap`]), because the events of entries a snapshot covers can no longer be
//! derived again by re-applying the log.
//!
//! Bounded: past `limit` pending events the oldest are dropped and counted, and the group
//! keeps serving (docs/decisions/0028-audit-outbox.md). Every node of a cluster must use
//! the same `--kafka` and limit: a replica without a broker records no new events (it
//! still keeps, carries and confirms the ones a snapshot brought).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use lock_core::AuditEvent;
use serde::{Deserialize, Serialize};
use shard_map::MetaCommand;

use super::codec::{from_bytes, to_vec};

/// Where an event sits in its group's history: its entry's log index, then its place among
/// that entry's events. The event's identity within the group.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct EventPosition {
    /// The log index of the entry that produced the event.
    pub index: u64,
    /// The event's place among the entry's events, from 0.
    pub seq: u32,
}

/// One change the audit trail records, as the group applied it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recorded {
    /// A lock group's change (`lock-core` describes it).
    Lock(AuditEvent),
    /// A shard-map change the meta group applied (one per entry).
    Meta {
        /// The entry's log index.
        index: u64,
        /// The command that changed the map.
        command: MetaCommand,
        /// The command created the tenant it names.
        new_tenant: bool,
    },
}

impl Recorded {
    /// The event's position in its group's history.
    pub fn position(&self) -> EventPosition {
        match self {
            Self::Lock(event) => EventPosition {
                index: event.index,
                seq: event.seq,
            },
            Self::Meta { index, .. } => EventPosition {
                index: *index,
                seq: 0,
            },
        }
    }
}

/// The pending events of one group, oldest first, and what was confirmed or dropped.
#[derive(Debug, Default)]
pub struct Outbox {
    pending: VecDeque<Arc<Recorded>>,
    /// Every event at or before this position was confirmed by the broker.
    published: Option<EventPosition>,
    /// Events dropped unpublished because the backlog reached `limit`, since the group
    /// began.
    dropped: u64,
    /// The most events kept; 0 records nothing (no broker configured).
    limit: usize,
}

/// What the outbox holds in a snapshot: a copy taken under the state machine's lock,
/// encoded after it is let go.
#[derive(Serialize, Deserialize)]
pub struct Saved {
    published: Option<EventPosition>,
    dropped: u64,
    pending: Vec<Arc<Recorded>>,
}

/// Marks snapshot bytes that start with an outbox (older snapshots are the machine's bytes
/// alone, which never start with these).
const MAGIC: &[u8; 4] = b"LPOX";

/// The version of the outbox's encoding, after [`MAGIC`]. Its events are encoded with
/// `lock-core`'s and `shard-map`'s own types (as log entries are): a change to those types'
/// encoding raises this version.
const VERSION: u8 = 1;

impl Outbox {
    /// An empty outbox keeping at most `limit` events (0: records nothing).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// The most events kept.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether events are recorded at all.
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// Adds an applied event (positions increase from call to call). Past the limit the
    /// oldest pending event is dropped and counted.
    pub fn record(&mut self, event: Recorded) {
        if !self.enabled() || self.published.is_some_and(|p| event.position() <= p) {
            return;
        }
        if self.pending.len() >= self.limit {
            self.pending.pop_front();
            self.dropped += 1;
        }
        self.pending.push_back(Arc::new(event));
    }

    /// The broker confirmed every event up to `through`: they leave the outbox.
    pub fn confirm(&mut self, through: EventPosition) {
        if self.published.is_some_and(|p| p >= through) {
            return;
        }
        self.published = Some(through);
        let confirmed = self.pending.partition_point(|e| e.position() <= through);
        self.pending.drain(..confirmed);
    }

    /// At most `most` pending events after `after` (all of them for `None`), oldest first.
    pub fn after(&self, after: Option<EventPosition>, most: usize) -> Vec<Arc<Recorded>> {
        let start = after.map_or(0, |a| self.pending.partition_point(|e| e.position() <= a));
        self.pending.range(start..).take(most).cloned().collect()
    }

    /// The position of the newest pending event.
    pub fn newest(&self) -> Option<EventPosition> {
        self.pending.back().map(|e| e.position())
    }

    /// The last position the broker confirmed.
    pub fn published(&self) -> Option<EventPosition> {
        self.published
    }

    /// Events waiting to be published.
    pub fn backlog(&self) -> usize {
        self.pending.len()
    }

    /// Events dropped unpublished at the limit, in this group's history.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A copy of the outbox for a snapshot (cheap: the events are shared), to encode with
    /// [`Saved::wrap`] once the state machine's lock is let go.
    pub fn saved(&self) -> Saved {
        Saved {
            published: self.published,
            dropped: self.dropped,
            pending: self.pending.iter().cloned().collect(),
        }
    }

    /// Splits snapshot bytes into the outbox they carry (kept at most `limit` events) and
    /// the machine's bytes. Bytes without an outbox carry an empty one.
    pub fn unwrap(bytes: &[u8], limit: usize) -> io::Result<(Self, &[u8])> {
        let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
            return Ok((Self::new(limit), bytes));
        };
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "truncated audit outbox");
        let (&version, rest) = rest.split_first().ok_or_else(bad)?;
        if version != VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unsupported audit outbox version {version}"),
            ));
        }
        let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(bad());
        }
        let (saved, machine) = rest.split_at(len);
        let saved: Saved = from_bytes(saved)?;
        // Without a broker nothing new is recorded, but what the snapshot brought is kept
        // (and carried on) until the group confirms it.
        let excess = if limit == 0 {
            0
        } else {
            saved.pending.len().saturating_sub(limit)
        };
        let outbox = Self {
            pending: saved.pending.into_iter().skip(excess).collect(),
            published: saved.published,
            dropped: saved.dropped + excess as u64,
            limit,
        };
        Ok((outbox, machine))
    }
}

impl Saved {
    /// Snapshot bytes: the outbox, then the machine's own bytes. An outbox that never
    /// held anything adds nothing, so such snapshots stay readable by older nodes.
    pub fn wrap(&self, machine: Vec<u8>) -> io::Result<Vec<u8>> {
        if self.pending.is_empty() && self.published.is_none() && self.dropped == 0 {
            return Ok(machine);
        }
        let saved = to_vec(self)?;
        let len = u32::try_from(saved.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "audit outbox too large"))?;
        let mut bytes = Vec::with_capacity(9 + saved.len() + machine.len());
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&saved);
        bytes.extend_from_slice(&machine);
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use lock_core::{Change, FencingToken, LockKey, Name, TenantId};

    use super::*;

    fn event(index: u64, seq: u32) -> Recorded {
        Recorded::Lock(AuditEvent {
            index,
            seq,
            at: 1_000 + index,
            tenant: TenantId(1),
            change: Change::Released {
                key: LockKey::new(TenantId(1), "k"),
                owner: Name::new("o"),
                token: FencingToken(index),
            },
        })
    }

    fn positions(events: &[Arc<Recorded>]) -> Vec<(u64, u32)> {
        events
            .iter()
            .map(|e| (e.position().index, e.position().seq))
            .collect()
    }

    #[test]
    fn confirmed_events_leave_and_later_ones_stay_in_order() {
        let mut outbox = Outbox::new(100);
        for (index, seq) in [(3, 0), (3, 1), (5, 0), (8, 0)] {
            outbox.record(event(index, seq));
        }
        outbox.confirm(EventPosition { index: 3, seq: 1 });
        assert_eq!(positions(&outbox.after(None, 10)), [(5, 0), (8, 0)]);
        let after = Some(EventPosition { index: 5, seq: 0 });
        assert_eq!(positions(&outbox.after(after, 10)), [(8, 0)]);
        // An older confirmation changes nothing; an event at or before the cursor (a
        // re-applied entry) is not recorded again.
        outbox.confirm(EventPosition { index: 1, seq: 0 });
        outbox.record(event(3, 0));
        assert_eq!(outbox.backlog(), 2);
        assert_eq!(outbox.published(), Some(EventPosition { index: 3, seq: 1 }));
    }

    #[test]
    fn past_the_limit_the_oldest_are_dropped_and_counted() {
        let mut outbox = Outbox::new(2);
        for index in 1..=5 {
            outbox.record(event(index, 0));
        }
        assert_eq!(positions(&outbox.after(None, 10)), [(4, 0), (5, 0)]);
        assert_eq!(outbox.dropped(), 3);
        let mut off = Outbox::new(0);
        off.record(event(1, 0));
        assert_eq!(off.backlog(), 0);
    }

    #[test]
    fn a_snapshot_carries_the_outbox_and_reads_old_bytes_as_empty() {
        let mut outbox = Outbox::new(10);
        for index in 1..=4 {
            outbox.record(event(index, 0));
        }
        outbox.confirm(EventPosition { index: 2, seq: 0 });
        let bytes = outbox.saved().wrap(vec![1, 0, 9, 9]).unwrap();
        let (again, machine) = Outbox::unwrap(&bytes, 10).unwrap();
        assert_eq!(machine, [1, 0, 9, 9]);
        assert_eq!(again.published(), outbox.published());
        assert_eq!(positions(&again.after(None, 10)), [(3, 0), (4, 0)]);
        // Restored with a smaller limit: the oldest are dropped and counted.
        let (smaller, _) = Outbox::unwrap(&bytes, 1).unwrap();
        assert_eq!((smaller.backlog(), smaller.dropped()), (1, 1));
        // A snapshot written before outboxes existed.
        let (empty, machine) = Outbox::unwrap(&[1, 0, 7], 10).unwrap();
        assert_eq!((empty.backlog(), machine), (0, [1, 0, 7].as_slice()));
        assert!(Outbox::unwrap(b"LPOX\x01\x09\0\0\0ab", 10).is_err());
        assert!(Outbox::unwrap(b"LPOX\x02\0\0\0\0", 10).is_err());
        // An outbox that never held anything adds nothing.
        assert_eq!(Outbox::new(0).saved().wrap(vec![4]).unwrap(), [4]);
        // A node without a broker keeps (and carries on) what a snapshot brought.
        let (kept, _) = Outbox::unwrap(&bytes, 0).unwrap();
        assert_eq!(positions(&kept.after(None, 10)), [(3, 0), (4, 0)]);
        let again = kept.saved().wrap(vec![7]).unwrap();
        assert_eq!(Outbox::unwrap(&again, 10).unwrap().0.backlog(), 2);
    }
}
