//! Output: one JSON line per run as it finishes, and a Markdown table of all runs at the end.

use crate::workload::Outcome;

/// The JSON line of one run.
pub fn json_line(outcome: &Outcome) -> String {
    serde_json::to_string(outcome).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A Markdown table of `outcomes`.
pub fn markdown(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| target | workload | clients | per s | acquire p50 / p99 / p999 ms | release p50 / p99 ms | read p50 / p99 ms | failures | overlaps | non-increasing tokens | Jain | max / min grants |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let fairness = o.jain.map_or("–".into(), |j| format!("{j:.3}"));
        let reads = o
            .read_ms
            .map_or("–".into(), |r| format!("{:.2} / {:.2}", r.p50, r.p99));
        let spread = o
            .max_min_grants
            .map_or("–".into(), |(max, min)| format!("{max} / {min}"));
        let server = o.server.as_ref().map_or("–".into(), |s| {
            format!("{:.0} ({:.2})", s.cpu_us_per_op, s.cores)
        });
        out.push_str(&format!(
            "| {:?} | {:?} | {} | {:.0} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} | {reads} | {} | {} | {} | {fairness} | {spread} | {server} | {} |\n",
            o.target,
            o.workload,
            o.clients,
            o.per_second,
            o.acquire_ms.p50,
            o.acquire_ms.p99,
            o.acquire_ms.p999,
            o.release_ms.p50,
            o.release_ms.p99,
            o.failures,
            o.overlaps,
            o.non_increasing_tokens,
            more(o),
        ));
    }
    out
}

/// W3's memory per lock and W5's keepalives, in a few words.
fn more(o: &Outcome) -> String {
    let mut parts = Vec::new();
    if let Some(held) = &o.held {
        let bytes: Vec<String> = held
            .bytes_per_lock
            .iter()
            .map(|b| format!("{b:.0}"))
            .collect();
        parts.push(format!(
            "{} held, B/lock per process: {}",
            held.locks,
            if bytes.is_empty() {
                "–".into()
            } else {
                bytes.join(" / ")
            }
        ));
    }
    if let Some(k) = &o.keepalives {
        parts.push(format!(
            "{} sessions (opened {:.0}/s): {:.0} keepalives/s, p50 / p99 {:.2} / {:.2} ms, {} lost, {} failed",
            k.sessions,
            k.opened_per_second,
            k.per_second,
            k.latency_ms.p50,
            k.latency_ms.p99,
            k.sessions_lost,
            k.failures
        ));
    }
    if parts.is_empty() {
        "–".into()
    } else {
        parts.join("; ")
    }
}
