//! W3: `clients` clients take `locks` distinct locks with a long lease, as fast as they
//! can, and hold them. Measures acquires per second and, with the servers' PIDs, how much
//! resident memory each server process grew by per held lock. Then releases them all (so
//! later runs start from an empty table), which measures releases too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{HeldLocks, Measured, Outcome, Run, Tally, Workload};
use crate::target::Conn;

/// Lease of each lock: longer than any run, so none expires while memory is read.
const TTL: Duration = Duration::from_secs(3_600);

/// Runs W3.
pub async fn run(run: &Run) -> anyhow::Result<Outcome> {
    let prefix = format!("lt-{}-w3", run.run_id);
    let mut conns = Vec::with_capacity(run.clients);
    for n in 0..run.clients {
        conns.push(Conn::connect(run.target, &run.endpoints, n as u64 + 1).await?);
    }
    let before = run.servers.sample()?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let takers: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let (next, prefix, total) = (Arc::clone(&next), prefix.clone(), run.locks);
            tokio::spawn(take(conn, prefix, next, total))
        })
        .collect();
    let mut holders = Vec::with_capacity(takers.len());
    for taker in takers {
        holders.push(taker.await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = run.servers.sample()?;
    let held: u64 = holders.iter().map(|h| h.tally.done).sum();
    let releasers: Vec<_> = holders
        .into_iter()
        .map(|holder| tokio::spawn(give_back(holder, prefix.clone())))
        .collect();
    let mut tallies = Vec::with_capacity(releasers.len());
    for releaser in releasers {
        tallies.push(releaser.await?);
    }
    let bytes_per_lock = match (&before, &after) {
        (Some(before), Some(after)) if held > 0 => before
            .rss
            .iter()
            .zip(&after.rss)
            .map(|(&b, &a)| (a as f64 - b as f64) / held as f64)
            .collect(),
        _ => Vec::new(),
    };
    let measured = Measured {
        tallies,
        seconds,
        server: before.zip(after),
    };
    let mut outcome = Outcome::of(run, Workload::W3, &measured);
    outcome.held = Some(HeldLocks {
        locks: held,
        bytes_per_lock,
    });
    Ok(outcome)
}

/// One client's share: the locks it holds (index, token) and its tally.
struct Holder {
    conn: Conn,
    locks: Vec<(u64, u64)>,
    tally: Tally,
}

/// Takes locks by index from the shared counter until `total` are handed out.
async fn take(mut conn: Conn, prefix: String, next: Arc<AtomicU64>, total: u64) -> Holder {
    let (mut locks, mut tally) = (Vec::new(), Tally::default());
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= total {
            break;
        }
        let t = Instant::now();
        match conn
            .acquire(&format!("{prefix}-{index}"), "w3", TTL, Duration::ZERO)
            .await
        {
            Ok(Some(token)) => {
                tally.acquires.record(t.elapsed());
                tally.done += 1;
                locks.push((index, token));
            }
            Ok(None) | Err(_) => tally.failures += 1,
        }
    }
    Holder { conn, locks, tally }
}

/// Releases every lock `holder` took; its tally, with the releases added.
async fn give_back(mut holder: Holder, prefix: String) -> Tally {
    for &(index, token) in &holder.locks {
        let t = Instant::now();
        match holder
            .conn
            .release(&format!("{prefix}-{index}"), "w3", token)
            .await
        {
            Ok(true) => holder.tally.releases.record(t.elapsed()),
            Ok(false) | Err(_) => holder.tally.failures += 1,
        }
    }
    holder.tally
}
