//! W4: each client does 70% status reads and 30% acquire → release cycles (the seed notes'
//! ratio; `--read-percent` changes it). Half the keys read are held for the whole run by one setup client, so reads see
//! both held and free keys; cycles run on each client's own key. Run with the cheapest
//! reads (`w4`) or linearizable ones (`w4-linearizable`). Each client checks that no key's
//! status `version` ever goes backwards for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::uncontended::cycle;
use super::{Outcome, Percentiles, Phase, Run, Tally, Workload, drive, freshness};
use crate::stats::xorshift;
use crate::target::{Conn, Kind};

/// Keys the readers spread over; the even ones are held for the whole run.
const READ_KEYS: u64 = 64;

/// Lease of the keys held for the readers: longer than any run.
const HELD_TTL: Duration = Duration::from_secs(3_600);

/// Runs W4 with `linearizable` reads or not.
pub async fn run(run: &Run, linearizable: bool) -> anyhow::Result<Outcome> {
    let prefix = format!("lt-{}-w4", run.run_id);
    let mut holder = Conn::connect(run.target, &run.endpoints, 0).await?;
    let mut held = Vec::new();
    for k in (0..READ_KEYS).step_by(2) {
        let key = format!("{prefix}-read-{k}");
        if let Some(token) = holder
            .acquire(&key, "reader-setup", HELD_TTL, Duration::ZERO)
            .await?
        {
            held.push((key, token));
        }
    }
    let mut probe = None;
    if run.target == Kind::Lockplane && !linearizable {
        let stop = Arc::new(AtomicBool::new(false));
        let conn = Conn::connect(run.target, &run.endpoints, u64::MAX).await?;
        let key = format!("{prefix}-probe");
        let task = tokio::spawn(freshness::probe(conn, key, Arc::clone(&stop)));
        probe = Some((stop, task));
    }
    let measured = drive(run, |n, conn, phase| {
        let own = format!("{prefix}-own-{n}");
        client(
            conn,
            (prefix.clone(), own, format!("c{n}")),
            (linearizable, run.read_percent),
            n as u64 + 1,
            phase,
        )
    })
    .await?;
    for (key, token) in held {
        let _ = holder.release(&key, "reader-setup", token).await;
    }
    let workload = if linearizable {
        Workload::W4Linearizable
    } else {
        Workload::W4
    };
    let mut outcome = Outcome::of(run, workload, &measured);
    outcome.read_percent = Some(run.read_percent);
    if let Some((stop, task)) = probe {
        stop.store(true, Ordering::Relaxed);
        let seen = task.await??;
        outcome.failures += seen.failures;
        outcome.versions_backwards += seen.versions_backwards;
        outcome.change_shown_ms =
            (!seen.shown_after.is_empty()).then(|| Percentiles::of(&seen.shown_after));
    }
    Ok(outcome)
}

async fn client(
    mut conn: Conn,
    (prefix, own, owner): (String, String, String),
    (linearizable, read_percent): (bool, u64),
    seed: u64,
    phase: Phase,
) -> Tally {
    let mut tally = Tally::default();
    let mut seen = std::collections::HashMap::new();
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !phase.stopped() {
        let counted = phase.measuring();
        let draw = xorshift(&mut rng);
        if draw % 100 < read_percent {
            let key = format!("{prefix}-read-{}", (draw >> 8) % READ_KEYS);
            let t = Instant::now();
            match conn.is_held(&key, linearizable).await {
                Ok((_, version)) => {
                    if let Some(version) = version {
                        let before = seen.insert(key, version).unwrap_or(0);
                        tally.versions_backwards += u64::from(version < before);
                    }
                    if counted {
                        tally.reads.record(t.elapsed());
                        tally.done += 1;
                    }
                }
                Err(_) => tally.failures += u64::from(counted),
            }
            continue;
        }
        cycle(&mut conn, &own, &owner, counted, &mut tally).await;
    }
    tally
}
