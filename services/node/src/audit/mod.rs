//! The audit trail's first leg: every group's leader publishes the events of its group's
//! outbox ([`crate::raft::Outbox`]) to a Kafka topic, one message per applied change,
//! and records in the group's log how far the broker confirmed.
//!
//! Modules: `event` (an outbox event as the `lockplane.audit.v1.AuditEvent` message and its
//! key), `producer` (the idempotent Kafka producer, topic creation), `publisher` (one
//! group's loop). See docs/decisions/0028-audit-outbox.md.

mod event;
mod producer;
mod publisher;

use std::sync::atomic::AtomicU64;

pub use event::{MAX_TEXT, NoTenants, Origin, SCHEMA_VERSION, Tenants, to_event};
pub use producer::{Producer, ensure_topic};
pub use publisher::{Publisher, Publishing};

/// The topic audit events go to unless configured otherwise.
pub const DEFAULT_TOPIC: &str = "lock-audit";

/// The most audit events a group keeps unpublished unless configured otherwise.
pub const DEFAULT_BACKLOG_LIMIT: usize = 1_000_000;

/// Where and how a node publishes its groups' audit events.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Kafka bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// Partitions of the topic when this node creates it.
    pub partitions: i32,
    /// Replicas of each partition when this node creates the topic.
    pub replication: i32,
    /// The most events a group keeps unpublished; past it the oldest are dropped and
    /// counted, and the group keeps serving.
    pub backlog_limit: usize,
}

impl AuditConfig {
    /// Publishing to `brokers` with the defaults: topic `lock-audit` (created with 12
    /// partitions, one replica, when missing) and 1,000,000 events of backlog per group.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: DEFAULT_TOPIC.to_string(),
            partitions: 12,
            replication: 1,
            backlog_limit: DEFAULT_BACKLOG_LIMIT,
        }
    }
}

/// A node's publishing counters, across its groups.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Events the broker confirmed.
    pub published: AtomicU64,
    /// Batches the broker failed (each is sent again).
    pub failures: AtomicU64,
}
