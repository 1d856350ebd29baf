use lock_core::{Command, Effect, FencingToken, LockError, LostReason, Reply};

use crate::{Harness, granted, key};

fn renew(h: &mut Harness, owner: &str, token: FencingToken, ttl_ms: u64) -> lock_core::Response {
    h.run(Command::Renew {
        key: key("a"),
        owner: owner.into(),
        token,
        ttl_ms,
    })
}

#[test]
fn renew_extends_the_lease_from_the_entry_time() {
    let mut h = Harness::new();
    let g = granted(h.acquire("a", "alice", 1_000));
    h.now += 900;
    assert_eq!(
        renew(&mut h, "alice", g.token, 2_000),
        Ok(Reply::Renewed {
            token: g.token,
            ttl_ms: 2_000
        })
    );
    h.advance(1_999).unwrap();
    assert!(
        h.holder_of("a").is_some(),
        "still held one ms before the new end"
    );
    h.advance(1).unwrap();
    assert!(h.holder_of("a").is_none());
    assert!(h.effects.iter().any(|e| matches!(
        e,
        Effect::Lost { reason: LostReason::Expired, token, .. } if *token == g.token
    )));
}

#[test]
fn only_the_holder_may_renew() {
    let mut h = Harness::new();
    let g = granted(h.acquire("a", "alice", 1_000));
    assert_eq!(
        renew(&mut h, "bob", g.token, 1_000),
        Err(LockError::NotHolder)
    );
    assert_eq!(
        renew(&mut h, "alice", FencingToken(g.token.0 + 1), 1_000),
        Err(LockError::NotHolder)
    );
    h.advance(1_000).unwrap();
    assert_eq!(
        renew(&mut h, "alice", g.token, 1_000),
        Err(LockError::NotHeld)
    );
}

#[test]
fn renew_after_the_lease_ended_is_refused_even_before_a_tick() {
    let mut h = Harness::new();
    let g = granted(h.acquire("a", "alice", 1_000));
    h.now += 1_000;
    assert_eq!(
        renew(&mut h, "alice", g.token, 1_000),
        Err(LockError::NotHeld)
    );
}

#[test]
fn renewing_a_session_lock_keeps_its_session_alive() {
    let mut h = Harness::new();
    let s = h.session(1, 1_000);
    let g = granted(h.acquire_with("a", "alice", |a| a.session = Some(s)));
    assert_eq!(g.ttl_ms, 1_000);
    h.now += 800;
    assert_eq!(
        renew(&mut h, "alice", g.token, 5_000),
        Ok(Reply::Renewed {
            token: g.token,
            ttl_ms: 1_000
        })
    );
    h.advance(900).unwrap();
    assert!(h.holder_of("a").is_some());
}
