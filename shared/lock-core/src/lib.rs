//! # lock-core
//!
//! The Lockplane lock state machine: what one Raft lock group applies. Pure and
//! deterministic: a command, the log index it is applied at and the leader's time carried
//! inside it go in; a response and a list of effects come out.
//!
//! Map of the crate:
//! - [`types`], [`name`], [`limits`]: identifiers, keys, inline names, and the bounds every
//!   replica enforces;
//! - [`command`]: the [`Proposal`] a log entry carries and every [`Command`];
//! - [`reply`], [`error`]: what the proposer is answered, including typed rejections;
//! - [`effect`]: grants to push, lost locks, cache invalidations and audit events;
//! - `machine`: the [`LockMachine`] state and dispatch; one module per operation:
//!   `acquire`, `renew`, `release` (and cancel-wait), `wait` (renewing and abandoning a
//!   place in a queue), `session`, `expire`, with `queue`
//!   (granting and FIFO hand-over), `timers` (the time-ordered deadline index) and `dedup`
//!   (the idempotency window);
//! - `query`: status reads and listings; `snapshot` and `codec`: versioned, checksummed
//!   snapshot bytes.
//!
//! What it must never do: read a clock, touch a file or socket, spawn, block, or depend on
//! anything beyond std, serde and thiserror (CI checks `cargo tree -p lock-core`). Every
//! replica applying the same entries must reach the same state and emit the same effects.

mod acquire;
mod codec;
pub mod command;
mod dedup;
pub mod effect;
pub mod error;
mod expire;
pub mod limits;
mod machine;
pub mod name;
mod query;
mod queue;
mod release;
mod renew;
pub mod reply;
mod session;
mod snapshot;
mod timers;
pub mod types;
mod validate;
mod wait;

pub use command::{Acquire, Command, Proposal};
pub use effect::{AuditEvent, Change, Effect, LostReason, WaitEndReason};
pub use error::{Field, Holder, LockError, Problem, SnapshotError};
pub use limits::Limits;
pub use machine::LockMachine;
pub use name::Name;
pub use query::Counts;
pub use reply::{Grant, LockStatus, Reply, Response};
pub use types::{FencingToken, LockKey, LogIndex, Millis, SessionId, TenantId, Term, WaitId};
