//! Typed rejections of commands, and failures to read a snapshot.

use serde::{Deserialize, Serialize};

use crate::types::{FencingToken, LogIndex, Millis, SessionId};

/// Who holds a key, as told to a caller that conflicts with them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holder's owner string.
    pub owner: String,
    /// The holder's fencing token.
    pub token: FencingToken,
    /// The holder's session, if the lock is bound to one.
    pub session: Option<SessionId>,
}

/// Why a command was refused. A refused command changes nothing.
///
/// Callers map each variant to one HTTP status / gRPC code in one table (the gateway's);
/// this crate only names the reasons.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum LockError {
    /// A field is outside what the machine accepts.
    #[error("invalid {field}: {problem}")]
    Invalid {
        /// The offending field, spelled as in the API.
        field: Field,
        /// What is wrong with it.
        problem: Problem,
    },
    /// The key is held by someone else and the caller did not ask to wait.
    #[error("lock is held")]
    Held {
        /// The current holder.
        holder: Holder,
    },
    /// The key is free but in its lock-delay after an expiry.
    #[error("lock is in lock-delay until {until_ms}")]
    LockDelayed {
        /// When the key can be granted again, on the leader's clock.
        until_ms: Millis,
    },
    /// The key is not held by anyone.
    #[error("lock is not held")]
    NotHeld,
    /// The key is held, but not with this `(owner, token)`: a stale or foreign holder.
    #[error("caller is not the holder")]
    NotHolder,
    /// The key's queue is full.
    #[error("too many waiters on this key (at most {max})")]
    TooManyWaiters {
        /// The configured bound.
        max: u32,
    },
    /// The session already holds or waits on as many locks as it may.
    #[error("too many locks in this session (at most {max})")]
    TooManyLocksInSession {
        /// The configured bound.
        max: u32,
    },
    /// The tenant already holds its quota of locks in this group.
    #[error("the tenant holds its quota of locks in this lock group ({quota})")]
    TenantQuota {
        /// The tenant's bound in this group.
        quota: u64,
    },
    /// No such session for this tenant (never created, closed or expired).
    #[error("session {0:?} not found")]
    SessionNotFound(SessionId),
    /// A session with this id exists with another tenant or TTL.
    #[error("session {0:?} already exists with other settings")]
    SessionConflict(SessionId),
    /// No such wait in the key's queue (already granted, cancelled or timed out).
    #[error("wait not found")]
    WaitNotFound,
    /// The `request_id` was used before for a different key or owner.
    #[error("request_id was already used for another request")]
    RequestIdReused,
    /// The entry's index is not after the last applied one; nothing was applied.
    #[error("log index {index} is not after the last applied index {last_applied}")]
    IndexNotIncreasing {
        /// The index given.
        index: LogIndex,
        /// The last index applied.
        last_applied: LogIndex,
    },
}

/// The request fields a [`LockError::Invalid`] can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Field {
    /// The lock key.
    Key,
    /// The owner string.
    Owner,
    /// The lease length.
    TtlMs,
    /// The wait length.
    WaitMs,
    /// The lock-delay.
    LockDelayMs,
    /// The idempotency key.
    RequestId,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Key => "key",
            Field::Owner => "owner",
            Field::TtlMs => "ttl_ms",
            Field::WaitMs => "wait_ms",
            Field::LockDelayMs => "lock_delay_ms",
            Field::RequestId => "request_id",
        })
    }
}

/// What is wrong with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Problem {
    /// Empty where a value is required.
    #[error("must not be empty")]
    Empty,
    /// Longer than the limit, in bytes.
    #[error("is {len} bytes, at most {max} allowed")]
    TooLong {
        /// The length given.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// Contains a control character.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// A number outside its allowed range.
    #[error("{value} is outside {min}..={max}")]
    OutOfRange {
        /// The value given.
        value: u64,
        /// The smallest allowed.
        min: u64,
        /// The largest allowed.
        max: u64,
    },
}

/// Why snapshot bytes could not be restored. Nothing is restored when this is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not start with the snapshot magic.
    #[error("not a lock-core snapshot")]
    BadMagic,
    /// Written by a format version this build cannot read.
    #[error("unsupported snapshot version {0}")]
    UnsupportedVersion(u16),
    /// The checksum does not match the contents.
    #[error("snapshot checksum mismatch")]
    Checksum,
    /// The bytes end before the snapshot does.
    #[error("snapshot is truncated")]
    Truncated,
    /// The contents decode but do not describe a valid state.
    #[error("snapshot is corrupt: {0}")]
    Corrupt(&'static str),
}
