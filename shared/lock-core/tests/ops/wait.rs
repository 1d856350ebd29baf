use lock_core::{AuditEvent, Change, Command, Effect, LockError, Reply, WaitEndReason, WaitId};

use crate::{Harness, TENANT, granted, key};

fn queued(h: &mut Harness, owner: &str, wait_ms: u64) -> (WaitId, u32, u64) {
    match h.acquire_with("a", owner, |a| a.wait_ms = wait_ms) {
        Ok(Reply::Queued {
            wait,
            position,
            deadline,
        }) => (wait, position, deadline),
        other => panic!("expected to queue, got {other:?}"),
    }
}

fn abandon(wait: WaitId, deadline: u64) -> Command {
    Command::AbandonWait {
        key: key("a"),
        wait,
        deadline,
    }
}

#[test]
fn asking_again_while_queued_renews_the_wait_and_keeps_the_place() {
    let mut h = Harness::new();
    let held = granted(h.acquire("a", "alice", 60_000));
    let (bob, _, first_deadline) = queued(&mut h, "bob", 10_000);
    queued(&mut h, "carol", 30_000);
    h.advance(8_000).unwrap();
    let (again, position, deadline) = queued(&mut h, "bob", 10_000);
    assert_eq!((again, position), (bob, 1));
    assert_eq!(deadline, h.now + 10_000);
    assert!(deadline > first_deadline);
    assert!(
        h.effects.is_empty(),
        "a renewal changes nothing anyone sees"
    );
    h.advance(5_000).unwrap();
    assert!(
        h.effects.is_empty(),
        "the first deadline passed without ending the wait: {:?}",
        h.effects
    );
    h.release("a", "alice", held.token).unwrap();
    assert_eq!(h.pushed_grants()[0].1, bob, "still first in line");
}

#[test]
fn a_shorter_renewal_keeps_the_longer_deadline_and_its_abandon_changes_nothing() {
    let mut h = Harness::new();
    let held = granted(h.acquire("a", "alice", 60_000));
    let (bob, _, deadline) = queued(&mut h, "bob", 10_000);
    h.advance(1_000).unwrap();
    let (again, _, asked) = queued(&mut h, "bob", 2_000);
    assert_eq!(
        (again, asked),
        (bob, h.now + 2_000),
        "the call knows what it asked for"
    );
    assert!(asked < deadline);
    assert_eq!(
        h.run(abandon(bob, asked)),
        Ok(Reply::WaitRenewed { deadline }),
        "the shorter call's going leaves the longer one's wait"
    );
    h.advance(5_000).unwrap();
    assert!(
        h.effects.is_empty(),
        "not timed out at the shorter deadline"
    );
    assert!(
        matches!(
            h.acquire_with("a", "bob", |a| a.wait_ms = 0),
            Err(LockError::Held { .. })
        ),
        "a try-acquire by a queued caller does not attach to its wait"
    );
    h.release("a", "alice", held.token).unwrap();
    assert_eq!(h.pushed_grants()[0].1, bob);
}

#[test]
fn a_retry_with_the_same_request_id_renews_its_wait() {
    let mut h = Harness::new();
    granted(h.acquire("a", "alice", 60_000));
    let ask = |a: &mut lock_core::Acquire| {
        a.wait_ms = 10_000;
        a.request_id = Some("bob-1".into());
    };
    let Ok(Reply::Queued { wait, .. }) = h.acquire_with("a", "bob", ask) else {
        panic!("expected to queue");
    };
    h.advance(9_000).unwrap();
    assert_eq!(
        h.acquire_with("a", "bob", ask),
        Ok(Reply::Queued {
            wait,
            position: 1,
            deadline: h.now + 10_000
        })
    );
    h.advance(9_000).unwrap();
    assert!(h.effects.is_empty(), "renewed: {:?}", h.effects);
}

#[test]
fn an_abandoned_wait_leaves_unless_a_later_call_renewed_it() {
    let mut h = Harness::new();
    let held = granted(h.acquire("a", "alice", 60_000));
    let (bob, _, first) = queued(&mut h, "bob", 10_000);
    h.advance(5_000).unwrap();
    let (_, _, renewed) = queued(&mut h, "bob", 10_000);

    assert_eq!(
        h.run(abandon(bob, first)),
        Ok(Reply::WaitRenewed { deadline: renewed })
    );
    assert!(h.effects.is_empty(), "nothing changed: {:?}", h.effects);

    assert_eq!(h.run(abandon(bob, renewed)), Ok(Reply::WaitCancelled));
    let change = Change::WaitEnded {
        key: key("a"),
        owner: "bob".into(),
        wait: bob,
        reason: WaitEndReason::Cancelled,
    };
    assert_eq!(
        h.effects,
        vec![
            Effect::WaitEnded {
                key: key("a"),
                wait: bob,
                reason: WaitEndReason::Cancelled,
            },
            Effect::Invalidate {
                key: key("a"),
                version: h.index,
            },
            Effect::Audit(AuditEvent {
                index: h.index,
                seq: 0,
                at: h.now,
                tenant: TENANT,
                change,
            }),
        ]
    );
    assert_eq!(h.run(abandon(bob, renewed)), Err(LockError::WaitNotFound));
    h.release("a", "alice", held.token).unwrap();
    assert!(h.pushed_grants().is_empty(), "nobody was left to grant");
}
