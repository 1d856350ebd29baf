//! Recording what concurrent lock clients did, and checking it against the lock contract.
//!
//! Clients record each operation when they send it (`invoke_*`) and when its answer arrives
//! ([`History::complete`]). An answer that never came (timeout, unreachable) is
//! [`Outcome::Unknown`]: the operation may or may not have happened.
//!
//! [`History::check`] then looks for what must never happen, judged only by certain facts:
//! - **fencing**: a grant acknowledged before another was invoked has the lower token, and
//!   no two acknowledged grants of a key share a token;
//! - **mutual exclusion**: grant B (token above A's) acknowledged before A could have ended,
//!   i.e. before A's release was sent and before A's lease could have run out (A's send
//!   time + TTL: the server counts from later, so this is the earliest end);
//! - **durability**: at the end, a key whose last acknowledged grant was neither released
//!   nor past its TTL must still be held with that token, and a key whose release was
//!   acknowledged must not be held with the released token.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Identifies one recorded operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpId(usize);

/// How an operation ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The lock was granted with this fencing token.
    Granted(u64),
    /// The release was acknowledged.
    Released,
    /// The service refused (held by someone else, not the holder): nothing changed.
    Refused,
    /// No answer: the operation may or may not have taken effect.
    Unknown,
}

#[derive(Debug, Clone)]
enum Kind {
    Acquire { ttl: Duration },
    Release { token: u64 },
}

#[derive(Debug, Clone)]
struct Op {
    kind: Kind,
    key: String,
    owner: String,
    invoked: Duration,
    done: Option<(Duration, Outcome)>,
}

/// A thread-safe log of lock operations with their times.
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts of what a checked history contained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Acknowledged grants.
    pub grants: usize,
    /// Acknowledged releases.
    pub releases: usize,
    /// Refused operations.
    pub refused: usize,
    /// Operations whose outcome is unknown.
    pub unknown: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} grants, {} releases, {} refused, {} unknown",
            self.grants, self.releases, self.refused, self.unknown
        )
    }
}

impl History {
    /// An empty history; times are measured from now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Time since the history started.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn push(&self, op: Op) -> OpId {
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        ops.push(op);
        OpId(ops.len() - 1)
    }

    /// Records that `owner` is sending an acquire of `key` with a lease of `ttl`.
    pub fn invoke_acquire(&self, key: &str, owner: &str, ttl: Duration) -> OpId {
        let invoked = self.now();
        self.push(Op {
            kind: Kind::Acquire { ttl },
            key: key.into(),
            owner: owner.into(),
            invoked,
            done: None,
        })
    }

    /// Records that `owner` is sending a release of `key` for `token`.
    pub fn invoke_release(&self, key: &str, owner: &str, token: u64) -> OpId {
        let invoked = self.now();
        self.push(Op {
            kind: Kind::Release { token },
            key: key.into(),
            owner: owner.into(),
            invoked,
            done: None,
        })
    }

    /// Records how operation `id` ended.
    pub fn complete(&self, id: OpId, outcome: Outcome) {
        let at = self.now();
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(op) = ops.get_mut(id.0) {
            op.done = Some((at, outcome));
        }
    }

    /// Checks the history, given what each key's holder token was (`None`: free) when read
    /// at `read_at` (see [`History::now`]) after every client stopped.
    pub fn check(
        &self,
        final_holders: &BTreeMap<String, Option<u64>>,
        read_at: Duration,
    ) -> Result<Summary, Vec<String>> {
        let ops = self
            .ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut summary = Summary::default();
        let mut grants: BTreeMap<&str, Vec<Grant<'_>>> = BTreeMap::new();
        for op in &ops {
            match op.done.map(|(_, outcome)| outcome) {
                Some(Outcome::Granted(_)) => summary.grants += 1,
                Some(Outcome::Released) => summary.releases += 1,
                Some(Outcome::Refused) => summary.refused += 1,
                Some(Outcome::Unknown) | None => summary.unknown += 1,
            }
            if let (Kind::Acquire { ttl }, Some((acked, Outcome::Granted(token)))) =
                (&op.kind, op.done)
            {
                grants.entry(&op.key).or_default().push(Grant {
                    owner: &op.owner,
                    token,
                    invoked: op.invoked,
                    acked,
                    lease_end: op.invoked + *ttl,
                    release_sent: None,
                    release_acked: false,
                });
            }
        }
        for op in &ops {
            if let Kind::Release { token } = op.kind {
                let Some(list) = grants.get_mut(op.key.as_str()) else {
                    continue;
                };
                if let Some(g) = list
                    .iter_mut()
                    .find(|g| g.token == token && g.owner == op.owner)
                {
                    g.release_sent = Some(
                        g.release_sent
                            .map_or(op.invoked, |t: Duration| t.min(op.invoked)),
                    );
                    g.release_acked |= matches!(op.done, Some((_, Outcome::Released)));
                }
            }
        }
        let mut violations = Vec::new();
        for (key, list) in &mut grants {
            list.sort_by_key(|g| g.token);
            check_key(key, list, &mut violations);
            check_final(
                key,
                list,
                final_holders.get(*key).copied().flatten(),
                read_at,
                &mut violations,
            );
        }
        if violations.is_empty() {
            Ok(summary)
        } else {
            Err(violations)
        }
    }
}

#[derive(Debug)]
struct Grant<'a> {
    owner: &'a str,
    token: u64,
    invoked: Duration,
    acked: Duration,
    lease_end: Duration,
    release_sent: Option<Duration>,
    release_acked: bool,
}

impl Grant<'_> {
    /// The earliest moment this grant can have ended.
    fn earliest_end(&self) -> Duration {
        self.release_sent
            .map_or(self.lease_end, |r| r.min(self.lease_end))
    }
}

fn check_key(key: &str, grants: &[Grant<'_>], violations: &mut Vec<String>) {
    for pair in grants.windows(2) {
        if pair[0].token == pair[1].token {
            violations.push(format!(
                "fencing: {key} granted twice with token {} ({} and {})",
                pair[0].token, pair[0].owner, pair[1].owner
            ));
        }
    }
    // `grants` is sorted by token, so for every pair below `a.token < b.token`: b was
    // granted after a.
    for (i, a) in grants.iter().enumerate() {
        for b in &grants[i + 1..] {
            if b.token > a.token && b.acked < a.earliest_end() {
                violations.push(format!(
                    "mutual exclusion: {key} granted to {} (token {}) at {:?} while {}'s grant (token {}) could last until {:?}",
                    b.owner, b.token, b.acked, a.owner, a.token, a.earliest_end()
                ));
            }
            if a.invoked > b.acked {
                violations.push(format!(
                    "fencing: {key} token {} (granted to {} after {:?}) is below token {} acknowledged earlier",
                    a.token, a.owner, a.invoked, b.token
                ));
            }
        }
    }
}

fn check_final(
    key: &str,
    grants: &[Grant<'_>],
    holder: Option<u64>,
    read_at: Duration,
    violations: &mut Vec<String>,
) {
    let Some(last) = grants.last() else { return };
    if last.release_sent.is_none() && read_at < last.lease_end && holder != Some(last.token) {
        violations.push(format!(
            "durability: {key} was granted to {} with token {} (never released, lease not over) but is held by {holder:?}",
            last.owner, last.token
        ));
    }
    for g in grants {
        if g.release_acked && holder == Some(g.token) {
            violations.push(format!(
                "durability: {key}'s release of token {} was acknowledged but the key is still held with it",
                g.token
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a history from `(key, owner, kind, invoked ms, done ms, outcome)` rows.
    fn history(rows: &[(&str, &str, Kind, u64, u64, Outcome)]) -> History {
        let h = History::new();
        {
            let mut ops = h.ops.lock().unwrap();
            for (key, owner, kind, invoked, done, outcome) in rows {
                ops.push(Op {
                    kind: kind.clone(),
                    key: (*key).into(),
                    owner: (*owner).into(),
                    invoked: Duration::from_millis(*invoked),
                    done: Some((Duration::from_millis(*done), *outcome)),
                });
            }
        }
        h
    }

    fn acquire(ttl_ms: u64) -> Kind {
        Kind::Acquire {
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    fn holders(rows: &[(&str, Option<u64>)]) -> BTreeMap<String, Option<u64>> {
        rows.iter().map(|(k, t)| ((*k).to_string(), *t)).collect()
    }

    #[test]
    fn a_clean_handover_passes() {
        let h = history(&[
            ("k", "a", acquire(1_000), 0, 5, Outcome::Granted(1)),
            (
                "k",
                "a",
                Kind::Release { token: 1 },
                10,
                15,
                Outcome::Released,
            ),
            ("k", "b", acquire(1_000), 12, 20, Outcome::Granted(2)),
        ]);
        let summary = h
            .check(&holders(&[("k", Some(2))]), Duration::from_millis(30))
            .unwrap();
        assert_eq!((summary.grants, summary.releases), (2, 1));
    }

    #[test]
    fn a_grant_while_the_previous_may_still_hold_is_caught() {
        let h = history(&[
            ("k", "a", acquire(1_000), 0, 5, Outcome::Granted(1)),
            ("k", "b", acquire(1_000), 10, 20, Outcome::Granted(2)),
        ]);
        let errors = h
            .check(&holders(&[("k", Some(2))]), Duration::from_millis(30))
            .unwrap_err();
        assert!(
            errors.iter().any(|e| e.starts_with("mutual exclusion")),
            "{errors:?}"
        );
        // After a's lease could have ended, the same grant is fine.
        let h = history(&[
            ("k", "a", acquire(100), 0, 5, Outcome::Granted(1)),
            ("k", "b", acquire(1_000), 150, 160, Outcome::Granted(2)),
        ]);
        assert!(
            h.check(&holders(&[("k", Some(2))]), Duration::from_millis(200))
                .is_ok()
        );
    }

    #[test]
    fn tokens_going_backwards_or_repeating_are_caught() {
        let h = history(&[
            ("k", "a", acquire(10), 0, 5, Outcome::Granted(7)),
            ("k", "b", acquire(10), 50, 60, Outcome::Granted(3)),
        ]);
        let errors = h
            .check(&holders(&[("k", Some(3))]), Duration::from_millis(70))
            .unwrap_err();
        assert!(
            errors.iter().any(|e| e.starts_with("fencing")),
            "{errors:?}"
        );
        let h = history(&[
            ("k", "a", acquire(10), 0, 5, Outcome::Granted(7)),
            ("k", "b", acquire(10), 50, 60, Outcome::Granted(7)),
        ]);
        let errors = h
            .check(&holders(&[("k", Some(7))]), Duration::from_millis(70))
            .unwrap_err();
        assert!(errors.iter().any(|e| e.contains("twice")), "{errors:?}");
    }

    #[test]
    fn a_lost_grant_or_a_lost_release_is_caught() {
        let h = history(&[("k", "a", acquire(10_000), 0, 5, Outcome::Granted(1))]);
        let errors = h
            .check(&holders(&[("k", None)]), Duration::from_millis(20))
            .unwrap_err();
        assert!(errors[0].starts_with("durability"), "{errors:?}");
        let h = history(&[
            ("k", "a", acquire(10_000), 0, 5, Outcome::Granted(1)),
            (
                "k",
                "a",
                Kind::Release { token: 1 },
                6,
                8,
                Outcome::Released,
            ),
        ]);
        let errors = h
            .check(&holders(&[("k", Some(1))]), Duration::from_millis(20))
            .unwrap_err();
        assert!(errors[0].contains("release"), "{errors:?}");
    }

    #[test]
    fn unknown_outcomes_claim_nothing() {
        let h = history(&[
            ("k", "a", acquire(10_000), 0, 5, Outcome::Unknown),
            ("k", "b", acquire(10_000), 10, 20, Outcome::Granted(2)),
        ]);
        let summary = h
            .check(&holders(&[("k", Some(2))]), Duration::from_millis(30))
            .unwrap();
        assert_eq!(summary.unknown, 1);
    }
}
