//! Applied changes of a group by kind (grants, renewals, expiries, sessions, refusals),
//! counted as its state machine applies them, since the process started. Every replica
//! applies the same entries, so their rates agree; their totals do not (a replica that
//! installs a snapshot does not count what it covers, and a restart counts again the
//! entries it replays after its snapshot). The node's `/metrics` reports them per group;
//! read them with `rate()`, then the largest per group.

use std::sync::atomic::{AtomicU64, Ordering};

use lock_core::{Change, LostReason};

use super::outbox::Recorded;

/// The kinds counted, as the `change` label spells them.
pub const CHANGE_KINDS: [&str; 12] = [
    "acquired",
    "queued",
    "wait_ended",
    "renewed",
    "released",
    "expired",
    "lost_with_session",
    "session_created",
    "session_kept_alive",
    "session_expired",
    "session_closed",
    "rejected",
];

/// How many changes of each of [`CHANGE_KINDS`] a group's replica applied since start.
#[derive(Debug, Default)]
pub struct ChangeCounts([AtomicU64; CHANGE_KINDS.len()]);

impl ChangeCounts {
    /// Counts the lock changes of one applied batch (one atomic add per kind present).
    pub(crate) fn count(&self, recorded: &[Recorded]) {
        let mut tally = [0u64; CHANGE_KINDS.len()];
        for event in recorded {
            if let Recorded::Lock(event) = event {
                tally[kind(&event.change)] += 1;
            }
        }
        for (slot, n) in self.0.iter().zip(tally) {
            if n > 0 {
                slot.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// The counts, in the order of [`CHANGE_KINDS`].
    pub fn get(&self) -> [u64; CHANGE_KINDS.len()] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// The index of `change`'s kind in [`CHANGE_KINDS`].
fn kind(change: &Change) -> usize {
    match change {
        Change::Acquired { .. } => 0,
        Change::Queued { .. } => 1,
        Change::WaitEnded { .. } => 2,
        Change::Renewed { .. } => 3,
        Change::Released { .. } => 4,
        Change::Lost {
            reason: LostReason::Expired,
            ..
        } => 5,
        Change::Lost { .. } => 6,
        Change::SessionCreated { .. } => 7,
        Change::SessionKeptAlive { .. } => 8,
        Change::SessionEnded { expired: true, .. } => 9,
        Change::SessionEnded { expired: false, .. } => 10,
        Change::Rejected { .. } => 11,
    }
}

#[cfg(test)]
mod tests {
    use lock_core::{AuditEvent, FencingToken, LockKey, Name, TenantId};

    use super::*;

    fn event(change: Change) -> Recorded {
        Recorded::Lock(AuditEvent {
            index: 1,
            seq: 0,
            at: 0,
            tenant: TenantId(1),
            change,
        })
    }

    #[test]
    fn counts_each_kind_under_its_name() {
        let key = LockKey::new(TenantId(1), "k");
        let owner = Name::from("o");
        let counts = ChangeCounts::default();
        counts.count(&[
            event(Change::Released {
                key: key.clone(),
                owner: owner.clone(),
                token: FencingToken(1),
            }),
            event(Change::Lost {
                key: key.clone(),
                owner: owner.clone(),
                token: FencingToken(2),
                reason: LostReason::Expired,
            }),
            event(Change::Lost {
                key,
                owner,
                token: FencingToken(3),
                reason: LostReason::SessionClosed,
            }),
        ]);
        let by_name: Vec<(&str, u64)> = CHANGE_KINDS
            .iter()
            .copied()
            .zip(counts.get())
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(
            by_name,
            [("released", 1), ("expired", 1), ("lost_with_session", 1)]
        );
    }
}
