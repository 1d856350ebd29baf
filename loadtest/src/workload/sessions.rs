//! W5: W1's clients loop acquire → release while `sessions` sessions heartbeat, each every
//! third of its TTL, on their own connections. Measures W1's cycles per second beside the
//! keepalives (compare with a plain W1 run), the keepalives' rate and latency, and sessions
//! lost because a keepalive came too late.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Keepalives, Outcome, Percentiles, Run, Workload, drive, uncontended};
use crate::stats::Latencies;
use crate::target::Conn;

/// Connections the sessions are spread over (each opens and heartbeats its share).
const HEARTBEATERS: usize = 64;

/// How long opening every session may take before the run is called off: a target that
/// cannot open them while keeping the open ones alive would never get to W1.
const OPEN_LIMIT: Duration = Duration::from_secs(300);

/// Runs W5.
pub async fn run(run: &Run) -> anyhow::Result<Outcome> {
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeaters = HEARTBEATERS.min(run.sessions).max(1);
    let opening = Instant::now();
    let mut opened = Vec::with_capacity(heartbeaters);
    let mut tasks = Vec::with_capacity(heartbeaters);
    for h in 0..heartbeaters {
        let conn = Conn::connect(run.target, &run.endpoints, 10_000 + h as u64).await?;
        let share = (h..run.sessions).step_by(heartbeaters).count();
        let (tx, rx) = oneshot::channel();
        opened.push(rx);
        tasks.push(tokio::spawn(heartbeat(
            conn,
            Share {
                names: format!("lt-{}-w5-{h}", run.run_id),
                count: share,
                ttl: run.session_ttl,
            },
            tx,
            Arc::clone(&counting),
            Arc::clone(&stop),
        )));
    }
    let all_opened = async {
        for rx in opened {
            rx.await??;
        }
        anyhow::Ok(())
    };
    let opened = tokio::time::timeout(OPEN_LIMIT, all_opened).await;
    if !matches!(opened, Ok(Ok(()))) {
        stop.store(true, Ordering::Relaxed);
    }
    match opened {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => anyhow::bail!(
            "{} sessions were not all open after {OPEN_LIMIT:?}: keepalives of the open ones \
             took all the time",
            run.sessions
        ),
    }
    let opened_per_second = run.sessions as f64 / opening.elapsed().as_secs_f64();
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let run_id = run.run_id.clone();
    let measured = drive(run, |n, conn, phase| {
        uncontended::client(conn, format!("lt-{run_id}-w5-{n}"), format!("c{n}"), phase)
    })
    .await;
    counting.store(false, Ordering::Relaxed);
    let counted_seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut beats = Beats::default();
    for task in tasks {
        let tally = task.await?;
        beats.latencies.merge(&tally.latencies);
        beats.done += tally.done;
        beats.lost += tally.lost;
        beats.failures += tally.failures;
    }
    let mut outcome = Outcome::of(run, Workload::W5, &measured?);
    outcome.keepalives = Some(Keepalives {
        sessions: run.sessions,
        opened_per_second,
        per_second: beats.done as f64 / counted_seconds,
        latency_ms: Percentiles::of(&beats.latencies),
        sessions_lost: beats.lost,
        failures: beats.failures,
    });
    Ok(outcome)
}

/// The sessions one heartbeater opens and keeps alive.
struct Share {
    names: String,
    count: usize,
    ttl: Duration,
}

/// What one heartbeater counted while W1 ran.
#[derive(Default)]
struct Beats {
    latencies: Latencies,
    done: u64,
    lost: u64,
    failures: u64,
}

/// Opens the share's sessions one after another, heartbeating each every `ttl / 3` from
/// its opening (so heartbeats are spread as the openings were), reports on `opened` once
/// all are open, and heartbeats until `stop`. Counts while `counting`.
async fn heartbeat(
    mut conn: Conn,
    share: Share,
    opened: oneshot::Sender<anyhow::Result<()>>,
    counting: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Beats {
    let interval = share.ttl / 3;
    let mut beats = Beats::default();
    let mut due: VecDeque<(Instant, String)> = VecDeque::with_capacity(share.count);
    let mut to_open = 0..share.count;
    let mut opened = Some(opened);
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if let Some((at, _)) = due.front()
            && *at <= now
        {
            let (_, session) = due.pop_front().expect("front exists");
            let counted = counting.load(Ordering::Relaxed);
            match conn.keepalive(&session, share.ttl).await {
                Ok(true) => {
                    if counted {
                        beats.latencies.record(now.elapsed());
                        beats.done += 1;
                    }
                    due.push_back((now + interval, session));
                }
                Ok(false) => beats.lost += 1,
                Err(_) => {
                    beats.failures += u64::from(counted);
                    due.push_back((now + interval, session));
                }
            }
        } else if let Some(n) = to_open.next() {
            match conn
                .open_session(&format!("{}-{n}", share.names), share.ttl)
                .await
            {
                Ok(session) => due.push_back((Instant::now() + interval, session)),
                Err(e) => {
                    if let Some(tx) = opened.take() {
                        let _ = tx.send(Err(e.context("cannot open a session")));
                    }
                    return beats;
                }
            }
            if to_open.is_empty()
                && let Some(tx) = opened.take()
            {
                let _ = tx.send(Ok(()));
            }
        } else {
            if let Some(tx) = opened.take() {
                let _ = tx.send(Ok(()));
            }
            let wake = due.front().map_or(now + interval, |(at, _)| *at);
            tokio::time::sleep_until(wake.min(now + Duration::from_millis(100)).into()).await;
        }
    }
    beats
}
