//! Unit tests of each operation through the public API, one module per operation.
#![allow(missing_docs, clippy::unwrap_used)]

mod acquire;
mod expire;
mod release;
mod renew;
mod session;
mod snapshot;
mod wait;

use lock_core::{
    Acquire, Command, Effect, FencingToken, Grant, LockKey, LockMachine, Millis, Proposal, Reply,
    Response, SessionId, TenantId, WaitId,
};

/// A machine plus the log position and clock a leader would supply.
pub struct Harness {
    pub machine: LockMachine,
    pub index: u64,
    /// The term of the current leader; raise it to simulate a leader change.
    pub term: u64,
    pub now: Millis,
    /// Effects of the last applied entry.
    pub effects: Vec<Effect>,
}

pub const TENANT: TenantId = TenantId(7);

pub fn key(name: &str) -> LockKey {
    LockKey::new(TENANT, name)
}

impl Default for Harness {
    fn default() -> Self {
        Self::with(LockMachine::default())
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(machine: LockMachine) -> Self {
        let index = machine.last_applied();
        Self {
            machine,
            index,
            term: 1,
            now: 1_000,
            effects: Vec::new(),
        }
    }

    /// Applies `command` as the next entry at the current time.
    pub fn run(&mut self, command: Command) -> Response {
        self.index += 1;
        self.effects.clear();
        self.machine.apply(
            self.index,
            self.term,
            Proposal::new(self.now, command),
            &mut self.effects,
        )
    }

    /// Moves the leader's clock forward and applies a tick.
    pub fn advance(&mut self, ms: Millis) -> Response {
        self.now += ms;
        self.run(Command::Tick)
    }

    pub fn acquire(&mut self, name: &str, owner: &str, ttl_ms: Millis) -> Response {
        self.run(Command::Acquire(Acquire::new(key(name), owner, ttl_ms)))
    }

    pub fn acquire_with(
        &mut self,
        name: &str,
        owner: &str,
        f: impl FnOnce(&mut Acquire),
    ) -> Response {
        let mut a = Acquire::new(key(name), owner, 10_000);
        f(&mut a);
        self.run(Command::Acquire(a))
    }

    pub fn wait(&mut self, name: &str, owner: &str, wait_ms: Millis) -> WaitId {
        match self.acquire_with(name, owner, |a| a.wait_ms = wait_ms) {
            Ok(Reply::Queued { wait, .. }) => wait,
            other => panic!("expected to queue, got {other:?}"),
        }
    }

    pub fn release(&mut self, name: &str, owner: &str, token: FencingToken) -> Response {
        self.run(Command::Release {
            key: key(name),
            owner: owner.into(),
            token,
        })
    }

    pub fn session(&mut self, id: u64, ttl_ms: Millis) -> SessionId {
        let id = SessionId(id);
        let reply = self.run(Command::CreateSession {
            id,
            tenant: TENANT,
            ttl_ms,
        });
        assert_eq!(reply, Ok(Reply::SessionCreated { ttl_ms }));
        id
    }

    /// The grants pushed to waiters by the last entry, as `(key, wait, owner, token)`.
    pub fn pushed_grants(&self) -> Vec<(String, WaitId, String, FencingToken)> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Granted {
                    key,
                    wait,
                    owner,
                    token,
                    ..
                } => Some((key.name.to_string(), *wait, owner.to_string(), *token)),
                _ => None,
            })
            .collect()
    }

    pub fn holder_of(&self, name: &str) -> Option<(String, FencingToken)> {
        self.machine
            .status(&key(name), self.now)
            .holder
            .map(|h| (h.owner, h.token))
    }
}

pub fn granted(response: Response) -> Grant {
    match response {
        Ok(Reply::Granted(grant)) => grant,
        other => panic!("expected a grant, got {other:?}"),
    }
}
