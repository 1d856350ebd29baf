//! Single-thread apply rate of the lock state machine.
//!
//! `cargo bench -p lock-core --bench apply`. Commands are built outside the timed region:
//! what is timed is `LockMachine::apply`, as a node's apply loop would call it.

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use lock_core::{Acquire, Command, Effect, FencingToken, LockKey, LockMachine, Proposal, TenantId};

fn main() {
    divan::main();
}

const TENANT: TenantId = TenantId(1);
const NOW: u64 = 1_000_000;

/// Acquire then release of `PAIRS` distinct keys: 2 × `PAIRS` commands per iteration.
#[divan::bench(args = [10_000])]
fn acquire_release_distinct_keys(bencher: Bencher, pairs: u64) {
    bencher
        .counter(ItemsCount::new(2 * pairs))
        .with_inputs(|| {
            let mut commands = Vec::with_capacity(2 * pairs as usize);
            for i in 0..pairs {
                let key = LockKey::new(TENANT, format!("orders/{i:08}"));
                let owner = format!("client-{}", i % 64);
                commands.push(Command::Acquire(Acquire::new(
                    key.clone(),
                    owner.clone(),
                    30_000,
                )));
                // The grant is applied at index 2i+1 and its token is that index.
                let token = FencingToken(2 * i + 1);
                commands.push(Command::Release { key, owner, token });
            }
            (LockMachine::default(), commands, Vec::with_capacity(16))
        })
        .bench_local_values(
            |(mut machine, commands, mut effects): (_, Vec<Command>, Vec<Effect>)| {
                for (i, command) in commands.into_iter().enumerate() {
                    effects.clear();
                    let response =
                        machine.apply(i as u64 + 1, 1, Proposal::new(NOW, command), &mut effects);
                    black_box(&response);
                }
                machine
            },
        );
}

/// One hot key with `waiters` queued: every release hands the lock to exactly the next
/// waiter, `waiters` hand-overs per iteration.
#[divan::bench(args = [1_000])]
fn hot_key_handoff(bencher: Bencher, waiters: u64) {
    bencher
        .counter(ItemsCount::new(waiters))
        .with_inputs(|| {
            let key = LockKey::new(TENANT, "hot");
            let mut machine = LockMachine::default();
            let mut effects = Vec::new();
            let mut index = 0;
            let mut apply = |machine: &mut LockMachine, owner: String, wait_ms| {
                index += 1;
                let mut a = Acquire::new(key.clone(), owner, 30_000);
                a.wait_ms = wait_ms;
                let proposal = Proposal::new(NOW, Command::Acquire(a));
                effects.clear();
                machine.apply(index, 1, proposal, &mut effects).map(|_| ())
            };
            apply(&mut machine, "holder".into(), 0).expect("the first acquire is granted");
            for w in 0..waiters {
                apply(&mut machine, format!("waiter-{w}"), 300_000).expect("waiters queue");
            }
            let mut releases = Vec::with_capacity(waiters as usize);
            let mut token = 1;
            let mut owner = "holder".to_string();
            for w in 0..waiters {
                let release_index = waiters + 2 + w;
                releases.push(Command::Release {
                    key: key.clone(),
                    owner,
                    token: FencingToken(token),
                });
                token = release_index;
                owner = format!("waiter-{w}");
            }
            (machine, releases, index, effects)
        })
        .bench_local_values(
            |(mut machine, releases, first, mut effects): (_, Vec<Command>, u64, Vec<Effect>)| {
                for (i, command) in releases.into_iter().enumerate() {
                    effects.clear();
                    let response = machine.apply(
                        first + 1 + i as u64,
                        1,
                        Proposal::new(NOW, command),
                        &mut effects,
                    );
                    debug_assert!(response.is_ok(), "{response:?}");
                    black_box(&response);
                }
                machine
            },
        );
}
