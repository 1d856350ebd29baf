//! What applying one command answers to its proposer, and what status queries return.

use serde::{Deserialize, Serialize};

use crate::error::{Holder, LockError};
use crate::types::{FencingToken, LockKey, Millis, SessionId, WaitId};

/// The answer to the proposer of one entry.
pub type Response = Result<Reply, LockError>;

/// A successful outcome, one variant per command family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The lock is the caller's.
    Granted(Grant),
    /// The caller is in the key's FIFO queue; the grant arrives as [`crate::Effect::Granted`].
    Queued {
        /// Names the wait for cancel and for matching the later grant.
        wait: WaitId,
        /// Waiters ahead of this one, plus one.
        position: u32,
        /// The deadline this call asked for (leader time): the wait lasts at least until
        /// then, or longer if another call by the same waiter renewed it further. The
        /// caller abandons the wait with it (`Command::AbandonWait`).
        deadline: Millis,
    },
    /// An abandoned wait stays queued: a later acquire renewed it until `deadline`.
    WaitRenewed {
        /// The wait's deadline now.
        deadline: Millis,
    },
    /// The lease was extended.
    Renewed {
        /// The unchanged fencing token.
        token: FencingToken,
        /// The lease length now in force.
        ttl_ms: Millis,
    },
    /// The lock was given up (and possibly handed to the next waiter).
    Released,
    /// The wait left the queue.
    WaitCancelled,
    /// The session exists (newly, or already with the same tenant and TTL).
    SessionCreated {
        /// The session's TTL.
        ttl_ms: Millis,
    },
    /// The session lives another TTL.
    SessionKeptAlive {
        /// The session's TTL.
        ttl_ms: Millis,
    },
    /// Each session of a `KeepAliveMany`, in order: its TTL, or why it was not kept alive.
    SessionsKeptAlive {
        /// One outcome per session asked for.
        outcomes: Vec<Result<Millis, LockError>>,
    },
    /// The session ended; its locks were released and its waits dropped.
    SessionClosed,
    /// Housekeeping entries (tick, token floor) answer this.
    Done,
}

/// A granted lock as its holder sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The fencing token of this grant.
    pub token: FencingToken,
    /// The lease length: the lock's TTL, or its session's.
    pub ttl_ms: Millis,
    /// The session the lock is bound to, if any.
    pub session: Option<SessionId>,
}

/// A key's state for `GET /v1/locks/{key}` and listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockStatus {
    /// The key.
    pub key: LockKey,
    /// The current holder, if any.
    pub holder: Option<Holder>,
    /// Time left on the holder's lease (its own or its session's), as of the query's time.
    pub ttl_remaining_ms: Option<Millis>,
    /// How many callers are queued.
    pub waiters: u32,
}
