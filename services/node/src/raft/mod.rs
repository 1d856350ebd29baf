//! A group's Raft plumbing: the openraft type configuration, the log store over the node's
//! shared write-ahead log, and the state machine over a [`GroupMachine`] (`lock-core`, or
//! the shard map) with durable snapshot files.
//!
//! Modules: `codec` (entry and metadata bytes), `request` (entry payloads and replies),
//! `machine` (the replicated machines), `log_store`, `state_machine`, `applied_log` (the
//! applied entries' effects by log index, for watchers), `outbox` (the audit events not yet
//! published), `change_counts` (applied changes by kind, for metrics), `snapshot_file`, `wait_board` (pushes each queued acquire's outcome to its caller).

pub mod applied_log;
mod change_counts;
pub(crate) mod codec;
mod log_store;
mod machine;
pub mod outbox;
mod request;
mod snapshot_file;
mod state_machine;
mod wait_board;

pub use applied_log::Applied;
pub use change_counts::{CHANGE_KINDS, ChangeCounts};
pub use log_store::LogStore;
pub use machine::GroupMachine;
pub use outbox::{EventPosition, Outbox, Recorded};
pub use request::{Reply, Request};
pub use state_machine::StateMachine;
pub use wait_board::{WaitBoard, WaitOutcome};

openraft::declare_raft_types!(
    /// The openraft types of every Lockplane group: entries carry a [`Request`] (a lock
    /// command, or a shard-map command in the meta group) and answer a [`Reply`].
    pub TypeConfig:
        D = Request,
        R = Reply,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// A node's id in every Raft group it is a member of.
pub type NodeId = u64;

/// One log entry of a lock group.
pub type Entry = openraft::Entry<TypeConfig>;

/// A log position of a lock group.
pub type LogId = openraft::LogId<NodeId>;

/// What openraft's storage calls fail with.
pub type StorageError = openraft::StorageError<NodeId>;
