//! The deterministic machine inside a group's state machine: `lock-core`'s lock machine
//! for lock groups, the shard map for the meta group. Snapshots, effects, audit events and
//! the due time are handled the same way for both.

use std::io;

use lock_core::{Effect, LockMachine, Millis};
use shard_map::{MetaCommand, ShardMap};

use super::codec::{from_bytes, to_vec};
use super::outbox::Recorded;
use super::request::{Reply, Request};

/// What [`super::StateMachine`] replicates.
pub trait GroupMachine: Send + Sync + Sized + 'static {
    /// Applies one entry's request at `(index, term)`, pushing what the world must do to
    /// `effects` and the changes the audit trail records to `recorded`.
    fn apply(
        &mut self,
        index: u64,
        term: u64,
        request: Request,
        effects: &mut Vec<Effect>,
        recorded: &mut Vec<Recorded>,
    ) -> Reply;

    /// The machine's snapshot bytes.
    fn encode(&self) -> io::Result<Vec<u8>>;

    /// A machine from its snapshot bytes; bad bytes are `InvalidData`.
    fn decode(bytes: &[u8]) -> io::Result<Self>;

    /// When the leader must next propose a tick (lease, wait or session end).
    fn next_due(&self) -> Option<Millis> {
        None
    }

    /// The time the applied entries have carried the machine to (0 for machines without
    /// time).
    fn clock(&self) -> Millis {
        0
    }
}

impl GroupMachine for LockMachine {
    fn apply(
        &mut self,
        index: u64,
        term: u64,
        request: Request,
        effects: &mut Vec<Effect>,
        recorded: &mut Vec<Recorded>,
    ) -> Reply {
        match request {
            Request::Lock(proposal) => {
                let mut all = Vec::new();
                let reply = LockMachine::apply(self, index, term, proposal, &mut all);
                for effect in all {
                    match effect {
                        Effect::Audit(event) => recorded.push(Recorded::Lock(event)),
                        other => effects.push(other),
                    }
                }
                Reply::Lock(reply)
            }
            Request::Meta(_) | Request::Published { .. } => Reply::Misrouted,
        }
    }

    fn encode(&self) -> io::Result<Vec<u8>> {
        Ok(self.snapshot())
    }

    fn decode(bytes: &[u8]) -> io::Result<Self> {
        LockMachine::restore(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn next_due(&self) -> Option<Millis> {
        LockMachine::next_due(self)
    }

    fn clock(&self) -> Millis {
        LockMachine::clock(self)
    }
}

/// Version byte in front of a shard map snapshot (postcard after it; the snapshot file
/// around it carries the checksum). Version 4 added the admin token's hash; version 3
/// snapshots are still read (as a map without one).
const SHARD_MAP_VERSION: u8 = 4;

/// The shard map as version 3 snapshots hold it.
#[derive(serde::Deserialize)]
struct ShardMapV3 {
    version: u64,
    shards: u32,
    nodes: std::collections::BTreeMap<shard_map::NodeId, shard_map::NodeInfo>,
    placement: std::collections::BTreeMap<
        shard_map::GroupId,
        std::collections::BTreeSet<shard_map::NodeId>,
    >,
    tenants: std::collections::BTreeMap<shard_map::TenantId, shard_map::Tenant>,
}

impl From<ShardMapV3> for ShardMap {
    fn from(v3: ShardMapV3) -> Self {
        ShardMap {
            version: v3.version,
            shards: v3.shards,
            nodes: v3.nodes,
            placement: v3.placement,
            tenants: v3.tenants,
            admin_token_hash: None,
        }
    }
}

impl GroupMachine for ShardMap {
    fn apply(
        &mut self,
        index: u64,
        _term: u64,
        request: Request,
        _: &mut Vec<Effect>,
        recorded: &mut Vec<Recorded>,
    ) -> Reply {
        match request {
            Request::Meta(command) => {
                let before = self.version;
                let new_tenant = match &command {
                    MetaCommand::AddTenantKey { name, .. } => self.tenant_named(name).is_none(),
                    _ => false,
                };
                let reply = ShardMap::apply(self, index, command.clone());
                if self.version != before {
                    recorded.push(Recorded::Meta {
                        index,
                        command,
                        new_tenant,
                    });
                }
                Reply::Meta(reply)
            }
            Request::Lock(_) | Request::Published { .. } => Reply::Misrouted,
        }
    }

    fn encode(&self) -> io::Result<Vec<u8>> {
        let mut bytes = vec![SHARD_MAP_VERSION];
        bytes.extend(to_vec(self)?);
        Ok(bytes)
    }

    fn decode(bytes: &[u8]) -> io::Result<Self> {
        match bytes.split_first() {
            Some((&SHARD_MAP_VERSION, rest)) => from_bytes(rest),
            Some((3, rest)) => from_bytes::<ShardMapV3>(rest).map(ShardMap::from),
            Some((version, _)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unsupported shard map snapshot version {version}"),
            )),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "empty shard map snapshot",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 3 snapshot, as that version wrote it.
    #[derive(serde::Serialize)]
    struct WrittenByV3 {
        version: u64,
        shards: u32,
        nodes: std::collections::BTreeMap<u64, shard_map::NodeInfo>,
        placement: std::collections::BTreeMap<u32, std::collections::BTreeSet<u64>>,
        tenants: std::collections::BTreeMap<u64, shard_map::Tenant>,
    }

    #[test]
    fn a_version_3_snapshot_reads_as_a_map_without_admin_token() {
        let tenant = shard_map::Tenant {
            name: "dev".into(),
            key_hashes: vec![shard_map::key_hash("k")],
            max_locks: Some(5),
        };
        let old = WrittenByV3 {
            version: 7,
            shards: 4,
            nodes: [(
                1,
                shard_map::NodeInfo {
                    addr: "a:1".into(),
                    region: "r".into(),
                },
            )]
            .into(),
            placement: [(0, [1].into())].into(),
            tenants: [(1, tenant.clone())].into(),
        };
        let mut bytes = vec![3];
        bytes.extend(to_vec(&old).unwrap());
        let map = <ShardMap as GroupMachine>::decode(&bytes).unwrap();
        assert_eq!(
            (map.version, map.shards, map.admin_token_hash),
            (7, 4, None)
        );
        assert_eq!(map.tenants[&1], tenant);
        let again = <ShardMap as GroupMachine>::decode(&map.encode().unwrap()).unwrap();
        assert_eq!(again, map);
        assert!(<ShardMap as GroupMachine>::decode(&[9, 0]).is_err());
    }
}
