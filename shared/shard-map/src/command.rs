//! What the meta group applies: initializing the cluster, nodes joining and leaving, and
//! recording where each group's replicas are after a membership change.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::map::{GroupId, META_GROUP, NodeId, NodeInfo, ShardMap};
use crate::tenant::{KeyHash, MAX_KEYS_PER_TENANT, TenantId};

/// Most lock groups a cluster may have.
pub const MAX_SHARDS: u32 = 1_024;

/// Longest node address or region name accepted.
const MAX_TEXT: usize = 256;

/// A change to the shard map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Make a new cluster: `shards` lock groups, every one (and the meta group) placed on
    /// all of `nodes`. Once initialized, the same command again is a no-op and a different
    /// one is refused.
    Init {
        /// Lock groups.
        shards: u32,
        /// The first nodes.
        nodes: BTreeMap<NodeId, NodeInfo>,
    },
    /// A node joins (or moves to a new address): record where it listens.
    RegisterNode {
        /// The node.
        id: NodeId,
        /// Its address and region.
        info: NodeInfo,
    },
    /// Record the voters of `group` after a membership change.
    SetPlacement {
        /// The group.
        group: GroupId,
        /// Its voters now.
        voters: BTreeSet<NodeId>,
    },
    /// Forget a node that no longer holds any replica.
    RemoveNode {
        /// The node.
        id: NodeId,
    },
    /// Create tenant `name` (if new) and let the API key hashed `key_hash` act as it. Again
    /// with the same name and hash is a no-op.
    AddTenantKey {
        /// The tenant's name.
        name: String,
        /// The SHA-256 of the new API key.
        key_hash: KeyHash,
    },
    /// Set (or with `None`, lift) the quota of held locks of tenant `name`.
    SetTenantQuota {
        /// The tenant's name.
        name: String,
        /// The most locks it may hold at once.
        max_locks: Option<u64>,
    },
    /// Stop the API key hashed `key_hash` from acting as tenant `name`. (This and the
    /// commands after it come last, so the log encoding of the others is unchanged.)
    RevokeTenantKey {
        /// The tenant's name.
        name: String,
        /// The SHA-256 of the key to revoke.
        key_hash: KeyHash,
    },
    /// Make the API key hashed `key_hash` tenant `name`'s only key: a rotation, after which
    /// every earlier key of the tenant stops working.
    ReplaceTenantKeys {
        /// The tenant's name.
        name: String,
        /// The SHA-256 of the new key.
        key_hash: KeyHash,
    },
    /// Set the hash of the admin token that administration calls must present. With
    /// `bootstrap`, only if the cluster has none yet (the first token); without, it
    /// replaces the current one (a rotation, which the caller authorized with the old).
    SetAdminToken {
        /// The SHA-256 of the token.
        token_hash: KeyHash,
        /// Refuse if a token is already set.
        bootstrap: bool,
    },
}

/// A successful meta command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    /// Applied (or already in effect); the map's version after it.
    Done {
        /// The map's version.
        version: u64,
    },
    /// The tenant the key now acts as.
    TenantKey {
        /// The tenant's id.
        tenant: TenantId,
        /// The map's version.
        version: u64,
    },
}

/// Why a meta command was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MetaError {
    /// The cluster has not been initialized yet.
    #[error("the cluster is not initialized")]
    NotInitialized,
    /// The cluster was initialized with other settings.
    #[error("the cluster is already initialized with {shards} shards")]
    AlreadyInitialized {
        /// The shard count in force.
        shards: u32,
    },
    /// A field is outside what the map accepts.
    #[error("invalid {field}: {problem}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// The command names a node the map does not know.
    #[error("node {0} is not registered")]
    UnknownNode(NodeId),
    /// The command names a group the cluster does not have.
    #[error("group {0} does not exist")]
    UnknownGroup(GroupId),
    /// The API key already acts as another tenant.
    #[error("the API key already belongs to tenant {0}")]
    KeyInUse(TenantId),
    /// The tenant has as many keys as it may.
    #[error("tenant {name} already has {MAX_KEYS_PER_TENANT} API keys")]
    TooManyKeys {
        /// The tenant.
        name: String,
    },
    /// The tenant has no API key with that hash.
    #[error("tenant {name} has no such API key")]
    UnknownKey {
        /// The tenant.
        name: String,
    },
    /// A first admin token was asked for, but the cluster already has one.
    #[error("the cluster already has an admin token")]
    AdminTokenSet,
    /// The node still holds replicas; move them first.
    #[error("node {id} still holds replicas of groups {groups:?}")]
    NodeInUse {
        /// The node.
        id: NodeId,
        /// The groups it is a voter of.
        groups: Vec<GroupId>,
    },
}

pub(crate) fn invalid(field: &str, problem: impl Into<String>) -> MetaError {
    MetaError::Invalid {
        field: field.to_string(),
        problem: problem.into(),
    }
}

fn check_node(id: NodeId, info: &NodeInfo) -> Result<(), MetaError> {
    if id == 0 {
        return Err(invalid("node id", "must be positive"));
    }
    if info.addr.is_empty() || info.addr.len() > MAX_TEXT {
        return Err(invalid("addr", format!("must be 1..={MAX_TEXT} bytes")));
    }
    if info.region.is_empty() || info.region.len() > MAX_TEXT {
        return Err(invalid("region", format!("must be 1..={MAX_TEXT} bytes")));
    }
    Ok(())
}

impl ShardMap {
    /// Applies `command` at log `index`. A refused command changes nothing.
    pub fn apply(&mut self, index: u64, command: MetaCommand) -> Result<MetaReply, MetaError> {
        match command {
            MetaCommand::Init { shards, nodes } => self.init(index, shards, nodes)?,
            MetaCommand::RegisterNode { id, info } => {
                self.require_initialized()?;
                check_node(id, &info)?;
                if self.nodes.get(&id) != Some(&info) {
                    self.nodes.insert(id, info);
                    self.version = index;
                }
            }
            MetaCommand::SetPlacement { group, voters } => {
                self.require_initialized()?;
                if group != META_GROUP && !(1..=self.shards).contains(&group) {
                    return Err(MetaError::UnknownGroup(group));
                }
                if voters.is_empty() {
                    return Err(invalid("voters", "must not be empty"));
                }
                if let Some(unknown) = voters.iter().find(|v| !self.nodes.contains_key(v)) {
                    return Err(MetaError::UnknownNode(*unknown));
                }
                if self.placement.get(&group) != Some(&voters) {
                    self.placement.insert(group, voters);
                    self.version = index;
                }
            }
            MetaCommand::RemoveNode { id } => {
                self.require_initialized()?;
                let groups = self.groups_of(id);
                if !groups.is_empty() {
                    return Err(MetaError::NodeInUse { id, groups });
                }
                if self.nodes.remove(&id).is_some() {
                    self.version = index;
                }
            }
            MetaCommand::AddTenantKey { .. }
            | MetaCommand::SetTenantQuota { .. }
            | MetaCommand::RevokeTenantKey { .. }
            | MetaCommand::ReplaceTenantKeys { .. }
            | MetaCommand::SetAdminToken { .. } => {
                self.require_initialized()?;
                return self.apply_access(index, command);
            }
        }
        Ok(MetaReply::Done {
            version: self.version,
        })
    }

    pub(crate) fn require_initialized(&self) -> Result<(), MetaError> {
        if self.is_initialized() {
            Ok(())
        } else {
            Err(MetaError::NotInitialized)
        }
    }

    fn init(
        &mut self,
        index: u64,
        shards: u32,
        nodes: BTreeMap<NodeId, NodeInfo>,
    ) -> Result<(), MetaError> {
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(invalid("shards", format!("must be in 1..={MAX_SHARDS}")));
        }
        if nodes.is_empty() {
            return Err(invalid("nodes", "must not be empty"));
        }
        for (id, info) in &nodes {
            check_node(*id, info)?;
        }
        if self.is_initialized() {
            let same = self.shards == shards
                && nodes
                    .iter()
                    .all(|(id, info)| self.nodes.get(id) == Some(info));
            return if same {
                Ok(())
            } else {
                Err(MetaError::AlreadyInitialized {
                    shards: self.shards,
                })
            };
        }
        let all: BTreeSet<NodeId> = nodes.keys().copied().collect();
        self.shards = shards;
        self.nodes = nodes;
        self.placement = (0..=shards).map(|g| (g, all.clone())).collect();
        self.version = index;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn info(port: u16) -> NodeInfo {
        NodeInfo {
            addr: format!("127.0.0.1:{port}"),
            region: "local".into(),
        }
    }

    fn three() -> BTreeMap<NodeId, NodeInfo> {
        (1..=3).map(|id| (id, info(7100 + id as u16))).collect()
    }

    pub(crate) fn initialized() -> ShardMap {
        let mut map = ShardMap::default();
        map.apply(
            5,
            MetaCommand::Init {
                shards: 4,
                nodes: three(),
            },
        )
        .unwrap();
        map
    }

    #[test]
    fn init_places_every_group_on_every_node_once() {
        let map = initialized();
        assert_eq!((map.shards, map.version), (4, 5));
        assert_eq!(map.placement.len(), 5);
        assert_eq!(map.voters(3), [1, 2, 3].into());
        assert_eq!(map.groups_of(2), vec![0, 1, 2, 3, 4]);
        let mut again = map.clone();
        let same = MetaCommand::Init {
            shards: 4,
            nodes: three(),
        };
        assert_eq!(
            again.apply(9, same),
            Ok(MetaReply::Done { version: 5 }),
            "the same init again is a no-op"
        );
        let other = MetaCommand::Init {
            shards: 8,
            nodes: three(),
        };
        assert_eq!(
            again.apply(10, other),
            Err(MetaError::AlreadyInitialized { shards: 4 })
        );
        assert_eq!(again, map);
    }

    #[test]
    fn a_node_joins_is_placed_and_leaves_only_when_it_holds_nothing() {
        let mut map = initialized();
        map.apply(
            6,
            MetaCommand::RegisterNode {
                id: 4,
                info: info(7104),
            },
        )
        .unwrap();
        assert_eq!(map.addr(4), Some("127.0.0.1:7104"));
        map.apply(
            7,
            MetaCommand::SetPlacement {
                group: 1,
                voters: [2, 3, 4].into(),
            },
        )
        .unwrap();
        assert_eq!(map.groups_of(1), vec![0, 2, 3, 4]);
        assert_eq!(
            map.apply(8, MetaCommand::RemoveNode { id: 4 }),
            Err(MetaError::NodeInUse {
                id: 4,
                groups: vec![1]
            })
        );
        for group in 0..=4 {
            map.apply(
                9,
                MetaCommand::SetPlacement {
                    group,
                    voters: [2, 3].into(),
                },
            )
            .unwrap();
        }
        map.apply(10, MetaCommand::RemoveNode { id: 1 }).unwrap();
        map.apply(11, MetaCommand::RemoveNode { id: 4 }).unwrap();
        assert_eq!(map.nodes.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(map.version, 11);
    }

    #[test]
    fn bad_commands_change_nothing() {
        let mut fresh = ShardMap::default();
        assert_eq!(
            fresh.apply(1, MetaCommand::RemoveNode { id: 1 }),
            Err(MetaError::NotInitialized)
        );
        for shards in [0, MAX_SHARDS + 1] {
            assert!(matches!(
                fresh.apply(
                    1,
                    MetaCommand::Init {
                        shards,
                        nodes: three()
                    }
                ),
                Err(MetaError::Invalid { ref field, .. }) if field == "shards"
            ));
        }
        assert_eq!(fresh, ShardMap::default());

        let mut map = initialized();
        let before = map.clone();
        let bad = [
            MetaCommand::SetPlacement {
                group: 5,
                voters: [1].into(),
            },
            MetaCommand::SetPlacement {
                group: 1,
                voters: BTreeSet::new(),
            },
            MetaCommand::SetPlacement {
                group: 1,
                voters: [9].into(),
            },
            MetaCommand::RegisterNode {
                id: 0,
                info: info(1),
            },
            MetaCommand::RegisterNode {
                id: 4,
                info: NodeInfo {
                    addr: String::new(),
                    region: "r".into(),
                },
            },
        ];
        for command in bad {
            assert!(map.apply(20, command.clone()).is_err(), "{command:?}");
        }
        assert_eq!(map, before);
    }
}
