//! W2: every client contends for one key with blocking acquires (Redis: retries with
//! jittered backoff). Measures grants per second and fairness, and checks safety on the
//! client side: a shared "inside" slot catches two holders at once, and a shared highest
//! token catches a grant whose token is not above every earlier one. For Lockplane both
//! counts must be zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Outcome, Percentiles, Run, Workload};
use crate::stats::{Latencies, jain};
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

struct ClientResult {
    acquires: Latencies,
    releases: Latencies,
    grants: u64,
    failures: u64,
}

/// Runs W2.
pub async fn run(run: &Run) -> anyhow::Result<Outcome> {
    let key = format!("lt-{}-w2", run.run_id);
    let shared = Arc::new(Shared::default());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::with_capacity(run.clients);
    for c in 0..run.clients {
        let conn = Conn::connect(run.target, &run.endpoints, c as u64 + 1).await?;
        let args = (key.clone(), format!("c{c}"), Arc::clone(&shared));
        let (measuring, stop) = (Arc::clone(&measuring), Arc::clone(&stop));
        clients.push(tokio::spawn(client(conn, args, measuring, stop)));
    }
    tokio::time::sleep(run.warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(run.duration).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let (mut acquires, mut releases, mut failures) =
        (Latencies::default(), Latencies::default(), 0);
    let mut grants = Vec::with_capacity(run.clients);
    for client in clients {
        let result = client.await?;
        acquires.merge(&result.acquires);
        releases.merge(&result.releases);
        failures += result.failures;
        grants.push(result.grants);
    }
    let total: u64 = grants.iter().sum();
    let max = grants.iter().copied().max().unwrap_or(0);
    let min = grants.iter().copied().min().unwrap_or(0);
    Ok(Outcome {
        target: run.target,
        workload: Workload::W2,
        clients: run.clients,
        seconds,
        per_second: total as f64 / seconds,
        acquire_ms: Percentiles::of(&acquires),
        release_ms: Percentiles::of(&releases),
        failures,
        overlaps: shared.overlaps.load(Ordering::Relaxed),
        non_increasing_tokens: shared.non_increasing.load(Ordering::Relaxed),
        jain: Some(jain(&grants)),
        max_min_grants: Some((max, min)),
    })
}

async fn client(
    mut conn: Conn,
    (key, owner, shared): (String, String, Arc<Shared>),
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> ClientResult {
    let mut result = ClientResult {
        acquires: Latencies::default(),
        releases: Latencies::default(),
        grants: 0,
        failures: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let token = match conn.acquire(&key, &owner, TTL, WAIT).await {
            Ok(Some(token)) => token,
            Ok(None) => continue,
            Err(_) => {
                result.failures += 1;
                continue;
            }
        };
        let acquired = t.elapsed();
        shared.enter(token);
        shared.leave(token);
        let counted = measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed);
        let t = Instant::now();
        let released = conn.release(&key, &owner, token).await;
        if counted {
            result.acquires.record(acquired);
            result.grants += 1;
        }
        match released {
            Ok(true) if counted => result.releases.record(t.elapsed()),
            Ok(true) => {}
            Ok(false) | Err(_) => result.failures += 1,
        }
    }
    result
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
