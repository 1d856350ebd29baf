//! The deterministic machine inside a group's state machine: `lock-core`'s lock machine
//! for lock groups, the shard map for the meta group. Snapshots, effects and the due time
//! are handled the same way for both.

use std::io;

use lock_core::{Effect, LockMachine, Millis};
use shard_map::ShardMap;

use super::codec::{from_bytes, to_vec};
use super::request::{Reply, Request};

/// What [`super::StateMachine`] replicates.
pub trait GroupMachine: Send + Sync + Sized + 'static {
    /// Applies one entry's request at `(index, term)`, pushing what the world must do.
    fn apply(
        &mut self,
        index: u64,
        term: u64,
        request: Request,
        effects: &mut Vec<Effect>,
    ) -> Reply;

    /// The machine's snapshot bytes.
    fn encode(&self) -> io::Result<Vec<u8>>;

    /// A machine from its snapshot bytes; bad bytes are `InvalidData`.
    fn decode(bytes: &[u8]) -> io::Result<Self>;

    /// When the leader must next propose a tick (lease, wait or session end).
    fn next_due(&self) -> Option<Millis> {
        None
    }
}

impl GroupMachine for LockMachine {
    fn apply(
        &mut self,
        index: u64,
        term: u64,
        request: Request,
        effects: &mut Vec<Effect>,
    ) -> Reply {
        match request {
            Request::Lock(proposal) => {
                Reply::Lock(LockMachine::apply(self, index, term, proposal, effects))
            }
            Request::Meta(_) => Reply::Misrouted,
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
}

/// Version byte in front of a shard map snapshot (postcard after it; the snapshot file
/// around it carries the checksum).
const SHARD_MAP_VERSION: u8 = 3;

impl GroupMachine for ShardMap {
    fn apply(&mut self, index: u64, _term: u64, request: Request, _: &mut Vec<Effect>) -> Reply {
        match request {
            Request::Meta(command) => Reply::Meta(ShardMap::apply(self, index, command)),
            Request::Lock(_) => Reply::Misrouted,
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
