use lock_core::{
    Command, Effect, FencingToken, LockError, LockMachine, LostReason, Proposal, Reply,
    WaitEndReason,
};

use crate::{Harness, granted, key};

#[test]
fn a_lease_ends_exactly_at_its_ttl_and_hands_the_key_on() {
    let mut h = Harness::new();
    let g = granted(h.acquire("a", "alice", 1_000));
    let w = h.wait("a", "bob", 60_000);
    assert_eq!(h.machine.next_due(), Some(h.now + 1_000));
    h.advance(999).unwrap();
    assert!(h.effects.is_empty(), "nothing is due yet");
    h.advance(1).unwrap();
    assert!(h.effects.iter().any(|e| matches!(
        e,
        Effect::Lost { reason: LostReason::Expired, token, .. } if *token == g.token
    )));
    let pushed = h.pushed_grants();
    assert_eq!(pushed[0].1, w);
    assert!(pushed[0].3 > g.token);
}

#[test]
fn a_wait_times_out_at_its_deadline() {
    let mut h = Harness::new();
    granted(h.acquire("a", "alice", 60_000));
    let w = h.wait("a", "bob", 300);
    h.advance(300).unwrap();
    assert_eq!(
        h.effects
            .iter()
            .find(|e| matches!(e, Effect::WaitEnded { .. })),
        Some(&Effect::WaitEnded {
            key: key("a"),
            wait: w,
            reason: WaitEndReason::TimedOut
        })
    );
    assert_eq!(h.machine.status(&key("a"), h.now).waiters, 0);
}

#[test]
fn lock_delay_follows_expiry_but_not_release() {
    let mut h = Harness::new();
    let delayed = |a: &mut lock_core::Acquire| {
        a.ttl_ms = 1_000;
        a.lock_delay_ms = 2_000;
    };
    granted(h.acquire_with("a", "alice", delayed));
    h.advance(1_000).unwrap();
    assert_eq!(
        h.acquire("a", "bob", 1_000),
        Err(LockError::LockDelayed {
            until_ms: h.now + 2_000
        })
    );
    let w = h.wait("a", "bob", 10_000);
    h.advance(1_999).unwrap();
    assert!(h.pushed_grants().is_empty());
    h.advance(1).unwrap();
    assert_eq!(h.pushed_grants()[0].1, w);

    let g = granted(h.acquire_with("b", "carol", delayed));
    h.release("b", "carol", g.token).unwrap();
    granted(h.acquire("b", "dave", 1_000));
}

#[test]
fn a_new_leader_treats_every_lease_as_renewed_at_its_start() {
    let mut h = Harness::new();
    let g = granted(h.acquire("a", "alice", 1_000));
    let s = h.session(1, 1_000);
    h.now += 900;
    h.term += 1;
    assert_eq!(h.run(Command::Tick), Ok(Reply::Done));
    h.advance(999).unwrap();
    assert_eq!(h.holder_of("a").map(|x| x.1), Some(g.token));
    assert!(
        h.machine
            .session_ttl_remaining(s, crate::TENANT, h.now)
            .is_some()
    );
    h.advance(1).unwrap();
    assert_eq!(h.holder_of("a"), None);
    assert!(h.effects.contains(&Effect::SessionExpired { id: s }));
}

#[test]
fn a_new_term_touches_no_lease_until_it_comes_due() {
    let mut h = Harness::new();
    for i in 0..1_000 {
        granted(h.acquire(&format!("k{i}"), "o", 1_000));
    }
    let due_before = h.machine.next_due();
    h.term += 1;
    h.run(Command::Tick).unwrap();
    assert!(h.effects.is_empty());
    assert_eq!(h.machine.next_due(), due_before, "no lease was re-dated");
}

#[test]
fn tokens_stay_increasing_when_one_entry_grants_a_key_twice() {
    let mut h = Harness::new();
    let s = h.session(1, 1_000);
    let g = granted(h.acquire("a", "alice", 1_000));
    h.acquire_with("a", "bob", |a| {
        a.session = Some(s);
        a.wait_ms = 60_000;
    })
    .unwrap();
    h.wait("a", "carol", 60_000);
    // One tick: alice's lease ends, bob's session has ended too, so carol is granted.
    h.advance(1_000).unwrap();
    let pushed = h.pushed_grants();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].2, "carol");
    assert!(pushed[0].3 > g.token);
}

#[test]
fn a_raised_token_floor_lifts_every_later_token() {
    let mut h = Harness::new();
    granted(h.acquire("a", "alice", 1_000));
    h.run(Command::RaiseTokenFloor {
        floor: FencingToken(1_000_000),
    })
    .unwrap();
    let g = granted(h.acquire("b", "bob", 1_000));
    assert_eq!(g.token, FencingToken(1_000_001));
    let g2 = granted(h.acquire("c", "bob", 1_000));
    assert_eq!(g2.token, FencingToken(1_000_002));
    assert_eq!(h.machine.token_floor(), g2.token);
}

#[test]
fn the_clock_never_runs_backwards_and_indexes_must_increase() {
    let mut m = LockMachine::default();
    let mut fx = Vec::new();
    let tick = |now| Proposal::new(now, Command::Tick);
    m.apply(1, 1, tick(5_000), &mut fx).unwrap();
    m.apply(2, 1, tick(4_000), &mut fx).unwrap();
    assert_eq!(m.clock(), 5_000);
    assert_eq!(
        m.apply(2, 1, tick(6_000), &mut fx),
        Err(LockError::IndexNotIncreasing {
            index: 2,
            last_applied: 2
        })
    );
    assert_eq!(m.clock(), 5_000, "a refused entry changes nothing");
}

#[test]
fn one_late_tick_handles_deadlines_in_time_order_and_grants_no_expired_waiter() {
    let mut h = Harness::new();
    granted(h.acquire("a", "alice", 500));
    let late = h.wait("a", "bob", 1_000);
    granted(h.acquire("b", "carol", 100));
    let early = h.wait("b", "dave", 50);
    h.advance(2_000).unwrap();
    let ended: Vec<_> = h
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::WaitEnded { wait, .. } => Some(*wait),
            _ => None,
        })
        .collect();
    // dave's wait ends (+50) before carol's lease (+100); alice's lease ends at +500, but
    // by the entry's time bob's deadline has passed too, so he is not granted.
    assert_eq!(ended, vec![early, late]);
    assert!(h.pushed_grants().is_empty());
    assert_eq!(h.holder_of("a"), None);
    assert_eq!(h.machine.counts().keys, 0);
}

#[test]
fn a_lock_past_its_lease_is_overdue_until_its_expiry_is_applied() {
    let mut h = Harness::new();
    granted(h.acquire("a", "alice", 1_000));
    let end = h.now + 1_000;
    assert_eq!(h.machine.overdue(end, 0), 0, "not past the lease yet");
    assert_eq!(h.machine.overdue(end + 1, 0), 1);
    assert_eq!(h.machine.overdue(end + 1, 5_000), 0, "within the grace");
    assert_eq!(h.machine.overdue(end + 5_001, 5_000), 1);
    assert_eq!(h.machine.held(), 1);
    h.advance(1_000).unwrap();
    assert_eq!(h.machine.overdue(end + 5_001, 5_000), 0, "expired");
    assert_eq!(h.machine.held(), 0);
}

#[test]
fn a_lock_of_an_expired_session_is_overdue_and_a_later_deadline_is_not() {
    let mut h = Harness::new();
    let session = h.session(9, 1_000);
    granted(h.acquire_with("a", "alice", |a| a.session = Some(session)));
    // Another lock's lease far in the future: a deadline that is not due.
    granted(h.acquire("b", "bob", 60_000));
    let end = h.now + 1_000;
    assert_eq!(h.machine.sessions(), 1);
    assert_eq!(
        h.machine.overdue(end + 1, 0),
        1,
        "the session's lease ended"
    );
    assert_eq!(h.machine.overdue(end, 0), 0);
}
