//! A lock group's Raft plumbing: the openraft type configuration, the log store over the
//! node's shared write-ahead log, and the state machine over `lock-core` with durable
//! snapshot files.
//!
//! Modules: `codec` (entry and metadata bytes), `log_store`, `state_machine`,
//! `snapshot_file`, `wait_board` (pushes each queued acquire's outcome to its caller).

pub(crate) mod codec;
mod log_store;
mod snapshot_file;
mod state_machine;
mod wait_board;

pub use log_store::LogStore;
pub use state_machine::{Applied, StateMachine};
pub use wait_board::{WaitBoard, WaitOutcome};

openraft::declare_raft_types!(
    /// The openraft types of a Lockplane lock group: entries carry `lock-core` proposals
    /// and answer `lock-core` responses.
    pub TypeConfig:
        D = lock_core::Proposal,
        R = lock_core::Response,
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
