//! openraft's own storage conformance suite, run against the lock group's log store (over
//! the shared write-ahead log) and state machine (over lock-core, with snapshot files).
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use lock_core::Limits;
use lockplane_node::raft::{Entry, LogStore, StateMachine, StorageError, TypeConfig};
use lockplane_node::wal::{LogEngine, Options};
use openraft::StorageIOError;
use openraft::testing::{StoreBuilder, Suite};

use common::TempDir;

struct Builder;

/// Keeps the engine and its directory alive while the suite uses the stores.
struct Guard {
    _engine: LogEngine<Entry>,
    _dir: TempDir,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, Guard> for Builder {
    async fn build(&self) -> Result<(Guard, LogStore, StateMachine), StorageError> {
        let dir = TempDir::new("raft-suite");
        let engine = LogEngine::<Entry>::open(&dir.path().join("wal"), Options::default())
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let log = LogStore::new(0, engine.group(1));
        let sm = StateMachine::open(&dir.path().join("group-1"), Limits::default(), 0)
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        Ok((
            Guard {
                _engine: engine,
                _dir: dir,
            },
            log,
            sm,
        ))
    }
}

#[test]
fn the_lock_group_storage_passes_openraft_suite() {
    Suite::test_all(Builder).unwrap();
}

#[test]
fn a_restarted_node_reads_its_own_vote_back_uncommitted_and_others_votes_as_saved() {
    use openraft::Vote;
    use openraft::storage::RaftLogStorage;

    common::runtime().block_on(async {
        let dir = TempDir::new("vote-read-back");
        let engine = LogEngine::<Entry>::open(&dir.path().join("wal"), Options::default()).unwrap();
        let mut mine = LogStore::new(7, engine.group(1));
        mine.save_vote(&Vote::new_committed(3, 7)).await.unwrap();
        assert_eq!(mine.read_vote().await.unwrap(), Some(Vote::new(3, 7)));

        let mut theirs = LogStore::new(7, engine.group(2));
        theirs.save_vote(&Vote::new_committed(4, 9)).await.unwrap();
        assert_eq!(
            theirs.read_vote().await.unwrap(),
            Some(Vote::new_committed(4, 9))
        );
    });
}
