//! The time-ordered index of everything that can come due: O(log n) to add or remove an
//! entry, O(1) to find the earliest, so a tick costs O(expired · log n) and never scans.

use std::collections::BTreeSet;

use crate::types::{LockKey, Millis, SessionId, WaitId};

/// One pending deadline per lease, session, wait and lock-delay.
///
/// Kept in four sets so that each entry stays small; [`Timers::pop_due`] merges them in
/// `(time, kind)` order so that a tick handles events in the order they happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Timers {
    pub(crate) waits: BTreeSet<(Millis, LockKey, WaitId)>,
    pub(crate) sessions: BTreeSet<(Millis, SessionId)>,
    pub(crate) leases: BTreeSet<(Millis, LockKey)>,
    pub(crate) delays: BTreeSet<(Millis, LockKey)>,
}

/// A deadline that has come due. Variants are listed in the order same-time events run:
/// a wait ends before a lease at the same instant can hand it the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Due {
    Wait(LockKey, WaitId),
    Session(Millis, SessionId),
    Lease(Millis, LockKey),
    Delay(LockKey),
}

impl Timers {
    /// The earliest pending deadline.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.earliest().map(|(at, _)| at)
    }

    /// The earliest pending deadline and the rank of its set (waits first on ties).
    fn earliest(&self) -> Option<(Millis, usize)> {
        [
            self.waits.first().map(|t| t.0),
            self.sessions.first().map(|t| t.0),
            self.leases.first().map(|t| t.0),
            self.delays.first().map(|t| t.0),
        ]
        .into_iter()
        .enumerate()
        .filter_map(|(rank, at)| at.map(|at| (at, rank)))
        .min()
    }

    /// Removes and returns the earliest deadline at or before `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<Due> {
        let (at, kind) = self.earliest()?;
        if at > now {
            return None;
        }
        Some(match kind {
            0 => {
                let (_, key, wait) = self.waits.pop_first()?;
                Due::Wait(key, wait)
            }
            1 => {
                let (at, id) = self.sessions.pop_first()?;
                Due::Session(at, id)
            }
            2 => {
                let (at, key) = self.leases.pop_first()?;
                Due::Lease(at, key)
            }
            _ => {
                let (_, key) = self.delays.pop_first()?;
                Due::Delay(key)
            }
        })
    }

    /// The number of pending deadlines of all kinds.
    pub(crate) fn len(&self) -> usize {
        self.waits.len() + self.sessions.len() + self.leases.len() + self.delays.len()
    }
}
