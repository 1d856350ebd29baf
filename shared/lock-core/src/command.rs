//! What a group's log carries: a command plus the leader's clock at proposal time.

use serde::{Deserialize, Serialize};

use crate::types::{FencingToken, LockKey, Millis, SessionId, TenantId, WaitId};

/// One log entry's payload. The leader stamps `now` from its clock when it proposes; every
/// replica applies the entry with that same time, so the machine never reads a clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposing leader's clock, in milliseconds.
    pub now: Millis,
    /// What to do.
    pub command: Command,
}

impl Proposal {
    /// Pairs a command with the leader's time.
    pub fn new(now: Millis, command: Command) -> Self {
        Self { now, command }
    }
}

/// Every change the lock state machine knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Take a lock, or join its FIFO queue when `wait_ms > 0`.
    Acquire(Acquire),
    /// Extend the holder's lease; only the holder's `(owner, token)` is accepted.
    Renew {
        /// The lock.
        key: LockKey,
        /// The holder's owner string.
        owner: String,
        /// The holder's fencing token.
        token: FencingToken,
        /// The new lease length, counted from this entry's time.
        ttl_ms: Millis,
    },
    /// Give a lock up; the next waiter, if any, is granted in the same entry.
    Release {
        /// The lock.
        key: LockKey,
        /// The holder's owner string.
        owner: String,
        /// The holder's fencing token.
        token: FencingToken,
    },
    /// Leave a key's queue (caller gave up, timed out or disconnected).
    CancelWait {
        /// The lock waited on.
        key: LockKey,
        /// The wait, as returned by the acquire that queued it.
        wait: WaitId,
    },
    /// Open a session with the given id.
    CreateSession {
        /// The id the proposer chose; unique across the cluster.
        id: SessionId,
        /// The session's tenant; only this tenant may use it.
        tenant: TenantId,
        /// How long the session lives after its last keepalive.
        ttl_ms: Millis,
    },
    /// Keep a session alive for another TTL.
    KeepAlive {
        /// The session.
        id: SessionId,
        /// The caller's tenant, checked against the session's.
        tenant: TenantId,
    },
    /// End a session: its locks are released and handed on, its waits dropped.
    CloseSession {
        /// The session.
        id: SessionId,
        /// The caller's tenant, checked against the session's.
        tenant: TenantId,
    },
    /// Carry the leader's time forward when no other entry does. Every entry first expires
    /// what is due at its time (leases, sessions, waits, lock-delays, remembered request
    /// ids); the leader proposes a tick when [`crate::LockMachine::next_due`] arrives.
    /// Followers never expire by their own clock.
    Tick,
    /// Raise the group's fencing-token floor, so that a key moved in from another group
    /// only ever gets tokens above the ones it had there.
    RaiseTokenFloor {
        /// The highest token the source group ever issued.
        floor: FencingToken,
    },
    /// Keep many sessions alive for another TTL each, in one entry (last of the variants,
    /// so the log encoding of the others is unchanged): a gateway folds the
    /// keepalives that arrive while one is committing, so heartbeats cost entries per
    /// group, not per session. Each is checked and answered on its own.
    KeepAliveMany {
        /// The sessions, each with the caller's tenant (checked against the session's).
        sessions: Vec<(SessionId, TenantId)>,
    },
    /// The caller that queued or last renewed a wait until `deadline` is gone (it
    /// disconnected, or its own request deadline passed): the wait leaves the queue, unless
    /// a later acquire by the same waiter renewed it past `deadline`, in which case that
    /// caller now holds the place and nothing changes. (After `KeepAliveMany`, so the log
    /// encoding of the others is unchanged.)
    AbandonWait {
        /// The lock waited on.
        key: LockKey,
        /// The wait, as returned by the acquire that queued it.
        wait: WaitId,
        /// The wait's deadline as the gone caller last knew it.
        deadline: Millis,
    },
}

/// The arguments of [`Command::Acquire`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acquire {
    /// The lock.
    pub key: LockKey,
    /// Who is asking; the holder must present it again to renew or release.
    pub owner: String,
    /// Lease length after the grant (ignored for session-bound locks, which live as long
    /// as their session, but still validated).
    pub ttl_ms: Millis,
    /// How long to wait in the queue; 0 answers a conflict at once.
    pub wait_ms: Millis,
    /// Bind the lock and the wait to this session.
    pub session: Option<SessionId>,
    /// Idempotency key: a retry with the same id gets the same grant or wait.
    pub request_id: Option<String>,
    /// After this grant's lease *expires*, keep the key ungranted this long.
    pub lock_delay_ms: Millis,
    /// The most locks the key's tenant may hold in this group (its share of the tenant's
    /// quota, set by the gateway); `None` for no bound. Checked before a grant at once;
    /// waits are not counted (a queued key is already held by the tenant, except in
    /// lock-delay).
    pub tenant_quota: Option<u64>,
}

impl Acquire {
    /// An acquire with no wait, session, request id or lock-delay.
    pub fn new(key: LockKey, owner: impl Into<String>, ttl_ms: Millis) -> Self {
        Self {
            key,
            owner: owner.into(),
            ttl_ms,
            wait_ms: 0,
            session: None,
            request_id: None,
            lock_delay_ms: 0,
            tenant_quota: None,
        }
    }
}
