//! What the clients did: every call with its answer, HTTP status, times and lock group,
//! for the linearizability check and the availability and recovery figures.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use testkit::linear::{Answer, Call, Operation};

use crate::client::Reply;

/// One call as a client saw it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The call and its answer, as the checker reads them.
    pub op: Operation,
    /// The HTTP status (0: no answer).
    pub status: u16,
    /// The problem type of an error answer.
    pub problem: Option<String>,
    /// The lock group of the key.
    pub group: u32,
    /// How long the gateway had to answer (its deadline for this call).
    pub budget: Duration,
}

impl Record {
    /// True for a call that may wait in a key's queue (a blocking acquire), whose time
    /// says nothing about the service's health.
    pub fn waits(&self) -> bool {
        self.budget > crate::client::COMMIT_BUDGET
    }

    /// True when the answer says what happened (anything but a 503 or no answer).
    pub fn definite(&self) -> bool {
        self.op.answer != testkit::linear::Answer::Unknown
    }
}

/// Every client's calls, timed from one origin.
pub struct Recorder {
    start: Instant,
    records: Mutex<Vec<Record>>,
}

impl Recorder {
    /// An empty record; times count from now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            records: Mutex::new(Vec::new()),
        }
    }

    /// Time since the start.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records `call` of `key` (in `group`), sent at `called`, answered now with `reply`.
    pub fn push(
        &self,
        key: &str,
        group: u32,
        call: Call,
        called: Duration,
        budget: Duration,
        reply: &Reply,
    ) {
        let record = Record {
            op: Operation {
                key: key.to_string(),
                call,
                answer: reply.answer.clone(),
                called,
                answered: self.now(),
            },
            status: reply.status,
            problem: reply.problem.clone(),
            group,
            budget,
        };
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
    }

    /// Everything recorded so far.
    pub fn records(&self) -> Vec<Record> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Writes `records` to `path`, one JSON object per line, for looking into a run
/// afterwards and for `lockplane-faults check` (see [`read_jsonl`]).
pub fn write_jsonl(records: &[Record], path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in records {
        let (call, owner, token, ttl_ms) = match &r.op.call {
            Call::Acquire { owner, ttl } => {
                ("acquire", Some(owner), None, Some(ttl.as_millis() as u64))
            }
            Call::Renew { owner, token, ttl } => (
                "renew",
                Some(owner),
                Some(*token),
                Some(ttl.as_millis() as u64),
            ),
            Call::Release { owner, token } => ("release", Some(owner), Some(*token), None),
            Call::Status => ("status", None, None, None),
        };
        let (answer, answer_owner, answer_token) = match &r.op.answer {
            Answer::Granted(t) => ("granted", None, Some(*t)),
            Answer::Held => ("held", None, None),
            Answer::WaitTimedOut => ("wait-timed-out", None, None),
            Answer::Renewed => ("renewed", None, None),
            Answer::Released => ("released", None, None),
            Answer::NotHolder => ("not-holder", None, None),
            Answer::Free => ("free", None, None),
            Answer::HeldBy { owner, token } => ("held-by", Some(owner), Some(*token)),
            Answer::Rejected => ("rejected", None, None),
            Answer::Unknown => ("unknown", None, None),
        };
        let line = serde_json::json!({
            "key": r.op.key, "group": r.group, "call": call, "owner": owner, "token": token,
            "ttl_ms": ttl_ms, "answer": answer, "answer_owner": answer_owner,
            "answer_token": answer_token, "status": r.status, "problem": r.problem,
            "budget_ms": r.budget.as_millis() as u64,
            "called_us": r.op.called.as_micros() as u64, "answered_us": r.op.answered.as_micros() as u64,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// Reads what [`write_jsonl`] wrote.
pub fn read_jsonl(path: &std::path::Path) -> anyhow::Result<Vec<Record>> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("line {}", n + 1))?;
        let s = |k: &str| v[k].as_str().map(ToString::to_string);
        let u = |k: &str| v[k].as_u64();
        let bad = || anyhow::anyhow!("line {}: not a record: {line}", n + 1);
        let owner = s("owner").unwrap_or_default();
        let ms = |k: &str| Duration::from_millis(u(k).unwrap_or(0));
        let call = match s("call").as_deref() {
            Some("acquire") => Call::Acquire {
                owner,
                ttl: ms("ttl_ms"),
            },
            Some("renew") => Call::Renew {
                owner,
                token: u("token").ok_or_else(bad)?,
                ttl: ms("ttl_ms"),
            },
            Some("release") => Call::Release {
                owner,
                token: u("token").ok_or_else(bad)?,
            },
            Some("status") => Call::Status,
            _ => return Err(bad()),
        };
        let answer = match s("answer").as_deref() {
            Some("granted") => Answer::Granted(u("answer_token").ok_or_else(bad)?),
            Some("held") => Answer::Held,
            Some("wait-timed-out") => Answer::WaitTimedOut,
            Some("renewed") => Answer::Renewed,
            Some("released") => Answer::Released,
            Some("not-holder") => Answer::NotHolder,
            Some("free") => Answer::Free,
            Some("held-by") => Answer::HeldBy {
                owner: s("answer_owner").ok_or_else(bad)?,
                token: u("answer_token").ok_or_else(bad)?,
            },
            Some("rejected") => Answer::Rejected,
            Some("unknown") => Answer::Unknown,
            _ => return Err(bad()),
        };
        records.push(Record {
            op: Operation {
                key: s("key").ok_or_else(bad)?,
                call,
                answer,
                called: Duration::from_micros(u("called_us").unwrap_or(0)),
                answered: Duration::from_micros(u("answered_us").unwrap_or(0)),
            },
            status: u("status").and_then(|s| u16::try_from(s).ok()).unwrap_or(0),
            problem: s("problem"),
            group: u("group").and_then(|g| u32::try_from(g).ok()).unwrap_or(0),
            budget: ms("budget_ms"),
        });
    }
    Ok(records)
}
