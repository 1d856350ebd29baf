//! openraft's state machine for one group: its [`GroupMachine`] (`lock-core`'s machine, or
//! the shard map for the meta group), its audit [`Outbox`], its last applied position and
//! membership, and the group's durable snapshot.
//!
//! Snapshots are the durable copy of the state (openraft's "persistent snapshot" model):
//! `apply` only changes memory; after a restart the machine is restored from the snapshot
//! and openraft re-applies the log from there up to the saved committed index.

use std::io::{self, Cursor};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lock_core::Millis;
use lock_core::{Effect, Limits, LockMachine};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use tokio::sync::watch;

use super::applied_log::{Applied, AppliedLog, DEFAULT_KEPT};
use super::change_counts::ChangeCounts;
use super::machine::GroupMachine;
use super::outbox::{EventPosition, Outbox};
use super::request::{Reply, Request};
use super::snapshot_file::{Meta, SnapshotDir, save_when_space};
use super::wait_board::{WaitBoard, WaitOutcome};
use super::{Entry, LogId, NodeId, StorageError, TypeConfig};

struct Inner<M> {
    machine: M,
    outbox: Outbox,
    last_applied: Option<LogId>,
    membership: StoredMembership<NodeId, BasicNode>,
    current: Option<(Meta, Arc<Vec<u8>>)>,
    snapshots_built: u64,
}

/// The state machine of one group (a lock group unless `M` says otherwise). Clones share
/// the same state.
pub struct StateMachine<M = LockMachine> {
    inner: Arc<Mutex<Inner<M>>>,
    dir: Arc<SnapshotDir>,
    applied_log: Arc<AppliedLog>,
    /// The machine's next deadline, so the leader can tick exactly when something is due.
    due: Arc<watch::Sender<Option<Millis>>>,
    /// The time the applied entries have carried the machine to, for the group's clock.
    applied_clock: Arc<AtomicU64>,
    waits: Arc<WaitBoard>,
    /// The position of the newest event in the outbox, for the group's publisher.
    recorded: Arc<watch::Sender<Option<EventPosition>>>,
    /// Lock changes applied, by kind, for the node's metrics.
    changes: Arc<ChangeCounts>,
    /// Snapshots built and the time spent building them (microseconds).
    snapshot_timing: Arc<(AtomicU64, AtomicU64)>,
}

impl<M> Clone for StateMachine<M> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            dir: Arc::clone(&self.dir),
            applied_log: Arc::clone(&self.applied_log),
            due: Arc::clone(&self.due),
            applied_clock: Arc::clone(&self.applied_clock),
            waits: Arc::clone(&self.waits),
            recorded: Arc::clone(&self.recorded),
            changes: Arc::clone(&self.changes),
            snapshot_timing: Arc::clone(&self.snapshot_timing),
        }
    }
}

impl StateMachine<LockMachine> {
    /// Opens a lock group's state machine whose snapshot lives in `dir`, restoring it if
    /// there is one; its outbox keeps at most `outbox_limit` audit events (0: none).
    pub fn open(dir: &Path, limits: Limits, outbox_limit: usize) -> io::Result<Self> {
        Self::open_with(dir, LockMachine::new(limits), outbox_limit)
    }
}

impl<M: GroupMachine> StateMachine<M> {
    /// Opens the state machine whose snapshot lives in `dir`, restoring it if there is one
    /// and starting from `empty` otherwise; its outbox keeps at most `outbox_limit` audit
    /// events (0: none).
    pub fn open_with(dir: &Path, empty: M, outbox_limit: usize) -> io::Result<Self> {
        let dir = SnapshotDir::open(dir)?;
        let mut inner = Inner {
            machine: empty,
            outbox: Outbox::new(outbox_limit),
            last_applied: None,
            membership: StoredMembership::default(),
            current: None,
            snapshots_built: 0,
        };
        if let Some((meta, data)) = dir.load()? {
            let (outbox, machine) = Outbox::unwrap(&data, outbox_limit)?;
            inner.machine = M::decode(machine)?;
            inner.outbox = outbox;
            inner.last_applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            inner.current = Some((meta, Arc::new(data)));
        }
        let applied_through = inner.last_applied.map_or(0, |id| id.index);
        let applied_log = Arc::new(AppliedLog::new(applied_through, DEFAULT_KEPT));
        let (due, _) = watch::channel(inner.machine.next_due());
        let applied_clock = Arc::new(AtomicU64::new(inner.machine.clock()));
        let newest = inner.outbox.newest();
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            dir: Arc::new(dir),
            applied_log,
            due: Arc::new(due),
            applied_clock,
            waits: Arc::default(),
            recorded: Arc::new(watch::Sender::new(newest)),
            changes: Arc::default(),
            snapshot_timing: Arc::default(),
        })
    }

    /// The machine's next deadline (lease, session, wait or lock-delay end), updated after
    /// every applied batch.
    pub fn watch_due(&self) -> watch::Receiver<Option<Millis>> {
        self.due.subscribe()
    }

    /// The time the applied entries have carried the machine to, kept current on apply.
    pub fn applied_clock(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.applied_clock)
    }

    fn publish_due(&self, next: Option<Millis>) {
        self.due.send_if_modified(|due| {
            let changed = *due != next;
            *due = next;
            changed
        });
    }

    /// Lock changes this replica applied since start, by kind.
    pub fn changes(&self) -> &ChangeCounts {
        &self.changes
    }

    /// Snapshots this replica built since start, and the seconds spent building them.
    pub fn snapshots_built(&self) -> (u64, f64) {
        let (count, micros) = &*self.snapshot_timing;
        #[allow(clippy::cast_precision_loss)]
        let seconds = micros.load(Ordering::Relaxed) as f64 / 1e6;
        (count.load(Ordering::Relaxed), seconds)
    }

    /// The effects of the entries applied, by log index, for the group's watchers.
    pub fn applied_log(&self) -> &Arc<AppliedLog> {
        &self.applied_log
    }

    /// The outcomes of queued acquires, for the callers blocked on them.
    pub fn waits(&self) -> &WaitBoard {
        &self.waits
    }

    fn resolve_waits(&self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Granted {
                    wait,
                    token,
                    ttl_ms,
                    session,
                    ..
                } => self.waits.resolve(
                    *wait,
                    WaitOutcome::Granted {
                        token: *token,
                        ttl_ms: *ttl_ms,
                        session: *session,
                    },
                ),
                Effect::WaitEnded { wait, reason, .. } => {
                    self.waits.resolve(*wait, WaitOutcome::Ended(*reason));
                }
                _ => {}
            }
        }
    }

    /// The position of the newest audit event recorded, changed whenever one is.
    pub fn watch_recorded(&self) -> watch::Receiver<Option<EventPosition>> {
        self.recorded.subscribe()
    }

    /// Reads the outbox (the publisher takes its pending events; metrics read its size).
    pub fn outbox<R>(&self, f: impl FnOnce(&Outbox) -> R) -> R {
        f(&self.lock().outbox)
    }

    /// Reads the machine (status queries, the shard map).
    pub fn read<R>(&self, f: impl FnOnce(&M) -> R) -> R {
        f(&self.lock().machine)
    }

    /// The last log position applied.
    pub fn last_applied(&self) -> Option<LogId> {
        self.lock().last_applied
    }

    fn lock(&self) -> MutexGuard<'_, Inner<M>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<M: GroupMachine> RaftStateMachine<TypeConfig> for StateMachine<M> {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, BasicNode>), StorageError> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut published = Vec::new();
        let mut recorded = Vec::new();
        let applied_through;
        let newest_recorded;
        {
            let mut inner = self.lock();
            for entry in entries {
                inner.last_applied = Some(entry.log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => Reply::Lock(Ok(lock_core::Reply::Done)),
                    EntryPayload::Normal(Request::Published { through }) => {
                        inner.outbox.confirm(through);
                        Reply::Published
                    }
                    EntryPayload::Normal(request) => {
                        let mut effects = Vec::new();
                        let (index, term) = (entry.log_id.index, entry.log_id.leader_id.term);
                        let response =
                            inner
                                .machine
                                .apply(index, term, request, &mut effects, &mut recorded);
                        self.changes.count(&recorded);
                        if inner.outbox.enabled() {
                            for event in recorded.drain(..) {
                                inner.outbox.record(event);
                            }
                        } else {
                            recorded.clear();
                        }
                        if !effects.is_empty() {
                            published.push(Applied {
                                index: entry.log_id.index,
                                effects,
                            });
                        }
                        response
                    }
                    EntryPayload::Membership(membership) => {
                        inner.membership = StoredMembership::new(Some(entry.log_id), membership);
                        Reply::Lock(Ok(lock_core::Reply::Done))
                    }
                };
                responses.push(response);
            }
            let next = inner.machine.next_due();
            self.applied_clock
                .store(inner.machine.clock(), Ordering::Release);
            applied_through = inner.last_applied.map_or(0, |id| id.index);
            newest_recorded = inner.outbox.newest();
            drop(inner);
            self.publish_due(next);
        }
        self.recorded.send_if_modified(|newest| {
            let changed = *newest != newest_recorded;
            *newest = newest_recorded;
            changed
        });
        for applied in &published {
            self.resolve_waits(&applied.effects);
        }
        self.applied_log.append(published, applied_through);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let limit = self.lock().outbox.limit();
        let (outbox, machine) = Outbox::unwrap(&data, limit)
            .and_then(|(outbox, machine)| Ok((outbox, M::decode(machine)?)))
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let newest = outbox.newest();
        let data = Arc::new(data);
        save_when_space(Arc::clone(&self.dir), meta.clone(), Arc::clone(&data))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let mut inner = self.lock();
        inner.machine = machine;
        inner.outbox = outbox;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.current = Some((meta.clone(), data));
        let next = inner.machine.next_due();
        self.applied_clock
            .store(inner.machine.clock(), Ordering::Release);
        drop(inner);
        self.publish_due(next);
        self.recorded.send_replace(newest);
        self.applied_log
            .restart_after(meta.last_log_id.map_or(0, |id| id.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.lock().current.clone();
        Ok(current.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.as_ref().clone())),
        }))
    }
}

impl<M: GroupMachine> RaftSnapshotBuilder<TypeConfig> for StateMachine<M> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = std::time::Instant::now();
        let (meta, machine, outbox) = {
            let mut inner = self.lock();
            inner.snapshots_built += 1;
            let machine = inner
                .machine
                .encode()
                .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
            let outbox = inner.outbox.saved();
            let snapshot_id = match inner.last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id, id.index, inner.snapshots_built),
                None => format!("none-{}", inner.snapshots_built),
            };
            let meta = SnapshotMeta {
                last_log_id: inner.last_applied,
                last_membership: inner.membership.clone(),
                snapshot_id,
            };
            (meta, machine, outbox)
        };
        // Encoded outside the lock: a large backlog does not hold up the group's applies.
        let data = outbox
            .wrap(machine)
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let data = Arc::new(data);
        save_when_space(Arc::clone(&self.dir), meta.clone(), Arc::clone(&data))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.lock().current = Some((meta.clone(), Arc::clone(&data)));
        let (count, micros) = &*self.snapshot_timing;
        count.fetch_add(1, Ordering::Relaxed);
        micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.as_ref().clone())),
        })
    }
}
