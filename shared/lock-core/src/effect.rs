//! What an applied entry asks the world to do: push grants, report lost locks, invalidate
//! cached status, and record the change in the audit trail.

use serde::{Deserialize, Serialize};

use crate::error::LockError;
use crate::name::Name;
use crate::types::{FencingToken, LockKey, LogIndex, Millis, SessionId, TenantId, WaitId};

/// One consequence of applying an entry, for the host to carry out after the apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// A queued caller was granted the lock: push it to them (one waiter, never the herd).
    Granted {
        /// The lock.
        key: LockKey,
        /// The wait that was granted.
        wait: WaitId,
        /// The new holder.
        owner: Name,
        /// The holder's session, if any.
        session: Option<SessionId>,
        /// The grant's fencing token.
        token: FencingToken,
        /// The lease length.
        ttl_ms: Millis,
    },
    /// A queued caller left the queue without a grant.
    WaitEnded {
        /// The lock waited on.
        key: LockKey,
        /// The wait.
        wait: WaitId,
        /// Why it ended.
        reason: WaitEndReason,
    },
    /// A holder lost its lock without releasing it: tell it to stop using the token.
    Lost {
        /// The lock.
        key: LockKey,
        /// The former holder.
        owner: Name,
        /// The former holder's session, if any.
        session: Option<SessionId>,
        /// The token that is no longer valid.
        token: FencingToken,
        /// Why the lock was lost.
        reason: LostReason,
    },
    /// A session ended by expiry (its locks' [`Effect::Lost`] follow separately).
    SessionExpired {
        /// The session.
        id: SessionId,
    },
    /// The cached status of `key` is out of date as of `version` (the entry's index).
    Invalidate {
        /// The lock.
        key: LockKey,
        /// The log index of the change; newer versions win in the cache.
        version: LogIndex,
    },
    /// One row of the audit trail.
    Audit(AuditEvent),
}

/// Why a wait ended without a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitEndReason {
    /// Its `wait_ms` ran out.
    TimedOut,
    /// The caller cancelled it.
    Cancelled,
    /// Its session closed or expired.
    SessionEnded,
}

/// Why a holder lost its lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LostReason {
    /// The lock's own lease expired.
    Expired,
    /// The lock's session expired.
    SessionExpired,
    /// The lock's session was closed.
    SessionClosed,
}

/// One change, as the audit trail records it. `(index, seq)` is unique within a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The log index of the entry that made the change.
    pub index: LogIndex,
    /// The change's position among the entry's audit events, from 0.
    pub seq: u32,
    /// The entry's time (leader clock).
    pub at: Millis,
    /// The tenant concerned.
    pub tenant: TenantId,
    /// The change.
    pub change: Change,
}

/// The kinds of change the audit trail records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A lock was granted (at once, or to a waiter).
    Acquired {
        /// The key name.
        key: LockKey,
        /// The holder.
        owner: Name,
        /// The grant's token.
        token: FencingToken,
        /// The holder's session.
        session: Option<SessionId>,
        /// The lease length: the lock's TTL, or its session's.
        ttl_ms: Millis,
        /// The wait that was granted, if it came from the queue.
        wait: Option<WaitId>,
    },
    /// A caller joined a key's queue.
    Queued {
        /// The key.
        key: LockKey,
        /// The caller.
        owner: Name,
        /// The wait.
        wait: WaitId,
    },
    /// A wait left the queue without a grant.
    WaitEnded {
        /// The key.
        key: LockKey,
        /// The caller that waited.
        owner: Name,
        /// The wait.
        wait: WaitId,
        /// Why.
        reason: WaitEndReason,
    },
    /// A holder renewed its lease.
    Renewed {
        /// The key.
        key: LockKey,
        /// The holder.
        owner: Name,
        /// The holder's token.
        token: FencingToken,
        /// The new lease length.
        ttl_ms: Millis,
    },
    /// A holder released its lock.
    Released {
        /// The key.
        key: LockKey,
        /// The former holder.
        owner: Name,
        /// The released token.
        token: FencingToken,
    },
    /// A holder lost its lock to expiry or to its session's end.
    Lost {
        /// The key.
        key: LockKey,
        /// The former holder.
        owner: Name,
        /// The token that ended.
        token: FencingToken,
        /// Why.
        reason: LostReason,
    },
    /// A session was opened.
    SessionCreated {
        /// The session.
        id: SessionId,
        /// Its TTL.
        ttl_ms: Millis,
    },
    /// A session was kept alive.
    SessionKeptAlive {
        /// The session.
        id: SessionId,
    },
    /// A session ended.
    SessionEnded {
        /// The session.
        id: SessionId,
        /// True when it expired, false when it was closed.
        expired: bool,
    },
    /// An acquire, renew or release of a key was refused (held, stale token, quota, a
    /// limit); nothing else changed. Recorded so that an incident shows who was turned
    /// away, not only who got in.
    Rejected {
        /// The key.
        key: LockKey,
        /// The caller.
        owner: Name,
        /// The token the caller presented (renew and release).
        token: Option<FencingToken>,
        /// Why it was refused.
        error: LockError,
    },
}
