use lock_core::{
    Command, Effect, LockError, LostReason, Reply, SessionId, TenantId, WaitEndReason,
};

use crate::{Harness, TENANT, granted, key};

#[test]
fn create_is_idempotent_for_the_same_settings_only() {
    let mut h = Harness::new();
    let s = h.session(5, 1_000);
    let again = Command::CreateSession {
        id: s,
        tenant: TENANT,
        ttl_ms: 1_000,
    };
    assert_eq!(h.run(again), Ok(Reply::SessionCreated { ttl_ms: 1_000 }));
    let other = Command::CreateSession {
        id: s,
        tenant: TENANT,
        ttl_ms: 2_000,
    };
    assert_eq!(h.run(other), Err(LockError::SessionConflict(s)));
}

#[test]
fn keepalive_extends_and_a_silent_session_expires() {
    let mut h = Harness::new();
    let s = h.session(5, 1_000);
    h.now += 900;
    let ka = Command::KeepAlive {
        id: s,
        tenant: TENANT,
    };
    assert_eq!(
        h.run(ka.clone()),
        Ok(Reply::SessionKeptAlive { ttl_ms: 1_000 })
    );
    assert_eq!(
        h.machine.session_ttl_remaining(s, TENANT, h.now),
        Some(1_000)
    );
    h.advance(999).unwrap();
    assert!(h.machine.session_ttl_remaining(s, TENANT, h.now).is_some());
    h.advance(1).unwrap();
    assert!(h.effects.contains(&Effect::SessionExpired { id: s }));
    assert_eq!(h.run(ka), Err(LockError::SessionNotFound(s)));
}

#[test]
fn another_tenant_cannot_touch_a_session() {
    let mut h = Harness::new();
    let s = h.session(5, 1_000);
    let foreign = TenantId(99);
    assert_eq!(
        h.run(Command::KeepAlive {
            id: s,
            tenant: foreign
        }),
        Err(LockError::SessionNotFound(s))
    );
    assert_eq!(
        h.run(Command::CloseSession {
            id: s,
            tenant: foreign
        }),
        Err(LockError::SessionNotFound(s))
    );
    assert_eq!(h.machine.session_ttl_remaining(s, foreign, h.now), None);
}

#[test]
fn session_expiry_releases_its_locks_drops_its_waits_and_hands_keys_on() {
    let mut h = Harness::new();
    let s = h.session(1, 1_000);
    let held_a = granted(h.acquire_with("a", "alice", |a| a.session = Some(s)));
    let held_b = granted(h.acquire_with("b", "bob", |a| a.ttl_ms = 60_000));
    let own_wait = match h.acquire_with("b", "alice", |a| {
        a.session = Some(s);
        a.wait_ms = 60_000;
    }) {
        Ok(Reply::Queued { wait, .. }) => wait,
        other => panic!("{other:?}"),
    };
    let next = h.wait("a", "carol", 60_000);
    h.advance(1_000).unwrap();
    assert!(h.effects.contains(&Effect::SessionExpired { id: s }));
    assert!(h.effects.iter().any(|e| matches!(
        e,
        Effect::Lost { reason: LostReason::SessionExpired, token, .. } if *token == held_a.token
    )));
    assert!(h.effects.iter().any(|e| matches!(
        e,
        Effect::WaitEnded { wait, reason: WaitEndReason::SessionEnded, .. } if *wait == own_wait
    )));
    let pushed = h.pushed_grants();
    assert_eq!(pushed.len(), 1);
    assert_eq!((pushed[0].0.as_str(), pushed[0].1), ("a", next));
    assert_eq!(h.holder_of("b"), Some(("bob".into(), held_b.token)));
    assert_eq!(h.machine.status(&key("b"), h.now).waiters, 0);
}

#[test]
fn closing_a_session_releases_without_lock_delay() {
    let mut h = Harness::new();
    let s = h.session(1, 10_000);
    granted(h.acquire_with("a", "alice", |a| {
        a.session = Some(s);
        a.lock_delay_ms = 5_000;
    }));
    assert_eq!(
        h.run(Command::CloseSession {
            id: s,
            tenant: TENANT
        }),
        Ok(Reply::SessionClosed)
    );
    assert!(h.effects.iter().any(|e| matches!(
        e,
        Effect::Lost {
            reason: LostReason::SessionClosed,
            ..
        }
    )));
    granted(h.acquire("a", "bob", 1_000));
    assert_eq!(
        h.run(Command::KeepAlive {
            id: s,
            tenant: TENANT
        }),
        Err(LockError::SessionNotFound(s))
    );
}

#[test]
fn a_waiter_whose_session_ended_is_never_granted() {
    let mut h = Harness::new();
    let s = h.session(1, 500);
    let g = granted(h.acquire("a", "alice", 60_000));
    h.acquire_with("a", "bob", |a| {
        a.session = Some(s);
        a.wait_ms = 60_000;
    })
    .unwrap();
    h.now += 500;
    h.release("a", "alice", g.token).unwrap();
    assert!(h.pushed_grants().is_empty());
    assert_eq!(h.holder_of("a"), None);
    assert_eq!(h.machine.counts().sessions, 0);
    assert_eq!(SessionId(1), s);
}

#[test]
fn keepalive_many_answers_each_session_on_its_own() {
    let mut h = Harness::new();
    let a = h.session(5, 1_000);
    let b = h.session(6, 2_000);
    h.now += 900;
    let foreign = TenantId(99);
    let missing = SessionId(404);
    let reply = h.run(Command::KeepAliveMany {
        sessions: vec![(a, TENANT), (missing, TENANT), (b, foreign), (b, TENANT)],
    });
    assert_eq!(
        reply,
        Ok(Reply::SessionsKeptAlive {
            outcomes: vec![
                Ok(1_000),
                Err(LockError::SessionNotFound(missing)),
                Err(LockError::SessionNotFound(b)),
                Ok(2_000),
            ]
        })
    );
    assert_eq!(
        h.machine.session_ttl_remaining(a, TENANT, h.now),
        Some(1_000)
    );
    h.advance(1_000).unwrap();
    assert!(h.effects.contains(&Effect::SessionExpired { id: a }));
    assert!(h.machine.session_ttl_remaining(b, TENANT, h.now).is_some());
    assert_eq!(
        h.run(Command::KeepAliveMany { sessions: vec![] }),
        Ok(Reply::SessionsKeptAlive { outcomes: vec![] })
    );
}
