//! Output: one JSON line per run as it finishes, and a Markdown table of all runs at the end.

use crate::workload::Outcome;

/// The JSON line of one run.
pub fn json_line(outcome: &Outcome) -> String {
    serde_json::to_string(outcome).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A Markdown table of `outcomes`.
pub fn markdown(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| target | workload | clients | per s | acquire p50 / p99 / p999 ms | release p50 / p99 ms | read p50 / p99 ms | failures | overlaps | non-increasing tokens | Jain | max / min grants | server CPU µs/op (cores) | more |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
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
    if let Some(shown) = o.change_shown_ms {
        parts.push(format!(
            "changes shown after p50 {:.1} / p99 {:.1} ms",
            shown.p50, shown.p99
        ));
    }
    if let Some(percent) = o.read_percent {
        parts.push(format!("{percent}% reads"));
    }
    if o.versions_backwards > 0 {
        parts.push(format!(
            "{} status reads went back in version",
            o.versions_backwards
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Kind;
    use crate::workload::{HeldLocks, Keepalives, Percentiles, ServerCost, Workload};

    fn outcome() -> Outcome {
        let ms = Percentiles {
            p50: 1.0,
            p99: 2.0,
            p999: 3.0,
        };
        Outcome {
            target: Kind::Lockplane,
            workload: Workload::W3,
            clients: 64,
            seconds: 10.0,
            per_second: 5_000.0,
            acquire_ms: ms,
            release_ms: ms,
            read_ms: None,
            read_percent: None,
            change_shown_ms: None,
            failures: 0,
            overlaps: 0,
            non_increasing_tokens: 0,
            versions_backwards: 0,
            jain: None,
            max_min_grants: None,
            server: Some(ServerCost {
                cpu_us_per_op: 250.0,
                cores: 1.5,
                rss_mib: vec![400.0, 410.0],
            }),
            held: Some(HeldLocks {
                locks: 1_000,
                bytes_per_lock: vec![380.0, 379.0],
            }),
            keepalives: Some(Keepalives {
                sessions: 10,
                opened_per_second: 100.0,
                per_second: 3.0,
                latency_ms: ms,
                sessions_lost: 0,
                failures: 0,
            }),
        }
    }

    #[test]
    fn every_row_has_as_many_cells_as_the_header() {
        let table = markdown(&[outcome()]);
        let cells = |line: &str| line.matches('|').count();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines.iter().all(|l| cells(l) == cells(lines[0])), "{table}");
        assert!(lines[2].contains("250 (1.50)"), "{table}");
        assert!(lines[2].contains("380 / 379"), "{table}");
        assert!(lines[2].contains("10 sessions"), "{table}");
    }

    #[test]
    fn the_json_line_carries_the_server_and_w3_figures() {
        let line: serde_json::Value = serde_json::from_str(&json_line(&outcome())).unwrap();
        assert_eq!(line["workload"], "w3");
        assert_eq!(line["held"]["bytes_per_lock"][0], 380.0);
        assert_eq!(line["server"]["cores"], 1.5);
    }
}
