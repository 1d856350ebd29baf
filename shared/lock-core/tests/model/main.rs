//! Property tests: random command sequences and clock moves (including leader changes with
//! clocks behind or ahead) applied to the real machine, to a copy restored from snapshots at
//! random points, and to the naive reference model. Checked at every step:
//! - the real machine answers and reports exactly what the model predicts;
//! - the snapshot-restored copy answers and emits exactly what the original does;
//! - mutual exclusion, strictly increasing tokens per key, FIFO grant order, no premature
//!   expiry, and no grant to an ended session, straight from the emitted effects.
//!
//! `LOCKPLANE_MODEL_CASES` sets the number of cases (default 10,000).
#![allow(missing_docs, clippy::unwrap_used)]

mod invariants;
mod reference;

use lock_core::{
    Acquire, Command, Effect, FencingToken, Limits, LockKey, LockMachine, Proposal, SessionId,
    TenantId, WaitId,
};
use proptest::prelude::*;

use invariants::Invariants;
use reference::{Event, Model};

const KEYS: [(u64, &str); 5] = [(1, "a"), (1, "b"), (1, "c"), (2, "a"), (1, "")];
const OWNERS: [&str; 4] = ["o1", "o2", "o3", ""];

fn limits() -> Limits {
    Limits {
        max_key_bytes: 8,
        max_owner_bytes: 8,
        max_request_id_bytes: 8,
        min_ttl_ms: 1,
        max_ttl_ms: 2_000,
        max_wait_ms: 2_000,
        max_lock_delay_ms: 500,
        max_waiters_per_key: 3,
        max_locks_per_session: 3,
        dedup_window_ms: 1_500,
        dedup_max_entries: 3,
    }
}

fn key(i: usize) -> LockKey {
    let (tenant, name) = KEYS[i];
    LockKey::new(TenantId(tenant), name)
}

/// Which token a renew or release presents.
#[derive(Clone, Debug)]
enum TokenPick {
    Current,
    Previous,
    Arbitrary(u64),
}

#[derive(Clone, Debug)]
enum Op {
    Acquire {
        key: usize,
        owner: usize,
        ttl: u64,
        wait: u64,
        session: Option<u64>,
        request: Option<u8>,
        delay: u64,
        quota: Option<u64>,
    },
    Renew {
        key: usize,
        owner: usize,
        token: TokenPick,
        ttl: u64,
    },
    Release {
        key: usize,
        owner: usize,
        token: TokenPick,
    },
    Cancel {
        key: usize,
        nth: usize,
    },
    /// The caller of the `nth` wait goes away, knowing its deadline as it is, or as it was
    /// `earlier` ms before a renewal.
    Abandon {
        key: usize,
        nth: usize,
        earlier: u64,
    },
    CreateSession {
        id: u64,
        tenant: u64,
        ttl: u64,
    },
    KeepAlive {
        id: u64,
        tenant: u64,
    },
    KeepAliveMany(Vec<(u64, u64)>),
    Close {
        id: u64,
        tenant: u64,
    },
    Tick,
    /// Leadership moves: the following entries carry a higher term.
    NewLeader,
    RaiseFloor(u64),
    Restore,
}

/// Durations, mostly whole multiples of 100 ms so that deadlines often coincide exactly
/// (boundaries are where off-by-one bugs live).
fn duration(max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![3 => (1..=max / 100).prop_map(|n| n * 100), 1 => 1..=max]
}

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![8 => duration(1_200), 1 => Just(0u64), 1 => Just(2_001u64)]
}

fn op() -> impl Strategy<Value = Op> {
    let token = prop_oneof![
        6 => Just(TokenPick::Current),
        2 => Just(TokenPick::Previous),
        1 => (0u64..50).prop_map(TokenPick::Arbitrary)
    ];
    let session = prop_oneof![3 => Just(None), 2 => (1u64..4).prop_map(Some)];
    let request = prop_oneof![2 => Just(None), 1 => (0u8..4).prop_map(Some)];
    let wait = prop_oneof![2 => Just(0u64), 3 => duration(1_500), 1 => Just(2_001u64)];
    let delay = prop_oneof![4 => Just(0u64), 1 => duration(400)];
    let quota = prop_oneof![3 => Just(None), 1 => (0u64..4).prop_map(Some)];
    prop_oneof![
        10 => (0..5usize, 0..4usize, ttl(), wait, session, request, (delay, quota)).prop_map(
            |(key, owner, ttl, wait, session, request, (delay, quota))| Op::Acquire {
                key, owner, ttl, wait, session, request, delay, quota
            }
        ),
        3 => (0..5usize, 0..3usize, token.clone(), ttl())
            .prop_map(|(key, owner, token, ttl)| Op::Renew { key, owner, token, ttl }),
        5 => (0..5usize, 0..3usize, token).prop_map(|(key, owner, token)| Op::Release { key, owner, token }),
        2 => (0..5usize, 0..4usize).prop_map(|(key, nth)| Op::Cancel { key, nth }),
        2 => (0..5usize, 0..4usize, prop_oneof![Just(0u64), 1u64..300])
            .prop_map(|(key, nth, earlier)| Op::Abandon { key, nth, earlier }),
        3 => (1u64..4, 1u64..3, ttl()).prop_map(|(id, tenant, ttl)| Op::CreateSession { id, tenant, ttl }),
        3 => (1u64..4, 1u64..3).prop_map(|(id, tenant)| Op::KeepAlive { id, tenant }),
        2 => proptest::collection::vec((1u64..5, 1u64..3), 0..4).prop_map(Op::KeepAliveMany),
        1 => (1u64..4, 1u64..3).prop_map(|(id, tenant)| Op::Close { id, tenant }),
        3 => Just(Op::Tick),
        1 => Just(Op::NewLeader),
        1 => (0u64..200).prop_map(Op::RaiseFloor),
        1 => Just(Op::Restore),
    ]
}

/// A step: the op, how far the leader clock moves first, and whether this entry comes from
/// a leader whose clock lags (its time is behind the machine's).
fn step() -> impl Strategy<Value = (Op, u64, bool)> {
    (
        op(),
        prop_oneof![2 => Just(0u64), 3 => duration(700), 1 => 1u64..50],
        proptest::bool::weighted(0.05),
    )
}

fn resolve(model: &Model, op: &Op) -> Option<Command> {
    let pick = |key: &LockKey, pick: &TokenPick| {
        let current = model.peek(key).0.map_or(0, |(_, t)| t.0);
        FencingToken(match pick {
            TokenPick::Current => current,
            TokenPick::Previous => current.saturating_sub(1),
            TokenPick::Arbitrary(t) => *t,
        })
    };
    Some(match op.clone() {
        Op::Acquire {
            key: k,
            owner,
            ttl,
            wait,
            session,
            request,
            delay,
            quota,
        } => Command::Acquire(Acquire {
            key: key(k),
            owner: OWNERS[owner].into(),
            ttl_ms: ttl,
            wait_ms: wait,
            session: session.map(SessionId),
            request_id: request.map(|r| format!("r{r}")),
            lock_delay_ms: delay,
            tenant_quota: quota,
        }),
        Op::Renew {
            key: k,
            owner,
            token,
            ttl,
        } => Command::Renew {
            key: key(k),
            owner: OWNERS[owner].into(),
            token: pick(&key(k), &token),
            ttl_ms: ttl,
        },
        Op::Release {
            key: k,
            owner,
            token,
        } => Command::Release {
            key: key(k),
            owner: OWNERS[owner].into(),
            token: pick(&key(k), &token),
        },
        Op::Cancel { key: k, nth } => {
            let waits = model.peek(&key(k)).1;
            Command::CancelWait {
                key: key(k),
                wait: waits.get(nth).copied().unwrap_or(WaitId(9_999)),
            }
        }
        Op::Abandon {
            key: k,
            nth,
            earlier,
        } => {
            let waits = model.waits(&key(k));
            let (wait, deadline) = waits.get(nth).copied().unwrap_or((WaitId(9_999), 0));
            Command::AbandonWait {
                key: key(k),
                wait,
                deadline: deadline.saturating_sub(earlier),
            }
        }
        Op::CreateSession { id, tenant, ttl } => Command::CreateSession {
            id: SessionId(id),
            tenant: TenantId(tenant),
            ttl_ms: ttl,
        },
        Op::KeepAlive { id, tenant } => Command::KeepAlive {
            id: SessionId(id),
            tenant: TenantId(tenant),
        },
        Op::KeepAliveMany(sessions) => Command::KeepAliveMany {
            sessions: sessions
                .into_iter()
                .map(|(id, tenant)| (SessionId(id), TenantId(tenant)))
                .collect(),
        },
        Op::Close { id, tenant } => Command::CloseSession {
            id: SessionId(id),
            tenant: TenantId(tenant),
        },
        Op::Tick => Command::Tick,
        Op::RaiseFloor(f) => Command::RaiseTokenFloor {
            floor: FencingToken(f),
        },
        Op::Restore | Op::NewLeader => return None,
    })
}

fn predicted(effects: &[Effect]) -> Vec<Event> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Granted {
                key,
                wait,
                owner,
                token,
                ..
            } => Some(Event::Granted(
                key.clone(),
                *wait,
                owner.to_string(),
                *token,
            )),
            Effect::Lost {
                key, token, reason, ..
            } => Some(Event::Lost(key.clone(), *token, *reason)),
            Effect::WaitEnded { key, wait, reason } => {
                Some(Event::WaitEnded(key.clone(), *wait, *reason))
            }
            _ => None,
        })
        .collect()
}

fn run(steps: Vec<(Op, u64, bool)>) -> Result<(), TestCaseError> {
    let mut model = Model::new(limits());
    let mut original = LockMachine::new(limits());
    let mut restored = LockMachine::new(limits());
    let mut invariants = Invariants::default();
    let (mut now, mut index, mut term) = (10_000u64, 0u64, 1u64);
    let (mut fx_a, mut fx_b) = (Vec::new(), Vec::new());
    for (n, (op, dt, lagging)) in steps.into_iter().enumerate() {
        now += dt;
        if matches!(op, Op::NewLeader) {
            term += 1;
            continue;
        }
        let Some(command) = resolve(&model, &op) else {
            let bytes = restored.snapshot();
            restored =
                LockMachine::restore(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert_eq!(restored.snapshot(), bytes);
            continue;
        };
        let at = if lagging {
            now.saturating_sub(300)
        } else {
            now
        };
        index += 1;
        fx_a.clear();
        fx_b.clear();
        let ra = original.apply(index, term, Proposal::new(at, command.clone()), &mut fx_a);
        let rb = restored.apply(index, term, Proposal::new(at, command.clone()), &mut fx_b);
        let rm = model.apply(index, term, at, command.clone());
        prop_assert_eq!(&ra, &rm, "step {}: {:?}", n, command);
        prop_assert_eq!(
            &ra,
            &rb,
            "restored machine answered differently at step {}",
            n
        );
        prop_assert_eq!(
            &fx_a,
            &fx_b,
            "restored machine emitted differently at step {}",
            n
        );
        prop_assert_eq!(
            predicted(&fx_a),
            model.events.clone(),
            "step {}: {:?}",
            n,
            command
        );
        let clock = original.clock();
        let all: Vec<_> = [TenantId(1), TenantId(2)]
            .into_iter()
            .flat_map(|t| original.list(t, "", None, usize::MAX, clock))
            .collect();
        for tenant in [TenantId(1), TenantId(2)] {
            let held = all
                .iter()
                .filter(|s| s.key.tenant == tenant && s.holder.is_some())
                .count() as u64;
            prop_assert_eq!(original.held_by(tenant), held, "quota count, step {}", n);
            prop_assert_eq!(
                restored.held_by(tenant),
                held,
                "restored quota count, step {}",
                n
            );
        }
        prop_assert_eq!(all, model.statuses(clock), "state after step {}", n);
        for (id, tenant, left) in model.sessions(clock) {
            prop_assert_eq!(
                original.session_ttl_remaining(id, tenant, clock),
                Some(left)
            );
        }
        invariants
            .check(index, term, clock, &fx_a)
            .map_err(|e| TestCaseError::fail(format!("step {n}: {e}")))?;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("LOCKPLANE_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_machine_matches_the_reference_model(steps in proptest::collection::vec(step(), 1..80)) {
        run(steps)?;
    }
}
