//! openraft's log storage for one group, over that group's handle on the node's shared
//! write-ahead log. Appends return at once and report durability through openraft's
//! callback when the WAL's group commit has synced them; votes wait for durability.
//!
//! A node that restarts never resumes the leadership it held when it stopped. openraft
//! 0.9 would, at once and in the same term, when the saved vote is its own and committed;
//! then entries stamped by the restarted process's clock continue the old term, and the
//! lock machine, which renews every lease when a new term starts, would not know that the
//! clock stamping them changed (a clock set minutes ahead ended every lease at once in the
//! fault suite). The vote is read back uncommitted instead: the node starts as a follower
//! and, like etcd's Raft, leads again only by winning a new term.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, StorageIOError, Vote};
use tokio::sync::oneshot;

use super::codec::{from_bytes, to_vec};
use super::{Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::wal;

/// The log of one lock group.
#[derive(Clone)]
pub struct LogStore {
    node: NodeId,
    group: wal::Group<Entry>,
}

impl LogStore {
    /// Node `node`'s log store over `group`'s part of its write-ahead log.
    pub fn new(node: NodeId, group: wal::Group<Entry>) -> Self {
        Self { node, group }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let lo = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&0) => return Ok(Vec::new()),
            Bound::Excluded(&i) => i - 1,
            Bound::Unbounded => u64::MAX,
        };
        if lo > hi {
            return Ok(Vec::new());
        }
        Ok(self.group.read(|log| log.entries(lo..=hi)))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let (purged, last) = self.group.read(|log| {
            let last = log
                .last_index()
                .and_then(|i| log.entries(i..=i).pop())
                .map(|e| e.log_id);
            (log.purged.as_ref().map(|(_, id)| id.clone()), last)
        });
        let last_purged_log_id = purged
            .map(|bytes| from_bytes::<LogId>(&bytes))
            .transpose()
            .map_err(|e| StorageIOError::read_logs(&e))?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let bytes = to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        let (tx, rx) = oneshot::channel();
        self.group
            .save_vote(bytes, Box::new(move |r| drop(tx.send(r))));
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("the log writer stopped")))
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        let bytes = self.group.read(|log| log.vote.clone());
        let vote: Option<Vote<NodeId>> = bytes
            .map(|b| from_bytes(&b))
            .transpose()
            .map_err(|e| StorageIOError::read_vote(&e))?;
        Ok(vote.map(|mut vote| {
            if vote.leader_id().voted_for() == Some(self.node) {
                vote.committed = false;
            }
            vote
        }))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = to_vec(&committed).map_err(|e| StorageIOError::write_logs(&e))?;
        self.group.save_committed(bytes);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let bytes = self.group.read(|log| log.committed.clone());
        match bytes {
            Some(b) => from_bytes(&b).map_err(|e| StorageIOError::read_logs(&e).into()),
            None => Ok(None),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let first = entries.first().map_or(0, |e| e.log_id.index);
        self.group.append(
            first,
            entries,
            Box::new(move |result| callback.log_io_completed(result)),
        );
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.group.truncate(log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = to_vec(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        self.group.purge(log_id.index, bytes);
        Ok(())
    }
}
