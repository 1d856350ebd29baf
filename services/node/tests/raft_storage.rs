//! openraft's own storage conformance suite, run against the lock group's log store (over
//! the shared write-ahead log) and state machine (over lock-core, with snapshot files).
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "common/mod.rs"]
mod common;

use lock_core::Limits;
use lock_core::Proposal;
use lockplane_node::raft::{
    Entry, EventPosition, LogStore, Request, StateMachine, StorageError, TypeConfig,
};
use lockplane_node::wal::{LogEngine, Options};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, LogId, StorageIOError};

use common::TempDir;

/// Stores whose state machine keeps an audit outbox of this many events (0: none).
struct Builder(usize);

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
        let sm = StateMachine::open(&dir.path().join("group-1"), Limits::default(), self.0)
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
    Suite::test_all(Builder(0)).unwrap();
    Suite::test_all(Builder(1_000)).unwrap();
}

/// A committed entry of term 1 at `index`.
fn entry(index: u64, request: Request) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(request),
    }
}

fn pending(sm: &StateMachine) -> Vec<(u64, u32)> {
    sm.outbox(|o| o.after(None, 100))
        .iter()
        .map(|e| (e.position().index, e.position().seq))
        .collect()
}

#[test]
fn a_snapshot_carries_the_unpublished_audit_events_to_a_replica_and_across_a_restart() {
    use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};

    common::runtime().block_on(async {
        let dir = TempDir::new("outbox-snapshot");
        let mut leader = StateMachine::open(&dir.path().join("a"), Limits::default(), 100).unwrap();
        let acquires = (1..=4).map(|i| {
            entry(
                i,
                Request::Lock(Proposal::new(
                    1_000 + i,
                    common::acquire(&format!("k{i}"), "o", 30_000),
                )),
            )
        });
        leader.apply(acquires).await.unwrap();
        let confirmed = EventPosition { index: 2, seq: 0 };
        leader
            .apply([entry(5, Request::Published { through: confirmed })])
            .await
            .unwrap();
        assert_eq!(pending(&leader), [(3, 0), (4, 0)]);
        let snapshot = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();

        let follower_dir = dir.path().join("b");
        let mut follower = StateMachine::open(&follower_dir, Limits::default(), 100).unwrap();
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(pending(&follower), [(3, 0), (4, 0)]);
        assert_eq!(follower.outbox(|o| o.published()), Some(confirmed));
        drop(follower);
        let reopened = StateMachine::open(&follower_dir, Limits::default(), 100).unwrap();
        assert_eq!(pending(&reopened), [(3, 0), (4, 0)]);
        // Entries after the snapshot add their events after the carried ones.
        let mut reopened = reopened;
        reopened
            .apply([entry(
                6,
                Request::Lock(Proposal::new(2_000, common::acquire("k6", "o", 30_000))),
            )])
            .await
            .unwrap();
        assert_eq!(pending(&reopened), [(3, 0), (4, 0), (6, 0)]);
    });
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
