//! # shard-map
//!
//! The shard map every Lockplane process routes by: how many lock groups there are, which
//! nodes hold each group's replicas, where each node listens and in which region. The meta
//! group (group 0) replicates it, with the tenants, their API-key hashes and quotas; [`ShardMap::apply`] is what that group applies, pure and
//! deterministic like `lock-core`.
//!
//! Modules: [`map`] (the map and its queries), [`command`] (the meta group's commands and
//! their errors), [`access`] (applying the commands on tenants, API keys, quotas and the
//! admin token), [`hash`] (which group holds a key), [`tenant`] (tenants, the hashes of
//! their API keys, quotas).
//!
//! What it must never do: I/O, clocks, async, or depend on a service crate.

pub mod access;
pub mod command;
pub mod hash;
pub mod map;
pub mod tenant;

pub use command::{MetaCommand, MetaError, MetaReply};
pub use hash::ShardRing;
pub use map::{GroupId, META_GROUP, NodeId, NodeInfo, ShardMap};
pub use tenant::{KeyHash, Tenant, TenantId, key_hash, quota_share};
