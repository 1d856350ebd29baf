//! Memory per held lock: resident-set growth while 1,000,000 locks are held.
//!
//! `cargo bench -p lock-core --bench memory` (set `LOCKS` to change the count, and
//! `ORDER=sequential` to acquire keys in name order instead of a shuffled order). Measures
//! RSS from /proc/self/statm, so allocator overhead and fragmentation count too.
//!
//! Name order is the worst case for the ordered lock table: appends split B-tree leaves
//! half full. Clients do not acquire keys in name order, so shuffled is the default. The
//! leader clock advances 1 ms every 100 acquires, so lease deadlines grow as they would
//! under load and the expiry index is appended to, its own worst case.

use std::time::Instant;

use lock_core::{Acquire, Command, LockKey, LockMachine, Proposal, TenantId};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let locks: u64 = std::env::var("LOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let sequential = std::env::var("ORDER").is_ok_and(|v| v == "sequential");
    let order: Vec<u64> = if sequential {
        (0..locks).collect()
    } else {
        shuffled(locks)
    };
    let tenant = TenantId(1);
    let mut machine = LockMachine::default();
    let mut effects = Vec::with_capacity(16);
    let before = rss_bytes();
    let started = Instant::now();
    for (n, &i) in order.iter().enumerate() {
        let key = LockKey::new(tenant, format!("orders/{i:08}"));
        let acquire = Acquire::new(key, format!("client-{}", i % 1_000), 3_600_000);
        effects.clear();
        if let Err(e) = machine.apply(
            n as u64 + 1,
            1,
            Proposal::new(1_000 + n as u64 / 100, Command::Acquire(acquire)),
            &mut effects,
        ) {
            eprintln!("acquire {i} failed: {e}");
            std::process::exit(1);
        }
    }
    let elapsed = started.elapsed();
    let after = rss_bytes();
    let held = machine.counts().held as u64;
    let snap_started = Instant::now();
    let snapshot = machine.snapshot();
    let snap_elapsed = snap_started.elapsed();
    let restore_started = Instant::now();
    let restored = LockMachine::restore(&snapshot).map(|m| m.counts().held);
    let restore_elapsed = restore_started.elapsed();
    let order = if sequential {
        "name order"
    } else {
        "shuffled order"
    };
    eprintln!("held locks:          {held} (acquired in {order})");
    let (key, owner) = ("orders/00000000", "client-0");
    eprintln!(
        "key/owner example:   {key} / {owner} ({} + {} bytes)",
        key.len(),
        owner.len()
    );
    eprintln!("rss growth:          {} MiB", (after - before) >> 20);
    eprintln!(
        "bytes per held lock: {:.1}",
        (after - before) as f64 / held as f64
    );
    eprintln!(
        "acquire rate:        {:.0} /s",
        held as f64 / elapsed.as_secs_f64()
    );
    eprintln!(
        "snapshot:            {:.1} bytes/lock, {:?}",
        snapshot.len() as f64 / held as f64,
        snap_elapsed
    );
    eprintln!(
        "restore:             {:?} ({restored:?} held)",
        restore_elapsed
    );
}

/// 0..n in a fixed pseudo-random order (a Fisher-Yates shuffle driven by an LCG).
fn shuffled(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..v.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = (state >> 33) as usize % (i + 1);
        v.swap(i, j);
    }
    v
}
