use lock_core::{Change, Command, Effect, FencingToken, LockError, Reply, WaitEndReason};

use crate::{Harness, granted, key};

#[test]
fn release_frees_the_key_and_forgets_it() {
    let mut h = Harness::new();
    let g = granted(h.acquire("a", "alice", 5_000));
    assert_eq!(h.release("a", "alice", g.token), Ok(Reply::Released));
    assert_eq!(h.holder_of("a"), None);
    assert_eq!(h.machine.counts().keys, 0);
    let next = granted(h.acquire("a", "bob", 5_000));
    assert!(next.token > g.token);
}

#[test]
fn a_stale_token_or_foreign_owner_never_touches_the_holder() {
    let mut h = Harness::new();
    let old = granted(h.acquire("a", "alice", 5_000));
    h.release("a", "alice", old.token).unwrap();
    let new = granted(h.acquire("a", "alice", 5_000));
    assert_eq!(
        h.release("a", "alice", old.token),
        Err(LockError::NotHolder)
    );
    // The refusal is recorded, with the stale token, and changes nothing else.
    assert!(matches!(
        h.effects.as_slice(),
        [Effect::Audit(event)] if matches!(
            &event.change,
            Change::Rejected { token: Some(t), error: LockError::NotHolder, .. } if *t == old.token
        )
    ));
    assert_eq!(
        h.release("a", "mallory", new.token),
        Err(LockError::NotHolder)
    );
    assert_eq!(h.holder_of("a"), Some(("alice".into(), new.token)));
    assert_eq!(h.release("b", "alice", new.token), Err(LockError::NotHeld));
}

#[test]
fn release_hands_the_key_to_the_next_waiter_only() {
    let mut h = Harness::new();
    let g = granted(h.acquire("a", "alice", 5_000));
    let w1 = h.wait("a", "bob", 10_000);
    let w2 = h.wait("a", "carol", 10_000);
    h.release("a", "alice", g.token).unwrap();
    let pushed = h.pushed_grants();
    assert_eq!(pushed.len(), 1, "exactly one waiter is woken");
    assert_eq!((pushed[0].1, pushed[0].2.as_str()), (w1, "bob"));
    assert_eq!(pushed[0].3, FencingToken(h.index));
    assert_eq!(h.machine.status(&key("a"), h.now).waiters, 1);
    h.release("a", "bob", pushed[0].3).unwrap();
    assert_eq!(h.pushed_grants()[0].1, w2);
}

#[test]
fn a_waiter_past_its_deadline_is_skipped_at_hand_over() {
    let mut h = Harness::new();
    let g = granted(h.acquire("a", "alice", 60_000));
    let w1 = h.wait("a", "bob", 100);
    let w2 = h.wait("a", "carol", 10_000);
    h.now += 100;
    h.release("a", "alice", g.token).unwrap();
    assert!(h.effects.iter().any(|e| matches!(
        e,
        Effect::WaitEnded { wait, reason: WaitEndReason::TimedOut, .. } if *wait == w1
    )));
    assert_eq!(h.pushed_grants()[0].1, w2);
}

#[test]
fn cancel_wait_leaves_the_queue() {
    let mut h = Harness::new();
    let g = granted(h.acquire("a", "alice", 5_000));
    let w1 = h.wait("a", "bob", 10_000);
    let w2 = h.wait("a", "carol", 10_000);
    let cancel = |wait| Command::CancelWait {
        key: key("a"),
        wait,
    };
    assert_eq!(h.run(cancel(w1)), Ok(Reply::WaitCancelled));
    assert!(h.effects.iter().any(|e| matches!(
        e,
        Effect::WaitEnded {
            reason: WaitEndReason::Cancelled,
            ..
        }
    )));
    assert_eq!(h.run(cancel(w1)), Err(LockError::WaitNotFound));
    h.release("a", "alice", g.token).unwrap();
    assert_eq!(h.pushed_grants()[0].1, w2);
    assert_eq!(h.run(cancel(w2)), Err(LockError::WaitNotFound));
}
