use lock_core::{Command, LockMachine, SnapshotError};

use crate::{Harness, granted, key};

fn busy_machine() -> Harness {
    let mut h = Harness::new();
    let s = h.session(1, 5_000);
    granted(h.acquire_with("a", "alice", |a| a.session = Some(s)));
    h.acquire_with("a", "bob", |a| {
        a.wait_ms = 9_000;
        a.request_id = Some("bob-1".into());
    })
    .unwrap();
    granted(h.acquire_with("b", "carol", |a| {
        a.ttl_ms = 700;
        a.lock_delay_ms = 400;
    }));
    h.advance(700).unwrap();
    h.term += 1;
    h.run(Command::Tick).unwrap();
    h
}

#[test]
fn a_restored_machine_is_the_saved_one_and_behaves_the_same() {
    let mut a = busy_machine();
    let bytes = a.machine.snapshot();
    let restored = LockMachine::restore(&bytes).unwrap();
    assert_eq!(restored, a.machine);
    assert_eq!(restored.snapshot(), bytes);
    let mut b = Harness::with(restored);
    b.now = a.now;
    for step in 0..20 {
        let (ra, rb) = (a.advance(300), b.advance(300));
        assert_eq!(ra, rb);
        assert_eq!(a.effects, b.effects, "step {step}");
        let (ra, rb) = (a.acquire("b", "eve", 1_000), b.acquire("b", "eve", 1_000));
        assert_eq!(ra, rb);
        assert_eq!(a.effects, b.effects);
    }
    assert_eq!(
        a.machine.status(&key("a"), a.now),
        b.machine.status(&key("a"), b.now)
    );
}

#[test]
fn damaged_snapshots_are_refused_with_a_reason() {
    let bytes = busy_machine().machine.snapshot();
    assert_eq!(
        LockMachine::restore(b"nope").err(),
        Some(SnapshotError::BadMagic)
    );
    let mut flipped = bytes.clone();
    flipped[10] ^= 0x40;
    assert_eq!(
        LockMachine::restore(&flipped).err(),
        Some(SnapshotError::Checksum)
    );
    let mut future = bytes.clone();
    future[4] = 9;
    assert_eq!(
        LockMachine::restore(&future).err(),
        Some(SnapshotError::UnsupportedVersion(9))
    );
    for cut in 0..bytes.len() {
        assert!(LockMachine::restore(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn an_empty_machine_round_trips() {
    let m = LockMachine::default();
    assert_eq!(LockMachine::restore(&m.snapshot()).unwrap(), m);
}
