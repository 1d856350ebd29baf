use lock_core::{
    Acquire, Change, Command, Effect, FencingToken, Field, LockError, LockKey, Problem, Reply,
    SessionId, TenantId,
};

use crate::{Harness, TENANT, granted, key};

#[test]
fn a_free_key_is_granted_with_the_entry_index_as_token() {
    let mut h = Harness::new();
    let grant = granted(h.acquire("a", "alice", 5_000));
    assert_eq!(grant.token, FencingToken(1));
    assert_eq!(grant.ttl_ms, 5_000);
    assert_eq!(h.holder_of("a"), Some(("alice".into(), FencingToken(1))));
    let status = h.machine.status(&key("a"), h.now + 1_000);
    assert_eq!(status.ttl_remaining_ms, Some(4_000));
    assert!(
        h.effects
            .iter()
            .any(|e| matches!(e, Effect::Invalidate { version: 1, .. }))
    );
    assert!(h.effects.iter().any(|e| matches!(
        e,
        Effect::Audit(ev) if ev.index == 1 && matches!(ev.change, Change::Acquired { .. })
    )));
}

#[test]
fn a_held_key_conflicts_and_names_the_holder() {
    let mut h = Harness::new();
    let first = granted(h.acquire("a", "alice", 5_000));
    match h.acquire("a", "bob", 5_000) {
        Err(LockError::Held { holder }) => {
            assert_eq!(holder.owner, "alice");
            assert_eq!(holder.token, first.token);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A refusal changes nothing: no invalidation, only its own audit row.
    match h.effects.as_slice() {
        [Effect::Audit(event)] => match &event.change {
            Change::Rejected {
                owner,
                token: None,
                error: LockError::Held { holder },
                ..
            } => assert_eq!((owner.as_str(), holder.token), ("bob", first.token)),
            other => panic!("expected a rejection, got {other:?}"),
        },
        other => panic!("expected one audit row, got {other:?}"),
    }
}

#[test]
fn keys_of_different_tenants_are_different_locks() {
    let mut h = Harness::new();
    granted(h.acquire("a", "alice", 5_000));
    let other = Acquire::new(LockKey::new(TenantId(8), "a"), "bob", 5_000);
    granted(h.run(Command::Acquire(other)));
}

#[test]
fn reentrant_acquire_returns_the_same_token_and_renews() {
    let mut h = Harness::new();
    let first = granted(h.acquire("a", "alice", 5_000));
    h.now += 4_000;
    let again = granted(h.acquire("a", "alice", 8_000));
    assert_eq!(again.token, first.token);
    assert_eq!(again.ttl_ms, 8_000);
    h.advance(7_000).unwrap();
    assert_eq!(h.holder_of("a").map(|h| h.1), Some(first.token));
}

#[test]
fn the_same_owner_in_another_session_is_not_reentrant() {
    let mut h = Harness::new();
    let s = h.session(1, 10_000);
    granted(h.acquire("a", "alice", 5_000));
    let r = h.acquire_with("a", "alice", |a| a.session = Some(s));
    assert!(matches!(r, Err(LockError::Held { .. })), "{r:?}");
}

#[test]
fn a_retry_with_the_same_request_id_gets_the_same_grant() {
    let mut h = Harness::new();
    let with_id = |a: &mut Acquire| a.request_id = Some("req-1".into());
    let first = granted(h.acquire_with("a", "alice", with_id));
    h.release("a", "alice", first.token).unwrap();
    granted(h.acquire("a", "bob", 5_000));
    let retry = granted(h.acquire_with("a", "alice", with_id));
    assert_eq!(
        retry, first,
        "the retry answers the first outcome, it does not re-run"
    );
    assert_eq!(h.holder_of("a").map(|h| h.0), Some("bob".into()));
}

#[test]
fn a_request_id_reused_for_another_key_is_refused() {
    let mut h = Harness::new();
    granted(h.acquire_with("a", "alice", |a| a.request_id = Some("r".into())));
    let r = h.acquire_with("b", "alice", |a| a.request_id = Some("r".into()));
    assert_eq!(r, Err(LockError::RequestIdReused));
}

#[test]
fn request_ids_are_forgotten_after_the_window() {
    let mut h = Harness::new();
    let window = h.machine.limits().dedup_window_ms;
    let first = granted(h.acquire_with("a", "alice", |a| {
        a.request_id = Some("r".into());
        a.ttl_ms = window * 2;
    }));
    h.release("a", "alice", first.token).unwrap();
    h.advance(window).unwrap();
    let second = granted(h.acquire_with("a", "alice", |a| a.request_id = Some("r".into())));
    assert!(
        second.token > first.token,
        "a forgotten id is a new request"
    );
}

#[test]
fn a_retry_of_a_queued_acquire_returns_the_same_wait_then_the_grant() {
    let mut h = Harness::new();
    let held = granted(h.acquire("a", "alice", 5_000));
    let queue = |a: &mut Acquire| {
        a.wait_ms = 10_000;
        a.request_id = Some("bob-1".into());
    };
    let Ok(Reply::Queued {
        wait,
        position: 1,
        deadline,
    }) = h.acquire_with("a", "bob", queue)
    else {
        panic!("expected to queue first");
    };
    assert_eq!(
        h.acquire_with("a", "bob", queue),
        Ok(Reply::Queued {
            wait,
            position: 1,
            deadline
        })
    );
    h.release("a", "alice", held.token).unwrap();
    let token = h.pushed_grants()[0].3;
    let retry = granted(h.acquire_with("a", "bob", queue));
    assert_eq!(retry.token, token);
}

#[test]
fn limits_are_enforced_with_typed_errors() {
    let mut h = Harness::new();
    let limits = *h.machine.limits();
    let invalid = |r, f: Field| match r {
        Err(LockError::Invalid { field, problem }) if field == f => problem,
        other => panic!("expected invalid {f}, got {other:?}"),
    };
    let long = "k".repeat(limits.max_key_bytes as usize + 1);
    assert!(matches!(
        invalid(h.acquire(&long, "o", 1_000), Field::Key),
        Problem::TooLong { .. }
    ));
    assert_eq!(
        invalid(h.acquire("", "o", 1_000), Field::Key),
        Problem::Empty
    );
    assert_eq!(
        invalid(h.acquire("a\u{0}", "o", 1_000), Field::Key),
        Problem::ControlCharacter
    );
    assert_eq!(
        invalid(h.acquire("a", "", 1_000), Field::Owner),
        Problem::Empty
    );
    invalid(h.acquire("a", "o", 0), Field::TtlMs);
    invalid(h.acquire("a", "o", limits.max_ttl_ms + 1), Field::TtlMs);
    invalid(
        h.acquire_with("a", "o", |a| a.wait_ms = limits.max_wait_ms + 1),
        Field::WaitMs,
    );
    invalid(
        h.acquire_with("a", "o", |a| a.lock_delay_ms = limits.max_lock_delay_ms + 1),
        Field::LockDelayMs,
    );
    invalid(
        h.acquire_with("a", "o", |a| a.request_id = Some(String::new())),
        Field::RequestId,
    );
    let max_key = "k".repeat(limits.max_key_bytes as usize);
    granted(h.acquire(&max_key, "o", 1_000));
}

#[test]
fn the_queue_of_a_key_is_bounded() {
    let limits = lock_core::Limits {
        max_waiters_per_key: 2,
        ..Default::default()
    };
    let mut h = Harness::with(lock_core::LockMachine::new(limits));
    granted(h.acquire("a", "alice", 5_000));
    h.wait("a", "w1", 1_000);
    h.wait("a", "w2", 1_000);
    let r = h.acquire_with("a", "w3", |a| a.wait_ms = 1_000);
    assert_eq!(r, Err(LockError::TooManyWaiters { max: 2 }));
}

#[test]
fn a_session_holds_a_bounded_number_of_locks() {
    let limits = lock_core::Limits {
        max_locks_per_session: 2,
        ..Default::default()
    };
    let mut h = Harness::with(lock_core::LockMachine::new(limits));
    let s = h.session(1, 10_000);
    granted(h.acquire_with("a", "o", |a| a.session = Some(s)));
    granted(h.acquire("b", "other", 5_000));
    h.acquire_with("b", "o", |a| {
        a.session = Some(s);
        a.wait_ms = 100;
    })
    .unwrap();
    let r = h.acquire_with("c", "o", |a| a.session = Some(s));
    assert_eq!(r, Err(LockError::TooManyLocksInSession { max: 2 }));
}

#[test]
fn an_unknown_or_foreign_session_is_refused() {
    let mut h = Harness::new();
    let r = h.acquire_with("a", "o", |a| a.session = Some(SessionId(9)));
    assert_eq!(r, Err(LockError::SessionNotFound(SessionId(9))));
    h.run(Command::CreateSession {
        id: SessionId(10),
        tenant: TenantId(99),
        ttl_ms: 5_000,
    })
    .unwrap();
    let r = h.acquire_with("a", "o", |a| a.session = Some(SessionId(10)));
    assert_eq!(r, Err(LockError::SessionNotFound(SessionId(10))));
    assert_eq!(TENANT, TenantId(7));
}

#[test]
fn waiters_queue_in_order_and_a_repeat_waiter_keeps_its_place() {
    let mut h = Harness::new();
    granted(h.acquire("a", "alice", 5_000));
    let w1 = h.wait("a", "bob", 10_000);
    let w2 = h.wait("a", "carol", 10_000);
    assert!(w1 < w2);
    assert_eq!(
        h.acquire_with("a", "bob", |a| a.wait_ms = 10_000),
        Ok(Reply::Queued {
            wait: w1,
            position: 1,
            deadline: h.now + 10_000
        })
    );
    assert_eq!(h.machine.status(&key("a"), h.now).waiters, 2);
}

#[test]
fn without_wait_a_caller_behind_a_queue_is_refused_not_queued() {
    let mut h = Harness::new();
    granted(h.acquire("a", "alice", 5_000));
    h.wait("a", "bob", 10_000);
    assert!(matches!(
        h.acquire("a", "carol", 5_000),
        Err(LockError::Held { .. })
    ));
    assert_eq!(h.machine.status(&key("a"), h.now).waiters, 1);
}

#[test]
fn a_tenant_at_its_quota_is_refused_until_it_lets_a_lock_go() {
    let mut h = Harness::new();
    let quota = |q: u64| move |a: &mut Acquire| a.tenant_quota = Some(q);
    let first = granted(h.acquire_with("q1", "a", quota(2)));
    granted(h.acquire_with("q2", "a", quota(2)));
    assert_eq!(h.machine.held_by(TENANT), 2);
    assert_eq!(
        h.acquire_with("q3", "a", quota(2)),
        Err(LockError::TenantQuota { quota: 2 })
    );
    granted(h.acquire_with("q1", "a", quota(2)));
    granted(h.acquire_with("other-tenant", "a", |a| {
        a.key = LockKey::new(TenantId(99), "q3");
        a.tenant_quota = Some(2);
    }));
    h.release("q1", "a", first.token).unwrap();
    assert_eq!(h.machine.held_by(TENANT), 1);
    granted(h.acquire_with("q3", "a", quota(2)));
    h.advance(20_000).unwrap();
    assert_eq!(h.machine.held_by(TENANT), 0, "expiry gives the quota back");
    granted(h.acquire_with("q4", "a", quota(2)));
    let restored = lock_core::LockMachine::restore(&h.machine.snapshot()).unwrap();
    assert_eq!(restored.held_by(TENANT), 1);
}
