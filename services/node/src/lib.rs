//! # lockplane-node
//!
//! A Lockplane node hosts replicas of many Raft lock groups. This crate grows with issue #3;
//! today it holds:
//!
//! - [`wal`]: one write-ahead log shared by every group on the node, with group commit (one
//!   `fdatasync` covers the writes of all groups that arrived meanwhile), CRC-checked
//!   records, torn-tail recovery after `kill -9`, segment rotation and deletion;
//! - [`raft`]: a lock group's openraft storage: the log store over the WAL and the state
//!   machine over `lock-core` with durable, atomically replaced snapshot files;
//! - [`transport`]: Raft messages between nodes, tagged by group, over a swappable
//!   [`transport::Transport`]; [`group`]: one lock group (Raft + leader duties such as
//!   ticking expiry when due); [`host`]: a node's groups over one log; [`clock`];
//! - [`audit`]: each group leader publishes its group's audit outbox to Kafka.
//!
//! What it must never do: acknowledge a write (fire its callback) before the bytes are on
//! disk, or keep going after a failed fsync.

pub mod audit;
pub mod clock;
pub mod election;
pub mod group;
pub mod grpc;
pub mod host;
pub mod membership;
pub mod metrics;
pub mod pre_vote;
pub mod quorum;
pub mod raft;
pub mod server;
pub mod service;
pub mod transport;
pub mod wal;
