//! A linearizability checker for lock histories: acquire, renew, release and status over
//! many keys, each key checked on its own (locks of different keys share nothing), by the
//! Wing–Gong search with Lowe's memoisation, as Porcupine and Knossos do.
//!
//! A history is linearizable when every operation can be given one instant between its
//! call and its answer such that, taken in that order, the answers are those of one lock:
//! a grant only of a free key and with a token above every earlier one (or, to the holder
//! asking again, its own token with a new lease), `held` only while
//! someone holds it, a release or renewal only by the holder (with its token), a status
//! read showing the holder of that instant.
//!
//! Leases make the lock depend on time: a holder may lose the key once its lease has run
//! out, which the checker allows before an operation only when every operation not yet
//! placed (that one included) answered after the lease's earliest end (the call that took
//! or renewed it, plus its TTL; the server counts from later, never from earlier). A lease that has not run out never
//! ends by itself, so an early expiry is caught like any other wrong answer.
//!
//! An operation without an answer (a timeout, a 503) may have happened at any instant
//! after its call, or never. An unknown acquire that did happen holds the key with a token
//! no one saw yet; the first operation that names a token for it settles which.
//!
//! The search is exponential in the worst case. [`check`] gives up on a key after a
//! budget of search steps and says so ([`Verdict::Undecided`]) rather than guess.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Take the key for `owner`, with a lease of `ttl` (blocking or not).
    Acquire {
        /// Who asks.
        owner: String,
        /// The lease asked for.
        ttl: Duration,
    },
    /// Extend the lease of `owner`'s grant `token` to `ttl` from now.
    Renew {
        /// Who asks.
        owner: String,
        /// The grant's fencing token.
        token: u64,
        /// The new lease.
        ttl: Duration,
    },
    /// Give up `owner`'s grant `token`.
    Release {
        /// Who asks.
        owner: String,
        /// The grant's fencing token.
        token: u64,
    },
    /// Read who holds the key (a linearizable read).
    Status,
}

/// What the service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The acquire was granted with this fencing token.
    Granted(u64),
    /// The acquire was refused: someone holds the key (409).
    Held,
    /// A blocking acquire's wait ended without the lock (408): nothing changed.
    WaitTimedOut,
    /// The renewal was applied.
    Renewed,
    /// The release was applied.
    Released,
    /// The renewal or release was refused: the caller does not hold the key with that
    /// token (409).
    NotHolder,
    /// The status read found the key free.
    Free,
    /// The status read found the key held by `owner` with `token`.
    HeldBy {
        /// The holder.
        owner: String,
        /// Its fencing token.
        token: u64,
    },
    /// The call was refused before it reached the lock (bad request, rate limit): nothing
    /// changed, whatever the lock's state.
    Rejected,
    /// No answer came (timeout, unavailable): the operation may or may not have happened.
    Unknown,
}

/// One operation of a history: its key, call, answer and when it was called and answered
/// (any common origin; an unknown answer's time is ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The lock key.
    pub key: String,
    /// What was asked.
    pub call: Call,
    /// What came back.
    pub answer: Answer,
    /// When the call was sent.
    pub called: Duration,
    /// When the answer arrived.
    pub answered: Duration,
}

/// What the checker concluded about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the key's operations explains every answer.
    Linearizable,
    /// No order does: the answers contradict one lock.
    Violation(String),
    /// The search ran out of its budget before deciding.
    Undecided,
}

/// What [`check`] found across all keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Keys checked and found linearizable.
    pub linearizable: usize,
    /// Keys whose operations no order explains, with why.
    pub violations: Vec<String>,
    /// Keys the search gave up on.
    pub undecided: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} keys linearizable, {} violations, {} undecided",
            self.linearizable,
            self.violations.len(),
            self.undecided.len()
        )
    }
}

/// Search steps [`check`] spends on one key before it calls the key undecided.
pub const DEFAULT_BUDGET: u64 = 2_000_000;

/// Checks every key's operations of `history` (in any order) for linearizability.
pub fn check(history: &[Operation], budget: u64) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut report = Report::default();
    for (key, ops) in by_key {
        match check_key(&ops, budget) {
            Verdict::Linearizable => report.linearizable += 1,
            Verdict::Violation(why) => report.violations.push(format!("{key}: {why}")),
            Verdict::Undecided => report.undecided.push(key.to_string()),
        }
    }
    report
}

/// The holder of a key in one possible state of the lock.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Holder {
    owner: String,
    /// `None`: taken by an acquire whose answer was lost, with a token not yet seen.
    token: Option<u64>,
    /// The earliest moment the lease can run out.
    lease_end: Duration,
}

/// One possible state of a key's lock.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct State {
    holder: Option<Holder>,
    /// Every later grant's token is above this.
    floor: u64,
}

/// The sorted, deduplicated states the lock may be in.
type States = Vec<State>;

impl State {
    /// This state, and the state with the holder gone if its lease may have run out by
    /// `at`.
    fn with_expiry(&self, at: Option<Duration>) -> impl Iterator<Item = State> {
        let expired = match (&self.holder, at) {
            (Some(h), Some(at)) if h.lease_end <= at => Some(State {
                holder: None,
                floor: self.floor,
            }),
            (Some(_), None) => Some(State {
                holder: None,
                floor: self.floor,
            }),
            _ => None,
        };
        std::iter::once(self.clone()).chain(expired)
    }

    /// The state after `owner`'s grant `token` is found to be the holder's, if it is.
    fn holder_is(&self, owner: &str, token: u64) -> Option<State> {
        let h = self.holder.as_ref()?;
        if h.owner != owner {
            return None;
        }
        match h.token {
            Some(t) if t == token => Some(self.clone()),
            Some(_) => None,
            None if token > self.floor => {
                let mut bound = self.clone();
                bound.floor = token;
                if let Some(h) = bound.holder.as_mut() {
                    h.token = Some(token);
                }
                Some(bound)
            }
            None => None,
        }
    }

    /// True when the holder may be someone other than `owner`'s grant `token` (or no one).
    fn holder_may_differ(&self, owner: &str, token: u64) -> bool {
        match &self.holder {
            None => true,
            // A holder whose token is not seen yet may hold another token than this one.
            Some(h) => h.owner != owner || h.token != Some(token),
        }
    }
}

/// The states `op` may leave behind when applied in one of `states`; empty when its
/// answer is impossible in all of them. `latest` bounds the instant `op` can be placed at:
/// before every operation still to be placed, so no later than the earliest answer among
/// them (`None`: only unknown answers remain, and any later instant will do). A holder
/// may have lost the key before `op` only if its lease could have run out by then.
fn step(states: &[State], op: &Operation, latest: Option<Duration>) -> States {
    let at = latest;
    let mut next = Vec::new();
    for state in states.iter().flat_map(|s| s.with_expiry(at)) {
        apply(&state, op, &mut next);
    }
    next.sort();
    next.dedup();
    next
}

fn apply(s: &State, op: &Operation, next: &mut Vec<State>) {
    let grant = |owner: &str, token: Option<u64>, ttl: Duration| State {
        holder: Some(Holder {
            owner: owner.to_string(),
            token,
            lease_end: op.called + ttl,
        }),
        floor: token.unwrap_or(s.floor),
    };
    match (&op.call, &op.answer) {
        (_, Answer::Rejected) => next.push(s.clone()),
        (Call::Acquire { owner, ttl }, Answer::Granted(token)) => {
            if s.holder.is_none() && *token > s.floor {
                next.push(grant(owner, Some(*token), *ttl));
            }
            // The holder asking again is granted again, with its token and a new lease.
            next.extend(
                s.holder_is(owner, *token)
                    .map(|r| extended(r, op.called + *ttl)),
            );
        }
        (Call::Acquire { .. }, Answer::Held) if s.holder.is_some() => next.push(s.clone()),
        (Call::Acquire { .. }, Answer::WaitTimedOut) => next.push(s.clone()),
        (Call::Acquire { owner, ttl }, Answer::Unknown) => {
            next.push(s.clone());
            if s.holder.is_none() {
                next.push(grant(owner, None, *ttl));
            }
            if s.holder.as_ref().is_some_and(|h| h.owner == *owner) {
                next.push(extended(s.clone(), op.called + *ttl));
            }
        }
        (Call::Renew { owner, token, ttl }, answer) => {
            let renewed = s
                .holder_is(owner, *token)
                .map(|r| extended(r, op.called + *ttl));
            match answer {
                Answer::Renewed => next.extend(renewed),
                Answer::NotHolder if s.holder_may_differ(owner, *token) => next.push(s.clone()),
                Answer::Unknown => {
                    next.push(s.clone());
                    next.extend(renewed);
                }
                _ => {}
            }
        }
        (Call::Release { owner, token }, answer) => {
            let released = s.holder_is(owner, *token).map(|r| State {
                holder: None,
                floor: r.floor,
            });
            match answer {
                Answer::Released => next.extend(released),
                Answer::NotHolder if s.holder_may_differ(owner, *token) => next.push(s.clone()),
                Answer::Unknown => {
                    next.push(s.clone());
                    next.extend(released);
                }
                _ => {}
            }
        }
        (Call::Status, Answer::Free) if s.holder.is_none() => next.push(s.clone()),
        (Call::Status, Answer::HeldBy { owner, token }) => next.extend(s.holder_is(owner, *token)),
        (Call::Status, Answer::Unknown) => next.push(s.clone()),
        // An answer that this call cannot get: no state explains it.
        _ => {}
    }
}

/// `state` with its holder's lease ending no earlier than `lease_end` (a renewal, or the
/// holder acquiring again: the new lease runs from the server's stamp, which is no earlier
/// than the call).
fn extended(mut state: State, lease_end: Duration) -> State {
    if let Some(h) = state.holder.as_mut() {
        h.lease_end = lease_end;
    }
    state
}

/// One call or answer in the time-ordered list the search walks.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    /// The other event of the same operation.
    pair: usize,
    prev: usize,
    next: usize,
}

/// Wing–Gong search with Lowe's cache over one key's operations.
fn check_key(ops: &[&Operation], budget: u64) -> Verdict {
    const HEAD: usize = 0;
    // Events 1..: calls and answers by time; at equal times calls first (the operations
    // overlap), and unknown answers last of all (they may land at any later instant).
    let mut order: Vec<(Duration, bool, u8, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.called, false, 0, i));
        if op.answer == Answer::Unknown {
            order.push((Duration::MAX, true, 1, i));
        } else {
            order.push((op.answered.max(op.called), true, 1, i));
        }
    }
    order.sort();
    let mut events = vec![Event {
        op: usize::MAX,
        is_call: false,
        pair: 0,
        prev: 0,
        next: 1,
    }];
    let mut call_at = vec![0; ops.len()];
    for (n, (_, is_return, _, op)) in order.iter().enumerate() {
        let index = n + 1;
        events.push(Event {
            op: *op,
            is_call: !is_return,
            pair: 0,
            prev: index - 1,
            next: if n + 1 == order.len() {
                usize::MAX
            } else {
                index + 1
            },
        });
        if *is_return {
            let call = call_at[*op];
            events[call].pair = index;
            events[index].pair = call;
        } else {
            call_at[*op] = index;
        }
    }
    if events.len() == 1 {
        events[HEAD].next = usize::MAX;
    }

    let mut states: States = vec![State {
        holder: None,
        floor: 0,
    }];
    let mut linearized = vec![0u64; ops.len().div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, States)> = HashSet::new();
    let mut stack: Vec<(usize, States)> = Vec::new();
    let mut cursor = events[HEAD].next;
    let mut steps = 0u64;
    while events[HEAD].next != usize::MAX {
        steps += 1;
        if steps > budget {
            return Verdict::Undecided;
        }
        if cursor == usize::MAX {
            // Only unknown answers are left past the cursor: they need not happen.
            break;
        }
        let event = events[cursor];
        if event.is_call {
            let next_states = step(&states, ops[event.op], earliest_answer(&events, ops));
            if !next_states.is_empty() {
                let mut bits = linearized.clone();
                bits[event.op / 64] |= 1 << (event.op % 64);
                if seen.insert((bits.clone(), next_states.clone())) {
                    stack.push((cursor, std::mem::replace(&mut states, next_states)));
                    linearized = bits;
                    lift(&mut events, cursor);
                    cursor = events[HEAD].next;
                    continue;
                }
            }
            cursor = event.next;
        } else if ops[event.op].answer == Answer::Unknown {
            // An operation that never answered need not take effect: skip past it.
            cursor = event.next;
        } else {
            let Some((call, before)) = stack.pop() else {
                return Verdict::Violation(explain(ops[event.op]));
            };
            states = before;
            let op = events[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            unlift(&mut events, call);
            cursor = events[call].next;
        }
    }
    Verdict::Linearizable
}

/// The earliest known answer among the operations still in the list: the first answer
/// event in it (calls come before, and unknown answers sort last of all); `None` when
/// only unknown answers remain.
fn earliest_answer(events: &[Event], ops: &[&Operation]) -> Option<Duration> {
    let mut at = events[0].next;
    while at != usize::MAX {
        let event = events[at];
        if !event.is_call {
            let op = ops[event.op];
            return (op.answer != Answer::Unknown).then_some(op.answered);
        }
        at = event.next;
    }
    None
}

/// Takes an operation's call and answer out of the list.
fn lift(events: &mut [Event], call: usize) {
    for at in [call, events[call].pair] {
        let Event { prev, next, .. } = events[at];
        events[prev].next = next;
        if next != usize::MAX {
            events[next].prev = prev;
        }
    }
}

/// Puts back what [`lift`] took out (in the reverse order).
fn unlift(events: &mut [Event], call: usize) {
    for at in [events[call].pair, call] {
        let Event { prev, next, .. } = events[at];
        events[prev].next = at;
        if next != usize::MAX {
            events[next].prev = at;
        }
    }
}

/// Why the operation whose answer ended the search cannot be explained.
fn explain(op: &Operation) -> String {
    format!(
        "no order of the operations explains {:?} answered {:?} (called at {:?}, answered at {:?})",
        op.call, op.answer, op.called, op.answered
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn op(call: Call, answer: Answer, called: u64, answered: u64) -> Operation {
        Operation {
            key: "k".into(),
            call,
            answer,
            called: ms(called),
            answered: ms(answered),
        }
    }

    fn acquire(owner: &str, ttl: u64) -> Call {
        Call::Acquire {
            owner: owner.into(),
            ttl: ms(ttl),
        }
    }

    fn release(owner: &str, token: u64) -> Call {
        Call::Release {
            owner: owner.into(),
            token,
        }
    }

    fn renew(owner: &str, token: u64, ttl: u64) -> Call {
        Call::Renew {
            owner: owner.into(),
            token,
            ttl: ms(ttl),
        }
    }

    fn held_by(owner: &str, token: u64) -> Answer {
        Answer::HeldBy {
            owner: owner.into(),
            token,
        }
    }

    fn verdict(history: &[Operation]) -> Report {
        check(history, DEFAULT_BUDGET)
    }

    fn ok(history: &[Operation]) {
        let report = verdict(history);
        assert!(
            report.violations.is_empty() && report.undecided.is_empty(),
            "{report:?}"
        );
    }

    fn caught(history: &[Operation]) {
        let report = verdict(history);
        assert_eq!(report.violations.len(), 1, "{report:?}");
    }

    /// A handover with overlapping calls, a refusal, a renewal and status reads.
    fn clean() -> Vec<Operation> {
        vec![
            op(acquire("a", 10_000), Answer::Granted(1), 0, 10),
            op(acquire("b", 10_000), Answer::Held, 5, 12),
            op(renew("a", 1, 10_000), Answer::Renewed, 15, 20),
            op(Call::Status, held_by("a", 1), 16, 18),
            op(release("a", 1), Answer::Released, 30, 40),
            // Concurrent with the release: either order is fine.
            op(Call::Status, held_by("a", 1), 31, 39),
            op(acquire("b", 10_000), Answer::Granted(5), 35, 50),
            op(Call::Status, held_by("b", 5), 60, 61),
            op(release("a", 1), Answer::NotHolder, 62, 63),
        ]
    }

    #[test]
    fn a_clean_history_is_linearizable() {
        ok(&clean());
    }

    #[test]
    fn two_holders_at_once_are_caught() {
        let mut h = clean();
        // b granted while a still held it, a's release came later.
        h[6] = op(acquire("b", 10_000), Answer::Granted(5), 21, 25);
        caught(&h);
    }

    #[test]
    fn a_stale_read_is_caught() {
        let mut h = clean();
        // a's release was acknowledged at 40; a read after it still shows a.
        h.push(op(Call::Status, held_by("a", 1), 45, 46));
        caught(&h);
    }

    #[test]
    fn a_lost_acknowledged_grant_is_caught() {
        let h = vec![
            op(acquire("a", 10_000), Answer::Granted(1), 0, 10),
            op(Call::Status, Answer::Free, 20, 21),
        ];
        caught(&h);
        // Once the lease may have run out, a free key is fine.
        let h = vec![
            op(acquire("a", 100), Answer::Granted(1), 0, 10),
            op(Call::Status, Answer::Free, 120, 121),
        ];
        ok(&h);
    }

    #[test]
    fn a_lost_acknowledged_release_is_caught() {
        let h = vec![
            op(acquire("a", 10_000), Answer::Granted(1), 0, 10),
            op(release("a", 1), Answer::Released, 20, 30),
            op(Call::Status, held_by("a", 1), 40, 41),
        ];
        caught(&h);
    }

    #[test]
    fn a_408_that_was_not_final_is_caught() {
        // b's wait was answered 408, yet b later shows up as the holder with a token no
        // acknowledged grant gave out.
        let h = vec![
            op(acquire("a", 10_000), Answer::Granted(1), 0, 10),
            op(acquire("b", 10_000), Answer::WaitTimedOut, 5, 1_000),
            op(release("a", 1), Answer::Released, 1_100, 1_110),
            op(Call::Status, held_by("b", 2), 1_200, 1_201),
        ];
        caught(&h);
        // Had the answer been unknown (503), the same history is fine.
        let mut h = h;
        h[1].answer = Answer::Unknown;
        ok(&h);
    }

    #[test]
    fn tokens_that_go_backwards_are_caught() {
        let h = vec![
            op(acquire("a", 10_000), Answer::Granted(9), 0, 10),
            op(release("a", 9), Answer::Released, 20, 30),
            op(acquire("b", 10_000), Answer::Granted(4), 40, 50),
        ];
        caught(&h);
    }

    #[test]
    fn an_early_expiry_is_caught_and_a_due_one_is_not() {
        let early = vec![
            op(acquire("a", 1_000), Answer::Granted(1), 0, 10),
            op(acquire("b", 1_000), Answer::Granted(2), 500, 510),
        ];
        caught(&early);
        let due = vec![
            op(acquire("a", 1_000), Answer::Granted(1), 0, 10),
            op(acquire("b", 1_000), Answer::Granted(2), 900, 1_010),
        ];
        ok(&due);
        // A renewal moves the earliest end.
        let renewed = vec![
            op(acquire("a", 1_000), Answer::Granted(1), 0, 10),
            op(renew("a", 1, 1_000), Answer::Renewed, 600, 610),
            op(acquire("b", 1_000), Answer::Granted(2), 1_100, 1_200),
        ];
        caught(&renewed);
    }

    #[test]
    fn an_unknown_acquire_may_have_happened_with_a_token_seen_later() {
        let h = vec![
            op(acquire("a", 10_000), Answer::Granted(1), 0, 10),
            op(release("a", 1), Answer::Released, 20, 30),
            op(acquire("b", 10_000), Answer::Unknown, 40, 0),
            op(acquire("c", 10_000), Answer::Held, 60, 70),
            op(Call::Status, held_by("b", 3), 80, 81),
            op(release("b", 3), Answer::Released, 90, 95),
            op(acquire("c", 10_000), Answer::Granted(4), 100, 110),
        ];
        ok(&h);
        // ... but its token must still be above every earlier one.
        let mut h = h;
        h[4].answer = held_by("b", 1);
        h[5].call = release("b", 1);
        caught(&h);
    }

    #[test]
    fn the_holder_acquiring_again_gets_its_own_token_and_no_one_else_does() {
        let h = vec![
            op(acquire("a", 10_000), Answer::Granted(3), 0, 10),
            op(release("a", 3), Answer::Unknown, 20, 0),
            op(acquire("a", 10_000), Answer::Granted(3), 30, 40),
            op(release("a", 3), Answer::Released, 50, 60),
        ];
        ok(&h);
        let mut h = h;
        h[2].call = acquire("b", 10_000);
        caught(&h);
    }

    #[test]
    fn a_grant_cannot_be_explained_by_an_expiry_placed_after_a_later_answer() {
        // An unknown read in between does not let a's 10 s lease end before b's grant.
        let h = vec![
            op(acquire("a", 10_000), Answer::Granted(1), 0, 10),
            op(Call::Status, Answer::Unknown, 15, 0),
            op(acquire("b", 10_000), Answer::Granted(2), 20, 25),
        ];
        caught(&h);
        // A long blocking acquire answered late: its grant must come after the read that
        // saw b holding, so before a's lease could end.
        let h = vec![
            op(acquire("a", 1_000), Answer::Granted(1), 0, 10),
            op(acquire("b", 1_000), Answer::Granted(2), 500, 2_000),
            op(Call::Status, held_by("b", 2), 600, 700),
        ];
        caught(&h);
        // The same read after a's lease could have ended is fine.
        let h = vec![
            op(acquire("a", 1_000), Answer::Granted(1), 0, 10),
            op(acquire("b", 1_000), Answer::Granted(2), 500, 2_000),
            op(Call::Status, held_by("b", 2), 1_100, 1_200),
        ];
        ok(&h);
    }

    #[test]
    fn keys_are_checked_apart() {
        let mut h = clean();
        let mut other = clean();
        for o in &mut other {
            o.key = "other".into();
        }
        h.extend(other);
        let report = verdict(&h);
        assert_eq!(report.linearizable, 2, "{report:?}");
    }

    #[test]
    fn a_search_that_runs_out_of_budget_says_undecided() {
        let report = check(&clean(), 3);
        assert_eq!(report.undecided, vec!["k".to_string()]);
    }
}
