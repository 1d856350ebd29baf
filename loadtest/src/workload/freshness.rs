//! How fast a change reaches a status read: beside W4's clients, one probe takes a key of
//! its own, then reads its status (the cheapest read) every 2 ms until it shows the grant,
//! then releases it and reads until it shows the key free. The times from each answer
//! (the commit) to the first read that shows it measure the status cache's update path
//! under load; without a cache they measure the leader's read. Only for systems whose
//! reads say which grant they show (Lockplane).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::stats::Latencies;
use crate::target::Conn;

/// Pause between the probe's reads.
const POLL: Duration = Duration::from_millis(2);

/// Pause between probe rounds.
const ROUND_PAUSE: Duration = Duration::from_millis(50);

/// Longest wait for a change to show before the round counts as a failure.
const GIVE_UP: Duration = Duration::from_secs(10);

/// What the probe saw.
#[derive(Default)]
pub struct Freshness {
    /// From a grant or release answered to the first read showing it.
    pub shown_after: Latencies,
    /// Changes not shown within [`GIVE_UP`], or calls that failed.
    pub failures: u64,
    /// Reads that showed an older version than an earlier read of the probe.
    pub versions_backwards: u64,
    /// The highest version read so far.
    newest: u64,
}

/// Probes `key` through `conn` until `stop` is set.
pub async fn probe(
    mut conn: Conn,
    key: String,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Freshness> {
    let mut seen = Freshness::default();
    while !stop.load(Ordering::Relaxed) {
        let token = match conn
            .acquire(
                &key,
                "freshness-probe",
                Duration::from_secs(30),
                Duration::ZERO,
            )
            .await
        {
            Ok(Some(token)) => token,
            _ => {
                seen.failures += 1;
                tokio::time::sleep(ROUND_PAUSE).await;
                continue;
            }
        };
        let shown = shows(&mut conn, &key, Some(token), &mut seen).await;
        record(&mut seen, shown);
        let released = conn.release(&key, "freshness-probe", token).await;
        if !matches!(released, Ok(true)) {
            seen.failures += 1;
        }
        let shown = shows(&mut conn, &key, None, &mut seen).await;
        record(&mut seen, shown);
        tokio::time::sleep(ROUND_PAUSE).await;
    }
    Ok(seen)
}

fn record(seen: &mut Freshness, took: Option<Duration>) {
    match took {
        Some(took) => seen.shown_after.record(took),
        None => seen.failures += 1,
    }
}

/// How long until a read of `key` shows it held with `token` (or free, for `None`);
/// every read's version is checked against the newest seen.
async fn shows(
    conn: &mut Conn,
    key: &str,
    token: Option<u64>,
    seen: &mut Freshness,
) -> Option<Duration> {
    let since = Instant::now();
    while since.elapsed() < GIVE_UP {
        if let Ok((holder, version)) = conn.holder_token(key).await {
            seen.versions_backwards += u64::from(version < seen.newest);
            seen.newest = seen.newest.max(version);
            if holder == token {
                return Some(since.elapsed());
            }
        }
        tokio::time::sleep(POLL).await;
    }
    None
}
