//! The figures of a run: answers by status, availability per phase, recovery after each
//! fault's start and after its heal, late answers, and every violation found; printed as
//! a Markdown table, with the command that replays the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::record::Record;
use crate::schedule::FaultKind;

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct Window {
    /// The kind.
    pub kind: FaultKind,
    /// The node it was aimed at (the hot key's leader then).
    pub target: u64,
    /// When it was injected.
    pub start: Duration,
    /// When it was healed.
    pub healed: Duration,
}

/// How long after the quiet spell's start a phase counts as "after the heal".
pub const AFTER_HEAL: Duration = Duration::from_secs(5);

/// The targets of issue 12: every group serves again within 2 × the election timeout
/// (followers campaign 1.5-2 s after the last heartbeat, so 4 s) during a single-node
/// fault; after a heal, within 2 s.
pub const SERVE_AGAIN_WITHIN: Duration = Duration::from_secs(4);
/// See [`SERVE_AGAIN_WITHIN`].
pub const RECOVER_AFTER_HEAL_WITHIN: Duration = Duration::from_secs(2);

/// How much later than its deadline an answer may come before it counts as late.
const LATE_SLACK: Duration = Duration::from_millis(500);

/// Which phase a moment belongs to.
fn phase(at: Duration, windows: &[Window]) -> &'static str {
    for w in windows {
        if at >= w.start && at < w.healed {
            return "during a fault";
        }
        if at >= w.healed && at < w.healed + AFTER_HEAL {
            return "after a heal";
        }
    }
    "steady"
}

/// How long a call may take and still count as served.
const SERVED_WITHIN: Duration = Duration::from_secs(1);

/// How long after `from` every group served again: for each group, the last call sent in
/// `[from, until)` and answered before `until` that was not served (no definite answer, or one slower than
/// [`SERVED_WITHIN`]) marks an outage that lasts until the group's next call sent after it
/// is served; a group without such a call had none. The longest, from `from`; `None` when
/// no group had a call in the window.
fn recovery(records: &[Record], from: Duration, until: Duration) -> Option<Duration> {
    let served =
        |r: &Record| r.definite() && r.op.answered.saturating_sub(r.op.called) <= SERVED_WITHIN;
    // Blocking acquires wait in a queue by design; they say nothing about outages.
    let records: Vec<&Record> = records.iter().filter(|r| !r.waits()).collect();
    let mut last_bad: BTreeMap<u32, Duration> = BTreeMap::new();
    let mut seen = false;
    for r in records
        .iter()
        .filter(|r| r.op.called >= from && r.op.called < until)
    {
        seen = true;
        // A call answered after `until` belongs to what came next (a heal, say).
        if !served(r) && r.op.answered < until {
            let t = last_bad.entry(r.group).or_insert(r.op.called);
            *t = (*t).max(r.op.called);
        }
    }
    if !seen {
        return None;
    }
    let mut worst = Duration::ZERO;
    for (group, bad) in last_bad {
        let back = records
            .iter()
            .filter(|r| r.group == group && r.op.called > bad && served(r))
            .map(|r| r.op.answered)
            .min();
        // A group that never served again is out until the end of what was recorded.
        let back =
            back.unwrap_or_else(|| records.iter().map(|r| r.op.answered).max().unwrap_or(bad));
        worst = worst.max(back.saturating_sub(from));
    }
    Some(worst)
}

/// How long after `from` every group had given a definite answer (to a call sent at any
/// time) once more: calls held over a fault (all nodes down, say) are answered only when
/// the group is back. Groups with no answer in `[from, until)` are left out.
fn first_answers(records: &[Record], from: Duration, until: Duration) -> Option<Duration> {
    let mut first: BTreeMap<u32, Duration> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.definite() && r.op.answered >= from && r.op.answered < until)
    {
        let took = r.op.answered - from;
        first
            .entry(r.group)
            .and_modify(|t| *t = (*t).min(took))
            .or_insert(took);
    }
    first.into_values().max()
}

/// True for kinds where one node fails and the others must go on serving.
fn single_node(kind: FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::Partition
            | FaultKind::Pause
            | FaultKind::Kill
            | FaultKind::DiskFull
            | FaultKind::ClockJump
    )
}

/// What the run measured, ready to print.
pub struct Figures {
    /// The table and summary lines.
    pub text: String,
    /// Targets missed (not safety violations).
    pub missed: Vec<String>,
    /// Answers outside 200, 4xx and 503, calls that got no answer at all, and answers
    /// that came after the call's deadline: each a broken promise of the API.
    pub bad_answers: Vec<String>,
    /// Heals after which the cluster took longer than 2 s to serve again (a whole-cluster
    /// restart aside): recovery must not grow with the length of a cut (issue 12), so
    /// these fail the run like violations.
    pub slow_heals: Vec<String>,
}

/// Computes the figures of `records` around `windows`.
pub fn figures(records: &[Record], windows: &[Window]) -> Figures {
    let mut text = String::new();
    let mut missed = Vec::new();
    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut bad_answers = Vec::new();
    let mut slow_heals = Vec::new();
    let mut late = 0u64;
    let mut phases: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in records {
        *by_status.entry(r.status).or_default() += 1;
        let ok = matches!(r.status, 200 | 400..=499 | 503);
        if !ok && bad_answers.len() < 20 {
            bad_answers.push(format!(
                "{} {:?} answered {} {:?} after {:?}",
                r.op.key,
                r.op.call,
                r.status,
                r.problem,
                r.op.answered.saturating_sub(r.op.called)
            ));
        }
        let took = r.op.answered.saturating_sub(r.op.called);
        if took > r.budget + LATE_SLACK {
            late += 1;
            if bad_answers.len() < 20 {
                bad_answers.push(format!(
                    "{} {:?} answered {} after {took:?}, past its deadline of {:?}",
                    r.op.key, r.op.call, r.status, r.budget
                ));
            }
        }
        let counts = phases.entry(phase(r.op.called, windows)).or_default();
        counts.0 += 1;
        counts.1 += u64::from(r.definite());
    }
    let statuses: Vec<String> = by_status
        .iter()
        .map(|(s, n)| {
            let name = if *s == 0 {
                "no answer".to_string()
            } else {
                s.to_string()
            };
            format!("{name}: {n}")
        })
        .collect();
    let _ = writeln!(
        text,
        "operations: {} ({})",
        records.len(),
        statuses.join(", ")
    );
    for (name, (all, definite)) in &phases {
        let share = if *all == 0 {
            100.0
        } else {
            *definite as f64 * 100.0 / *all as f64
        };
        let _ = writeln!(
            text,
            "availability {name}: {share:.1}% of {all} calls answered definitely (not 503)"
        );
    }
    let _ = writeln!(
        text,
        "answers later than their deadline + {LATE_SLACK:?}: {late}"
    );
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "| # | fault | node | length | every group serves again after the start | after the heal |"
    );
    let _ = writeln!(text, "|---|---|---|---|---|---|");
    let mut from_start = Vec::new();
    let mut from_heal = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let start = if single_node(w.kind) {
            recovery(records, w.start, w.healed)
        } else {
            None
        };
        let heal = if w.kind == FaultKind::PausedClient {
            None
        } else {
            let outage = recovery(records, w.healed, w.healed + AFTER_HEAL);
            let back = first_answers(records, w.healed, w.healed + AFTER_HEAL);
            outage.max(back)
        };
        let show = |d: Option<Duration>| {
            d.map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {:.1} s | {} | {} |",
            i + 1,
            w.kind,
            w.target,
            (w.healed - w.start).as_secs_f64(),
            show(start),
            show(heal)
        );
        if let Some(d) = start {
            from_start.push(d);
            if d > SERVE_AGAIN_WITHIN {
                missed.push(format!(
                    "fault {} ({}): groups served again only after {d:?}",
                    i + 1,
                    w.kind
                ));
            }
        }
        if let (Some(d), true) = (heal, w.kind != FaultKind::KillAll) {
            from_heal.push(d);
            if d > RECOVER_AFTER_HEAL_WITHIN {
                slow_heals.push(format!(
                    "fault {} ({}): recovered {d:?} after the heal",
                    i + 1,
                    w.kind
                ));
            }
        }
    }
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "recovery after a single-node fault's start: {} (target {SERVE_AGAIN_WITHIN:?}); after a heal: {} (target {RECOVER_AFTER_HEAL_WITHIN:?})",
        spread(&mut from_start),
        spread(&mut from_heal)
    );
    Figures {
        text,
        missed,
        bad_answers,
        slow_heals,
    }
}

/// `p50 X s, max Y s` of `values`.
fn spread(values: &mut [Duration]) -> String {
    if values.is_empty() {
        return "none measured".to_string();
    }
    values.sort();
    let p50 = values[values.len() / 2];
    let max = values[values.len() - 1];
    format!(
        "p50 {:.2} s, max {:.2} s",
        p50.as_secs_f64(),
        max.as_secs_f64()
    )
}
