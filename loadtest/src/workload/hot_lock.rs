//! W2: every client contends for one key with blocking acquires (Redis: retries with
//! jittered backoff). Measures grants per second and fairness, and checks safety on the
//! client side: a shared "inside" slot catches two holders at once, and a shared highest
//! token catches a grant whose token is not above every earlier one. For Lockplane both
//! counts must be zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Outcome, Phase, Run, Tally, Workload, drive};
use crate::stats::jain;
use crate::target::Conn;

/// Lease of each grant: the critical section is short, but a stalled client must not hold
/// the key for long.
const TTL: Duration = Duration::from_secs(10);

/// How long one blocking acquire may wait.
const WAIT: Duration = Duration::from_secs(5);

/// What every client shares: who is inside, the highest token seen, the safety counts.
#[derive(Default)]
struct Shared {
    inside: AtomicU64,
    highest: AtomicU64,
    overlaps: AtomicU64,
    non_increasing: AtomicU64,
}

impl Shared {
    /// A holder with `token` enters the critical section.
    fn enter(&self, token: u64) {
        if self.inside.swap(token, Ordering::SeqCst) != 0 {
            self.overlaps.fetch_add(1, Ordering::Relaxed);
        }
        if self.highest.fetch_max(token, Ordering::SeqCst) >= token {
            self.non_increasing.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The holder with `token` leaves it (before releasing the lock).
    fn leave(&self, token: u64) {
        if self
            .inside
            .compare_exchange(token, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            self.overlaps.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs W2.
pub async fn run(run: &Run) -> anyhow::Result<Outcome> {
    let key = format!("lt-{}-w2", run.run_id);
    let shared = Arc::new(Shared::default());
    let measured = drive(run, |n, conn, phase| {
        client(
            conn,
            (key.clone(), format!("c{n}"), Arc::clone(&shared)),
            phase,
        )
    })
    .await?;
    let grants: Vec<u64> = measured.tallies.iter().map(|t| t.done).collect();
    let mut outcome = Outcome::of(run, Workload::W2, &measured);
    outcome.overlaps = shared.overlaps.load(Ordering::Relaxed);
    outcome.non_increasing_tokens = shared.non_increasing.load(Ordering::Relaxed);
    outcome.jain = Some(jain(&grants));
    outcome.max_min_grants = Some((
        grants.iter().copied().max().unwrap_or(0),
        grants.iter().copied().min().unwrap_or(0),
    ));
    Ok(outcome)
}

async fn client(
    mut conn: Conn,
    (key, owner, shared): (String, String, Arc<Shared>),
    phase: Phase,
) -> Tally {
    let mut tally = Tally::default();
    while !phase.stopped() {
        let t = Instant::now();
        let token = match conn.acquire(&key, &owner, TTL, WAIT).await {
            Ok(Some(token)) => token,
            Ok(None) => continue,
            Err(_) => {
                tally.failures += 1;
                continue;
            }
        };
        let acquired = t.elapsed();
        shared.enter(token);
        shared.leave(token);
        let counted = phase.measuring();
        let t = Instant::now();
        let released = conn.release(&key, &owner, token).await;
        if counted {
            tally.acquires.record(acquired);
            tally.done += 1;
        }
        match released {
            Ok(true) if counted => tally.releases.record(t.elapsed()),
            Ok(true) => {}
            Ok(false) | Err(_) => tally.failures += 1,
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(shared: &Shared) -> (u64, u64) {
        (
            shared.overlaps.load(Ordering::Relaxed),
            shared.non_increasing.load(Ordering::Relaxed),
        )
    }

    #[test]
    fn one_holder_at_a_time_with_rising_tokens_is_safe() {
        let shared = Shared::default();
        for token in [1, 2, 5, 9] {
            shared.enter(token);
            shared.leave(token);
        }
        assert_eq!(counts(&shared), (0, 0));
    }

    #[test]
    fn a_second_holder_inside_and_a_stale_token_are_counted() {
        let shared = Shared::default();
        shared.enter(3);
        shared.enter(4);
        shared.leave(4);
        shared.leave(3);
        assert_eq!(
            counts(&shared).0,
            2,
            "the entry and the first holder's exit"
        );
        shared.enter(2);
        shared.leave(2);
        assert_eq!(counts(&shared), (2, 1));
    }
}
