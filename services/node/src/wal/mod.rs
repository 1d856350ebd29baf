//! The node's write-ahead log: one per node, shared by all its Raft groups.
//!
//! Every change to a group's log (entries, vote, committed marker, truncation, purge) is
//! applied to that group's in-memory [`GroupState`] and queued as a record. A single writer
//! thread takes everything queued (from all groups), writes it with one `write`, makes it
//! durable with one `fdatasync`, and only then runs the callbacks: group commit.
//!
//! On open, the segments are replayed in order through the same [`GroupState`] methods; a
//! torn record at the end of the newest segment (a crash mid-write) is cut off. When the
//! active segment passes [`Options::segment_bytes`] a new one starts with a checkpoint of
//! every group's vote, committed marker and purge point, and old segments are deleted once
//! every group has purged the entries they hold.
//!
//! A full disk stalls the log instead of failing it: the batch is cut off the segment and
//! written again once space returns, with nothing acknowledged meanwhile. A failed fsync
//! (or any other write error) fails it for good; see [`health`].
//!
//! Modules: `record` (format), `segment` (files), `state` (one group's log), `writer`
//! (the group-commit thread), `recover` (replay on open), `health` (stalled or failed),
//! `faults` (injected failures for tests).

mod faults;
mod health;
mod record;
mod recover;
mod segment;
mod state;
mod writer;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;

pub use faults::FaultHooks;
pub use health::LogHealth;
pub(crate) use health::{FULL_DISK_FIRST_RETRY, FULL_DISK_MAX_RETRY, is_disk_full};
pub use state::GroupState;

/// Identifies a Raft group on a node (0 is the meta group).
pub type GroupId = u32;

/// Called once the write it was given with is durable, or has failed.
pub type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

/// A log entry the engine can keep in memory and write to disk.
pub trait LogEntry: Clone + Send + Sync + 'static {
    /// Appends the entry's bytes to `buf`.
    fn encode(&self, buf: &mut Vec<u8>) -> io::Result<()>;
    /// Reads an entry back from the bytes `encode` wrote.
    fn decode(bytes: &[u8]) -> io::Result<Self>;
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start a new segment once the active one reaches this size.
    pub segment_bytes: u64,
    /// Failures a test injects (none in production).
    pub faults: Option<Arc<FaultHooks>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            faults: None,
        }
    }
}

/// How long each `fdatasync` takes and how many records each batch carries, as the writer
/// thread observes them (for the node's `/metrics`).
#[derive(Clone)]
pub struct Timings {
    /// `lockplane_wal_fsync_duration_seconds`.
    pub fsync_seconds: prometheus::Histogram,
    /// `lockplane_wal_batch_records`: records per written batch (group commit's width).
    pub batch_records: prometheus::Histogram,
}

impl Timings {
    fn new() -> prometheus::Result<Self> {
        use prometheus::{Histogram, HistogramOpts};
        Ok(Self {
            fsync_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "lockplane_wal_fsync_duration_seconds",
                    "Time of one fdatasync of the write-ahead log.",
                )
                .buckets(telemetry::metrics::LATENCY_BUCKETS_SECONDS.to_vec()),
            )?,
            batch_records: Histogram::with_opts(
                HistogramOpts::new(
                    "lockplane_wal_batch_records",
                    "Records written by one batch of the write-ahead log (group commit).",
                )
                .buckets(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0,
                ]),
            )?,
        })
    }
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Batches written (one `write` each).
    pub batches: u64,
    /// `fdatasync` calls (batches that carried a callback).
    pub fsyncs: u64,
    /// Records written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Segment files on disk now.
    pub segments: u64,
    /// Attempts to write that failed (each retry on a full disk counts).
    pub write_errors: u64,
}

type Slot<E> = Arc<Mutex<GroupState<E>>>;

struct Shared<E> {
    dir: PathBuf,
    options: Options,
    groups: RwLock<HashMap<GroupId, Slot<E>>>,
    /// Set after a failed write or fsync: nothing is acknowledged after that.
    failed: AtomicBool,
    /// Stalled on a full disk, failed, or healthy (with the error).
    health: health::HealthCell,
    write_errors: AtomicU64,
    batches: AtomicU64,
    fsyncs: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    timings: Timings,
    /// Per segment (oldest first): the highest entry index each group wrote into it.
    segments: Mutex<Vec<writer::SegmentInfo>>,
}

/// What the writer thread receives.
enum Msg {
    Write(Request),
    /// Write what was queued before, then stop; later writes fail.
    Stop,
}

/// One queued write.
struct Request {
    group: GroupId,
    /// The highest entry index the record carries, for segment deletion.
    max_index: Option<u64>,
    /// A purge, after which old segments may be deletable.
    purge: bool,
    /// The committed marker the record carries, so checkpoints copy only what is on disk.
    committed: Option<Vec<u8>>,
    bytes: Vec<u8>,
    done: Option<Done>,
}

/// The node's log engine. Dropping it writes what is queued and stops the writer; group
/// handles still alive then see their writes fail.
pub struct LogEngine<E: LogEntry> {
    shared: Arc<Shared<E>>,
    tx: Option<Sender<Msg>>,
    writer: Option<JoinHandle<()>>,
}

impl<E: LogEntry> LogEngine<E> {
    /// Opens (creating if needed) the log in `dir`, replays it, and starts the writer.
    pub fn open(dir: &Path, options: Options) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let recovered = recover::recover::<E>(dir)?;
        let groups = recovered
            .groups
            .into_iter()
            .map(|(id, state)| (id, Arc::new(Mutex::new(state))))
            .collect();
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            options,
            groups: RwLock::new(groups),
            failed: AtomicBool::new(false),
            health: health::HealthCell::default(),
            write_errors: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            timings: Timings::new().map_err(io::Error::other)?,
            segments: Mutex::new(recovered.segments),
        });
        let (tx, rx) = mpsc::channel();
        let writer = writer::Writer::start(Arc::clone(&shared), recovered.next_seq)?;
        let handle = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            shared,
            tx: Some(tx),
            writer: Some(handle),
        })
    }

    /// The handle of group `id`, created empty if the log has never seen it.
    pub fn group(&self, id: GroupId) -> Group<E> {
        let slot = {
            let groups = read(&self.shared.groups);
            groups.get(&id).cloned()
        };
        let state = slot.unwrap_or_else(|| {
            let mut groups = write(&self.shared.groups);
            Arc::clone(groups.entry(id).or_default())
        });
        Group {
            id,
            state,
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Every group the log holds state for, in id order.
    pub fn group_ids(&self) -> Vec<GroupId> {
        let mut ids: Vec<_> = read(&self.shared.groups).keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Groups whose unpurged entries keep the oldest segment on disk. Snapshotting and
    /// purging them lets the segment go.
    pub fn pinning_groups(&self) -> Vec<GroupId> {
        let segments = lock(&self.shared.segments);
        if segments.len() < 2 {
            return Vec::new();
        }
        segments[0].pinned_by(&self.shared)
    }

    /// Counters since open.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            batches: s.batches.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            records: s.records.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            segments: lock(&s.segments).len() as u64,
            write_errors: s.write_errors.load(Ordering::Relaxed),
        }
    }

    /// The fsync and batch histograms, to register with a metrics registry.
    pub fn timings(&self) -> &Timings {
        &self.shared.timings
    }

    /// Whether writes are being made durable now.
    pub fn health(&self) -> LogHealth {
        self.shared.health.get()
    }

    /// Stops the writer now, for a shutdown that must not wait for a full disk: what is
    /// queued is written if the disk takes it; writes waiting for space fail (they were
    /// never logged), and so does every later one.
    pub fn stop(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Stop);
        }
    }
}

impl<E: LogEntry> Drop for LogEngine<E> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Stop);
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// One group's view of the engine: its writes and its in-memory log.
///
/// Writes are applied to memory at once (so reads see them) and are durable when their
/// callback reports `Ok`. Writes of one group reach the disk in the order they were made.
pub struct Group<E: LogEntry> {
    id: GroupId,
    state: Slot<E>,
    tx: Option<Sender<Msg>>,
    shared: Arc<Shared<E>>,
}

impl<E: LogEntry> Group<E> {
    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// Appends consecutive entries starting at index `first`, replacing any at or after it.
    pub fn append(&self, first: u64, entries: Vec<E>, done: Done) {
        if entries.is_empty() {
            return done(Ok(()));
        }
        let max_index = first + entries.len() as u64 - 1;
        let mut bytes = Vec::with_capacity(64 * entries.len());
        if let Err(e) = record::put_entries(&mut bytes, self.id, first, &entries, E::encode) {
            return done(Err(e));
        }
        let mut state = lock(&self.state);
        state.append(first, entries);
        self.send(Some(max_index), false, None, bytes, Some(done));
    }

    /// Saves the vote; `done` runs once it is durable.
    pub fn save_vote(&self, vote: Vec<u8>, done: Done) {
        let mut bytes = Vec::with_capacity(32 + vote.len());
        record::put_vote(&mut bytes, self.id, &vote);
        let mut state = lock(&self.state);
        state.vote = Some(vote);
        self.send(None, false, None, bytes, Some(done));
    }

    /// Saves the committed marker. Not made durable by itself: it rides with the next
    /// synced write, and losing it only means Raft recomputes it.
    pub fn save_committed(&self, committed: Vec<u8>) {
        let mut bytes = Vec::with_capacity(32 + committed.len());
        record::put_committed(&mut bytes, self.id, &committed);
        let mut state = lock(&self.state);
        state.committed = Some(committed.clone());
        self.send(None, false, Some(committed), bytes, None);
    }

    /// Drops entries at and after `since`. Durable with the next synced write, which in
    /// Raft is the append that follows a truncation.
    pub fn truncate(&self, since: u64) {
        let mut bytes = Vec::with_capacity(32);
        record::put_truncate(&mut bytes, self.id, since);
        let mut state = lock(&self.state);
        state.truncate(since);
        self.send(None, false, None, bytes, None);
    }

    /// Drops entries at and below `upto` (covered by a snapshot). Durable with the next
    /// synced write; replaying a lost purge only brings back entries the snapshot covers.
    pub fn purge(&self, upto: u64, log_id: Vec<u8>) {
        let mut bytes = Vec::with_capacity(32 + log_id.len());
        record::put_purge(&mut bytes, self.id, upto, &log_id);
        let mut state = lock(&self.state);
        state.purge(upto, log_id);
        self.send(None, true, None, bytes, None);
    }

    /// Reads the group's log under its lock.
    pub fn read<R>(&self, f: impl FnOnce(&GroupState<E>) -> R) -> R {
        f(&lock(&self.state))
    }

    /// Queues a record. Called with the group's lock held so records of one group are
    /// queued in the order their changes were applied.
    fn send(
        &self,
        max_index: Option<u64>,
        purge: bool,
        committed: Option<Vec<u8>>,
        bytes: Vec<u8>,
        done: Option<Done>,
    ) {
        let request = Request {
            group: self.id,
            max_index,
            purge,
            committed,
            bytes,
            done,
        };
        if self.shared.failed.load(Ordering::Acquire) {
            return fail(request);
        }
        match &self.tx {
            Some(tx) => {
                if let Err(mpsc::SendError(Msg::Write(request))) = tx.send(Msg::Write(request)) {
                    fail(request);
                }
            }
            None => fail(request),
        }
    }
}

impl<E: LogEntry> Clone for Group<E> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            state: Arc::clone(&self.state),
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

fn fail(request: Request) {
    if let Some(done) = request.done {
        done(Err(io::Error::other(
            "the log engine has stopped after a write failure",
        )));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
