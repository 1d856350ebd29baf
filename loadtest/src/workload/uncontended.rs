//! W1: `clients` clients, each on its own key, loop acquire → release. Measures cycles per
//! second and the latency of each call.

use std::time::{Duration, Instant};

use super::{Outcome, Phase, Run, Tally, Workload, drive};
use crate::target::Conn;

/// Lease of each grant: long enough never to expire mid-cycle.
const TTL: Duration = Duration::from_secs(30);

/// Runs W1.
pub async fn run(run: &Run) -> anyhow::Result<Outcome> {
    let run_id = run.run_id.clone();
    let measured = drive(run, |n, conn, phase| {
        client(conn, format!("lt-{run_id}-w1-{n}"), format!("c{n}"), phase)
    })
    .await?;
    Ok(Outcome::of(run, Workload::W1, &measured))
}

pub(super) async fn client(mut conn: Conn, key: String, owner: String, phase: Phase) -> Tally {
    let mut tally = Tally::default();
    while !phase.stopped() {
        let counted = phase.measuring();
        cycle(&mut conn, &key, &owner, counted, &mut tally).await;
    }
    tally
}

/// One uncontended acquire → release of `key` (W1, and W4's writes), recorded in `tally`
/// when `counted`.
pub(super) async fn cycle(
    conn: &mut Conn,
    key: &str,
    owner: &str,
    counted: bool,
    tally: &mut Tally,
) {
    let t = Instant::now();
    let token = match conn.acquire(key, owner, TTL, Duration::ZERO).await {
        Ok(Some(token)) => token,
        Ok(None) | Err(_) => {
            tally.failures += u64::from(counted);
            return;
        }
    };
    let acquired = t.elapsed();
    let t = Instant::now();
    let released = conn.release(key, owner, token).await;
    let took = t.elapsed();
    if counted {
        tally.acquires.record(acquired);
        match released {
            Ok(true) => {
                tally.releases.record(took);
                tally.done += 1;
            }
            Ok(false) | Err(_) => tally.failures += 1,
        }
    }
}
