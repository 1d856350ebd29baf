//! One group's log as the engine keeps it in memory: vote, committed marker, purge point and
//! the live entries. The same methods apply live writes and replayed records, so recovery
//! rebuilds exactly the state the writes produced.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// The durable state of one Raft group's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState<E> {
    /// The last saved vote, as the caller encoded it.
    pub vote: Option<Vec<u8>>,
    /// The last saved committed marker, as the caller encoded it.
    pub committed: Option<Vec<u8>>,
    /// The last purge: every entry at or below `upto` is gone; `log_id` as the caller
    /// encoded it.
    pub purged: Option<(u64, Vec<u8>)>,
    /// Index of `entries[0]`.
    first: u64,
    entries: VecDeque<E>,
}

impl<E> Default for GroupState<E> {
    fn default() -> Self {
        Self {
            vote: None,
            committed: None,
            purged: None,
            first: 1,
            entries: VecDeque::new(),
        }
    }
}

impl<E: Clone> GroupState<E> {
    /// The index of the first live entry, if any.
    pub fn first_index(&self) -> Option<u64> {
        (!self.entries.is_empty()).then_some(self.first)
    }

    /// The index of the last live entry, if any.
    pub fn last_index(&self) -> Option<u64> {
        (!self.entries.is_empty()).then(|| self.first + self.entries.len() as u64 - 1)
    }

    /// How many entries are live.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The live entries whose index lies in `range`.
    pub fn entries(&self, range: RangeInclusive<u64>) -> Vec<E> {
        let lo = (*range.start()).max(self.first);
        let hi = (*range.end()).min(self.first + self.entries.len() as u64);
        (lo..=hi)
            .filter_map(|i| self.entries.get((i - self.first) as usize).cloned())
            .collect()
    }

    /// Appends consecutive entries from index `first`, replacing any at or after it. An
    /// append past the end (after a snapshot was installed) starts the log afresh there.
    pub(crate) fn append(&mut self, first: u64, entries: impl IntoIterator<Item = E>) {
        let next = self.first + self.entries.len() as u64;
        if first < self.first || first > next {
            self.entries.clear();
            self.first = first;
        } else {
            self.entries.truncate((first - self.first) as usize);
        }
        self.entries.extend(entries);
    }

    /// Drops the entries at and after `since`.
    pub(crate) fn truncate(&mut self, since: u64) {
        if since <= self.first {
            self.entries.clear();
        } else {
            let keep = (since - self.first) as usize;
            self.entries.truncate(keep);
        }
    }

    /// Drops the entries at and below `upto` and records the purge point.
    pub(crate) fn purge(&mut self, upto: u64, log_id: Vec<u8>) {
        if self.purged.as_ref().is_some_and(|(p, _)| *p >= upto) {
            return;
        }
        let drop = upto.saturating_add(1).saturating_sub(self.first) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.first = self.first.max(upto + 1);
        self.purged = Some((upto, log_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes(s: &GroupState<u64>) -> Vec<u64> {
        s.entries(0..=u64::MAX)
    }

    #[test]
    fn append_truncate_purge_keep_entries_consecutive() {
        let mut s = GroupState::default();
        s.append(1, [1, 2, 3, 4]);
        assert_eq!((s.first_index(), s.last_index()), (Some(1), Some(4)));
        s.append(3, [3, 4, 5]);
        assert_eq!(indexes(&s), vec![1, 2, 3, 4, 5]);
        s.truncate(4);
        assert_eq!(indexes(&s), vec![1, 2, 3]);
        s.purge(2, b"id2".to_vec());
        assert_eq!(indexes(&s), vec![3]);
        assert_eq!(s.entries(1..=2), Vec::<u64>::new());
        s.purge(1, b"older".to_vec());
        assert_eq!(s.purged, Some((2, b"id2".to_vec())), "purges never go back");
        s.purge(10, b"id10".to_vec());
        assert!(s.is_empty());
        s.append(11, [11, 12]);
        assert_eq!(indexes(&s), vec![11, 12]);
        s.append(20, [20]);
        assert_eq!(
            indexes(&s),
            vec![20],
            "an append past the end starts afresh"
        );
    }
}
