//! What a group's log entries carry and what applying them answers: lock commands for the
//! lock groups, shard-map commands for the meta group. One entry type for every group, so
//! all of them share the node's log and transport.

use lock_core::Proposal;
use serde::{Deserialize, Serialize};
use shard_map::{MetaCommand, MetaError, MetaReply};

use super::outbox::EventPosition;

/// The payload of a normal log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A lock group's command, stamped with the leader's time.
    Lock(Proposal),
    /// A change to the shard map (meta group only).
    Meta(MetaCommand),
    /// The group's leader saw the broker confirm every audit event up to `through`: every
    /// replica drops them from its outbox (any group kind; added last, so the encoding of
    /// the others is unchanged).
    Published {
        /// The last confirmed event.
        through: EventPosition,
    },
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
    /// The outbox took note of a [`Request::Published`].
    Published,
}
