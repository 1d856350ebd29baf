//! W4: each client does 70% status reads and 30% acquire → release cycles (the seed notes'
//! ratio). Half the keys read are held for the whole run by one setup client, so reads see
//! both held and free keys; cycles run on each client's own key. Run with the cheapest
//! reads (`w4`) or linearizable ones (`w4-linearizable`). Each client checks that no key's
//! status `version` ever goes backwards for it.

use std::time::{Duration, Instant};

use super::uncontended::cycle;
use super::{Outcome, Phase, Run, Tally, Workload, drive};
use crate::stats::xorshift;
use crate::target::Conn;

/// Keys the readers spread over; the even ones are held for the whole run.
const READ_KEYS: u64 = 64;

/// Reads per hundred operations.
const READ_PERCENT: u64 = 70;

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
    let measured = drive(run, |n, conn, phase| {
        let own = format!("{prefix}-own-{n}");
        client(
            conn,
            (prefix.clone(), own, format!("c{n}")),
            linearizable,
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
    Ok(Outcome::of(run, workload, &measured))
}

async fn client(
    mut conn: Conn,
    (prefix, own, owner): (String, String, String),
    linearizable: bool,
    seed: u64,
    phase: Phase,
) -> Tally {
    let mut tally = Tally::default();
    let mut seen = std::collections::HashMap::new();
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !phase.stopped() {
        let counted = phase.measuring();
        let draw = xorshift(&mut rng);
        if draw % 100 < READ_PERCENT {
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
