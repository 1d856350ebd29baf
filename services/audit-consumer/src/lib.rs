//! # lockplane-audit-consumer
//!
//! The audit trail's second leg: a Kafka consumer group reads the `lock-audit` topic (the
//! events every group leader publishes, docs/audit.md) and stores each event as one row of
//! PostgreSQL's `lock_audit`, deduplicated on the event's identity `(group_id, log_index,
//! position)`. A batch's offsets are committed only after its rows are: a consumer killed
//! at any moment repeats at most a batch, whose rows are skipped. Several consumers in
//! one group share the partitions.
//!
//! - [`schema`]: the embedded migrations of `migrations/` and the daily partitions;
//! - [`rows`]: events as rows (and messages that are not events);
//! - [`store`]: one batch in one transaction;
//! - [`consume`]: the loop; [`stats`]: its counters and lag for `/metrics`;
//! - [`queries`]: the questions `lockplane audit` answers;
//! - [`retention`]: old partitions exported to compressed files, then dropped.

pub mod consume;
pub mod queries;
pub mod retention;
pub mod rows;
pub mod schema;
pub mod stats;
pub mod store;

pub use consume::{ConsumerConfig, ConsumerError, check_postgres_url, connect, run};
pub use stats::ConsumerStats;
