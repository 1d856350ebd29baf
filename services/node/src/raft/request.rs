//! What a group's log entries carry and what applying them answers: lock commands for the
//! lock groups, shard-map commands for the meta group. One entry type for every group, so
//! all of them share the node's log and transport.

use lock_core::Proposal;
use serde::{Deserialize, Serialize};
use shard_map::{MetaCommand, MetaError, MetaReply};

/// The payload of a normal log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A lock group's command, stamped with the leader's time.
    Lock(Proposal),
    /// A change to the shard map (meta group only).
    Meta(MetaCommand),
}

/// What applying a [`Request`] answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A lock group's response.
    Lock(lock_core::Response),
    /// The meta group's response.
    Meta(Result<MetaReply, MetaError>),
    /// The request reached a group of the other kind; nothing was applied.
    Misrouted,
}
