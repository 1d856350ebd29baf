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
        out.push_str(&format!(
            "| {:?} | {:?} | {} | {:.0} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} | {reads} | {} | {} | {} | {fairness} | {spread} |\n",
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
        ));
    }
    out
}
