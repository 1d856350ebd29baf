//! The shard map: groups, their replicas, and the nodes that host them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::tenant::{KeyHash, Tenant, TenantId};

/// A Raft group's id: 0 is the meta group, `1..=shards` the lock groups.
pub type GroupId = u32;

/// A node's id, the same in every group it is a member of.
pub type NodeId = u64;

/// The meta group's id.
pub const META_GROUP: GroupId = 0;

/// Where a node listens (Raft and the lock API share the address) and where it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `host:port` other nodes and gateways reach it at.
    pub addr: String,
    /// The region it runs in (one coordinator voter per region).
    pub region: String,
}

/// The cluster's layout as the meta group last applied it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    /// The log index of the last change (0 before the first); newer maps win.
    pub version: u64,
    /// Lock groups, numbered `1..=shards` (0 until the cluster is initialized).
    pub shards: u32,
    /// Every node the cluster knows, by id.
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// The voters of each group, the meta group included.
    pub placement: BTreeMap<GroupId, BTreeSet<NodeId>>,
    /// Every tenant, by id.
    pub tenants: BTreeMap<TenantId, Tenant>,
    /// The SHA-256 of the admin token administration calls must present; `None` until the
    /// cluster is bootstrapped.
    pub admin_token_hash: Option<KeyHash>,
}

impl ShardMap {
    /// True once the cluster has been initialized.
    pub fn is_initialized(&self) -> bool {
        self.shards > 0
    }

    /// The voters of `group` (empty when unknown).
    pub fn voters(&self, group: GroupId) -> BTreeSet<NodeId> {
        self.placement.get(&group).cloned().unwrap_or_default()
    }

    /// The groups, meta included, that `node` holds a replica of.
    pub fn groups_of(&self, node: NodeId) -> Vec<GroupId> {
        self.placement
            .iter()
            .filter(|(_, voters)| voters.contains(&node))
            .map(|(group, _)| *group)
            .collect()
    }

    /// The tenant an API key with hash `hash` acts as.
    pub fn tenant_of(&self, hash: &KeyHash) -> Option<TenantId> {
        self.tenants
            .iter()
            .find(|(_, t)| t.key_hashes.contains(hash))
            .map(|(id, _)| *id)
    }

    /// The tenant named `name`.
    pub fn tenant_named(&self, name: &str) -> Option<TenantId> {
        self.tenants
            .iter()
            .find(|(_, t)| t.name == name)
            .map(|(id, _)| *id)
    }

    /// The address of `node`, if known.
    pub fn addr(&self, node: NodeId) -> Option<&str> {
        self.nodes.get(&node).map(|n| n.addr.as_str())
    }
}
