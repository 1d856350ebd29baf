//! Identifiers and small value types shared by commands, replies, effects and state.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::name::Name;

/// Milliseconds on the leader's clock, as carried inside a [`crate::Proposal`].
///
/// The machine never reads a clock; every duration it tracks is measured in this unit.
pub type Millis = u64;

/// The Raft log index an entry is applied at. Strictly increasing per group.
pub type LogIndex = u64;

/// The Raft term of the leader that appended an entry. Never decreases along the log.
pub type Term = u64;

/// The tenant a key or session belongs to; keys of different tenants never meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TenantId(pub u64);

/// A session: one lease shared by many locks and waits (an etcd lease, a Chubby session).
///
/// Chosen by the proposer so that one session can be opened in several groups under one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub u64);

/// A fencing token: strictly increasing over every grant of a key, forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FencingToken(pub u64);

/// Names one queued acquire: the log index of the entry that queued it, unique in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WaitId(pub u64);

/// A lock's name scoped by its tenant. Ordered by tenant, then name, so that one tenant's
/// keys are contiguous for prefix listings.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LockKey {
    /// The tenant that owns the key.
    pub tenant: TenantId,
    /// The key as the tenant spelled it (UTF-8, validated on acquire).
    pub name: Name,
}

impl LockKey {
    /// Builds a key from a tenant and a name.
    pub fn new(tenant: TenantId, name: impl AsRef<str>) -> Self {
        Self {
            tenant,
            name: Name::new(name.as_ref()),
        }
    }
}

impl fmt::Debug for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:?}", self.tenant.0, self.name)
    }
}

impl fmt::Display for LockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant.0, self.name)
    }
}
