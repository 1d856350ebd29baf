//! The effects of the entries a group applied, addressed by log index: what the group's
//! watchers (session and key watches, the cache's change feeds) read, each from its own
//! position.
//!
//! Unlike a broadcast channel, nothing is lost without a word: a reader asks for the
//! entries after its position, and gets them all, or [`Behind`] if some of them are no
//! longer kept (the log keeps the newest `capacity` entries that had effects, and nothing
//! from before this process applied it). A reader can also start from any position it
//! read before — on this replica or another, since every replica applies the same
//! entries — so a follower that reconnects picks up where it stopped.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use lock_core::Effect;
use tokio::sync::watch;

/// The effects of one applied entry, as its group's watchers read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The entry's log index.
    pub index: u64,
    /// What `lock-core` asked the world to do, in order.
    pub effects: Vec<Effect>,
}

/// How many entries with effects a group keeps by default.
pub const DEFAULT_KEPT: usize = 4_096;

/// Some entries after a reader's position are no longer kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behind {
    /// Entries up to this index may be gone; the oldest position a reader can start from.
    pub kept_after: u64,
}

struct Kept {
    /// Entries with effects, by increasing index.
    entries: VecDeque<Arc<Applied>>,
    /// Every entry up to this index may have been dropped (or was applied before).
    dropped_through: u64,
}

/// A group's applied entries, newest `capacity` kept.
pub struct AppliedLog {
    /// Read by every reader at once; written by the apply task.
    kept: RwLock<Kept>,
    /// The index applied through (entries without effects included).
    applied: watch::Sender<u64>,
    capacity: usize,
}

impl AppliedLog {
    /// A log whose first entry will come after `applied_through` (what a snapshot
    /// restored), keeping `capacity` entries.
    pub fn new(applied_through: u64, capacity: usize) -> Self {
        Self {
            kept: RwLock::new(Kept {
                entries: VecDeque::new(),
                dropped_through: applied_through,
            }),
            applied: watch::Sender::new(applied_through),
            capacity: capacity.max(1),
        }
    }

    fn kept(&self) -> RwLockReadGuard<'_, Kept> {
        self.kept.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn kept_mut(&self) -> RwLockWriteGuard<'_, Kept> {
        self.kept.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `entries` (by increasing index, after every entry added before), applied
    /// through `applied_through`, and wakes the readers if there were any entries (a
    /// reader's position moves past entries without effects when it next reads).
    pub fn append(&self, entries: Vec<Applied>, applied_through: u64) {
        let added = !entries.is_empty();
        let mut dropped = Vec::new();
        if added {
            let mut kept = self.kept_mut();
            for entry in entries {
                if kept.entries.len() == self.capacity
                    && let Some(oldest) = kept.entries.pop_front()
                {
                    kept.dropped_through = oldest.index;
                    dropped.push(oldest);
                }
                kept.entries.push_back(Arc::new(entry));
            }
        }
        // Freed once the lock is let go.
        drop(dropped);
        self.applied.send_if_modified(|through| {
            *through = (*through).max(applied_through);
            added
        });
    }

    /// Starts again after `index` (a snapshot was installed): the entries before it are
    /// not there, and a reader positioned before it is [`Behind`].
    pub fn restart_after(&self, index: u64) {
        debug_assert!(
            index >= self.applied_through(),
            "a snapshot is installed only past what was applied"
        );
        {
            let mut kept = self.kept_mut();
            kept.entries.clear();
            kept.dropped_through = kept.dropped_through.max(index);
        }
        self.applied.send_if_modified(|through| {
            let moved = index > *through;
            *through = (*through).max(index);
            moved
        });
    }

    /// The index applied through.
    pub fn applied_through(&self) -> u64 {
        *self.applied.borrow()
    }

    /// A reader of the entries after `position`.
    pub fn read_after(self: &Arc<Self>, position: u64) -> Reader {
        Reader {
            log: Arc::clone(self),
            position,
            applied: self.applied.subscribe(),
        }
    }

    /// A reader of the entries applied from now on.
    pub fn read_from_now(self: &Arc<Self>) -> Reader {
        let applied = self.applied.subscribe();
        let position = *applied.borrow();
        Reader {
            log: Arc::clone(self),
            position,
            applied,
        }
    }

    /// The kept entries after `position`, at most `most`; [`Behind`] if some after it
    /// were dropped.
    fn after(&self, position: u64, most: usize) -> Result<Vec<Arc<Applied>>, Behind> {
        let kept = self.kept();
        if position < kept.dropped_through {
            return Err(Behind {
                kept_after: kept.dropped_through,
            });
        }
        let start = kept.entries.partition_point(|e| e.index <= position);
        Ok(kept.entries.range(start..).take(most).cloned().collect())
    }
}

/// One reader's position in an [`AppliedLog`].
pub struct Reader {
    log: Arc<AppliedLog>,
    position: u64,
    applied: watch::Receiver<u64>,
}

impl Reader {
    /// The index this reader has read through.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next entries with effects, at most `most`, once there are any; [`Behind`] if
    /// some were dropped before they were read.
    pub async fn next(&mut self, most: usize) -> Result<Vec<Arc<Applied>>, Behind> {
        loop {
            let entries = self.try_next(most)?;
            if !entries.is_empty() {
                return Ok(entries);
            }
            if self.applied.changed().await.is_err() {
                // Cannot happen: this reader holds the log, which holds the sender. Should
                // it ever, nothing more can come, and waiting beats spinning.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The entries with effects that are already there, at most `most` (none: empty).
    pub fn try_next(&mut self, most: usize) -> Result<Vec<Arc<Applied>>, Behind> {
        // Every entry up to `through` was kept before `through` was published, so a read
        // that is not cut short by `most` has seen them all.
        let through = *self.applied.borrow_and_update();
        if self.position >= through {
            // Nothing was applied after it (and nothing dropped after it either).
            return Ok(Vec::new());
        }
        let entries = self.log.after(self.position, most)?;
        let read_to = entries.last().map_or(self.position, |e| e.index);
        self.position = if entries.len() == most {
            read_to
        } else {
            read_to.max(through)
        };
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64) -> Applied {
        Applied {
            index,
            effects: Vec::new(),
        }
    }

    fn indices(entries: &[Arc<Applied>]) -> Vec<u64> {
        entries.iter().map(|e| e.index).collect()
    }

    #[test]
    fn readers_get_every_entry_after_their_position_in_order() {
        let log = Arc::new(AppliedLog::new(10, 8));
        let mut now = log.read_from_now();
        log.append(vec![entry(11), entry(13)], 14);
        let mut from_12 = log.read_after(12);
        assert_eq!(indices(&now.try_next(10).unwrap()), [11, 13]);
        assert_eq!(now.position(), 14);
        assert_eq!(indices(&from_12.try_next(10).unwrap()), [13]);
        assert!(now.try_next(10).unwrap().is_empty());
        log.append(vec![entry(15), entry(16), entry(17)], 17);
        assert_eq!(indices(&now.try_next(2).unwrap()), [15, 16]);
        assert_eq!(now.position(), 16);
        assert_eq!(indices(&now.try_next(2).unwrap()), [17]);
        assert_eq!(now.position(), 17);
    }

    #[test]
    fn a_reader_whose_entries_were_dropped_is_told() {
        let log = Arc::new(AppliedLog::new(0, 3));
        let mut slow = log.read_after(0);
        log.append((1..=5).map(entry).collect(), 5);
        assert_eq!(slow.try_next(10), Err(Behind { kept_after: 2 }));
        assert_eq!(indices(&log.read_after(2).try_next(10).unwrap()), [3, 4, 5]);
        // Nothing from before the log began is there either.
        let restored = Arc::new(AppliedLog::new(100, 3));
        assert_eq!(
            restored.read_after(50).try_next(10),
            Err(Behind { kept_after: 100 })
        );
        assert!(restored.read_after(100).try_next(10).unwrap().is_empty());
        // A snapshot installed past a reader leaves it behind.
        let mut reader = restored.read_from_now();
        restored.append(vec![entry(101)], 101);
        restored.restart_after(200);
        assert_eq!(reader.try_next(10), Err(Behind { kept_after: 200 }));
        assert_eq!(restored.applied_through(), 200);
    }

    #[tokio::test]
    async fn next_waits_for_an_entry() {
        let log = Arc::new(AppliedLog::new(0, 8));
        let mut reader = log.read_from_now();
        let writer = Arc::clone(&log);
        let appended = tokio::spawn(async move {
            tokio::task::yield_now().await;
            writer.append(Vec::new(), 1);
            writer.append(vec![entry(2)], 2);
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader.next(10))
            .await
            .expect("woken within 5 s")
            .unwrap();
        assert_eq!(indices(&got), [2]);
        appended.await.unwrap();
    }
}
