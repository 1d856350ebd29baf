//! What every long-running Lockplane process (node, gateway, audit consumer, `dev`) sets up
//! once, in one place: its log lines ([`logging`]), the Prometheus text it serves on
//! `/metrics` ([`metrics`]) and its own CPU, memory and descriptors ([`process`]).
//!
//! `lock-core` and `shard-map` never depend on this crate: they stay free of I/O.

pub mod logging;
pub mod metrics;
pub mod process;
