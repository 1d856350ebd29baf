//! The group-commit thread: drains every queued record, writes them with one `write`, syncs
//! once, then runs the callbacks; rotates segments and deletes the ones nobody needs.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::health::{FULL_DISK_FIRST_RETRY, FULL_DISK_MAX_RETRY, is_disk_full};
use super::{GroupId, LogEntry, Msg, Request, Shared, lock, read, record, segment};

/// Most records taken into one batch, so callbacks of an endless stream still run.
const MAX_BATCH: usize = 8_192;

/// How long after a rotation that found the disk full the next one is tried.
const ROTATE_RETRY: Duration = Duration::from_secs(1);

/// What the engine knows about one segment file.
#[derive(Debug, Clone, Default)]
pub(crate) struct SegmentInfo {
    pub(crate) seq: u64,
    /// The highest entry index each group wrote into this segment.
    pub(crate) max_index: HashMap<GroupId, u64>,
}

impl SegmentInfo {
    /// Groups that still need entries held in this segment.
    pub(crate) fn pinned_by<E: LogEntry>(&self, shared: &Shared<E>) -> Vec<GroupId> {
        let groups = read(&shared.groups);
        let mut pinning: Vec<GroupId> = self
            .max_index
            .iter()
            .filter(|&(group, &max)| {
                groups.get(group).is_some_and(|state| {
                    let purged = lock(state).purged.as_ref().map_or(0, |(upto, _)| *upto);
                    purged < max
                })
            })
            .map(|(group, _)| *group)
            .collect();
        pinning.sort_unstable();
        pinning
    }
}

pub(crate) struct Writer<E: LogEntry> {
    shared: Arc<Shared<E>>,
    file: File,
    size: u64,
    seq: u64,
    buf: Vec<u8>,
    /// Writes that arrived while a full disk held the batch before them, oldest first.
    deferred: VecDeque<Request>,
    /// Told to stop (or every sender is gone).
    stopping: bool,
    /// Each group's committed marker as the disk has it: a checkpoint copies these, not the
    /// newer markers still queued, which may cover entries not yet written.
    durable_committed: HashMap<GroupId, Vec<u8>>,
    /// After a rotation found the disk full, when to try the next one.
    rotate_after: Option<Instant>,
}

impl<E: LogEntry> Writer<E> {
    /// Opens a fresh segment `seq` (starting with a checkpoint) for the writer to append to.
    pub(crate) fn start(shared: Arc<Shared<E>>, seq: u64) -> io::Result<Self> {
        let mut buf = Vec::with_capacity(1 << 20);
        // Just recovered, the log in memory is the log on disk.
        let durable_committed: HashMap<GroupId, Vec<u8>> = read(&shared.groups)
            .iter()
            .filter_map(|(id, slot)| lock(slot).committed.clone().map(|c| (*id, c)))
            .collect();
        let (file, size) = new_segment(&shared, &durable_committed, &mut buf, seq)?;
        let mut writer = Self {
            file,
            shared,
            size,
            seq,
            buf,
            deferred: VecDeque::new(),
            stopping: false,
            durable_committed,
            rotate_after: None,
        };
        writer.delete_unneeded()?;
        Ok(writer)
    }

    /// Runs until told to stop (or every sender is gone), committing batch after batch.
    /// Dropping `rx` on return makes later writes fail at once.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while !self.stopping {
            // Writes that arrived while the disk was full go first, in their order.
            while batch.len() < MAX_BATCH {
                let Some(request) = self.deferred.pop_front() else {
                    break;
                };
                batch.push(request);
            }
            if batch.is_empty() {
                match rx.recv() {
                    Ok(Msg::Write(request)) => batch.push(request),
                    Ok(Msg::Stop) | Err(_) => self.stopping = true,
                }
            }
            while !self.stopping && self.deferred.is_empty() && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Write(request)) => batch.push(request),
                    Ok(Msg::Stop) => self.stopping = true,
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(&mut batch, &rx);
            }
        }
        for request in self.deferred.drain(..) {
            super::fail(request);
        }
        // Past any further `Stop` (a shutdown's and the engine's drop may both send one).
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Write(request) = msg {
                super::fail(request);
            }
        }
    }

    /// Writes and (if anyone waits) syncs one batch, rotates or deletes segments if due, then
    /// runs the batch's callbacks. On a full disk it waits for space and writes the batch
    /// again, holding its callbacks (and every later write) until then.
    fn commit(&mut self, batch: &mut Vec<Request>, rx: &Receiver<Msg>) {
        let shared = Arc::clone(&self.shared);
        self.buf.clear();
        let mut may_free = false;
        {
            let mut segments = lock(&shared.segments);
            let mut active = segments.last_mut();
            for request in batch.iter() {
                self.buf.extend_from_slice(&request.bytes);
                if let (Some(max), Some(info)) = (request.max_index, active.as_deref_mut()) {
                    let slot = info.max_index.entry(request.group).or_default();
                    *slot = (*slot).max(max);
                }
                may_free |= request.purge;
            }
        }
        let must_sync = batch.iter().any(|r| r.done.is_some());
        let result = self.write_until_done(must_sync, rx);
        match &result {
            Ok(()) => {
                for request in batch.iter() {
                    if let Some(committed) = &request.committed {
                        self.durable_committed
                            .insert(request.group, committed.clone());
                    }
                }
                self.size += self.buf.len() as u64;
                shared.batches.fetch_add(1, Ordering::Relaxed);
                shared
                    .fsyncs
                    .fetch_add(u64::from(must_sync), Ordering::Relaxed);
                shared
                    .records
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                shared
                    .bytes
                    .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
                #[allow(clippy::cast_precision_loss)]
                shared.timings.batch_records.observe(batch.len() as f64);
            }
            Err(e) => self.fail(e),
        }
        if result.is_ok() {
            let rotation_due = self.size >= shared.options.segment_bytes
                && self.rotate_after.is_none_or(|at| Instant::now() >= at);
            let housekeeping = if rotation_due {
                self.rotate()
            } else if may_free {
                self.delete_unneeded()
            } else {
                Ok(())
            };
            // The batch itself is durable either way; a failure here stops later writes.
            if let Err(e) = housekeeping {
                self.fail(&e);
            }
        }
        for request in batch.drain(..) {
            if let Some(done) = request.done {
                done(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                });
            }
        }
    }

    /// Writes `buf` (and syncs it if `must_sync`) until it is durable, the log has failed,
    /// or the engine is stopping. A full disk is waited out: the partial write is cut off
    /// the segment, the log reports itself stalled, and the write is tried again with a
    /// growing pause, while later writes queue behind it.
    fn write_until_done(&mut self, must_sync: bool, rx: &Receiver<Msg>) -> io::Result<()> {
        let mut pause = FULL_DISK_FIRST_RETRY;
        loop {
            if self.shared.failed.load(Ordering::Acquire) {
                return Err(io::Error::other(
                    "the log engine has stopped after a write failure",
                ));
            }
            match self.write_once(must_sync) {
                Ok(()) => {
                    self.shared.health.resume();
                    return Ok(());
                }
                Err(WriteFailure::DiskFull(e)) => {
                    self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                    self.shared.health.stall(&e);
                    if !self.wait_for_space(pause, rx) {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("the log stopped while the disk was full: {e}"),
                        ));
                    }
                    pause = (pause * 2).min(FULL_DISK_MAX_RETRY);
                }
                Err(WriteFailure::Fatal(e)) => {
                    self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    }

    /// One attempt at writing `buf` at the end of the active segment. A failed write is cut
    /// off again, so the segment never holds part of a batch that was not acknowledged.
    fn write_once(&mut self, must_sync: bool) -> Result<(), WriteFailure> {
        if let Err(e) = self.file.write_all(&self.buf) {
            if let Err(cut) = self.file.set_len(self.size) {
                return Err(WriteFailure::Fatal(io::Error::new(
                    cut.kind(),
                    format!("write failed ({e}) and its partial bytes could not be cut off: {cut}"),
                )));
            }
            return Err(if is_disk_full(&e) {
                WriteFailure::DiskFull(e)
            } else {
                WriteFailure::Fatal(e)
            });
        }
        if must_sync {
            self.sync().map_err(WriteFailure::Fatal)?;
        }
        Ok(())
    }

    /// `fdatasync` of the active segment (or the injected failure of one, in tests).
    fn sync(&mut self) -> io::Result<()> {
        if let Some(hooks) = &self.shared.options.faults {
            hooks.take_sync_failure()?;
        }
        let started = Instant::now();
        let synced = self.file.sync_data();
        self.shared
            .timings
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        synced.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("fsync failed: {e}; the data it covered may be lost"),
            )
        })
    }

    /// Sleeps `pause` while writes keep queuing; false if the engine was told to stop.
    fn wait_for_space(&mut self, pause: Duration, rx: &Receiver<Msg>) -> bool {
        let until = Instant::now() + pause;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match rx.recv_timeout(left) {
                Ok(Msg::Write(request)) => self.deferred.push_back(request),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.stopping = true;
                    return false;
                }
                Err(RecvTimeoutError::Timeout) => return true,
            }
        }
    }

    /// Records a failure after which nothing more is acknowledged.
    fn fail(&self, error: &io::Error) {
        self.shared.failed.store(true, Ordering::Release);
        self.shared.health.fail(error);
    }

    /// Starts the next segment with a checkpoint, then deletes what is no longer needed.
    /// On a full disk the active segment stays (growing past its size), and the first
    /// batch after [`ROTATE_RETRY`] tries again.
    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        let next = new_segment(
            &self.shared,
            &self.durable_committed,
            &mut self.buf,
            self.seq + 1,
        );
        match next {
            Ok((file, size)) => {
                self.file = file;
                self.size = size;
                self.seq += 1;
                self.rotate_after = None;
                self.delete_unneeded()
            }
            Err(e) if is_disk_full(&e) => {
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                self.rotate_after = Some(Instant::now() + ROTATE_RETRY);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes the oldest segments while no group needs an entry they hold.
    fn delete_unneeded(&mut self) -> io::Result<()> {
        let mut deleted = false;
        loop {
            let oldest = {
                let segments = lock(&self.shared.segments);
                if segments.len() < 2 {
                    break;
                }
                segments[0].clone()
            };
            if !oldest.pinned_by(&self.shared).is_empty() {
                break;
            }
            match fs::remove_file(segment::path(&self.shared.dir, oldest.seq)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            lock(&self.shared.segments).remove(0);
            deleted = true;
        }
        if deleted {
            segment::sync_dir(&self.shared.dir)?;
        }
        Ok(())
    }
}

/// Why one attempt at a write failed.
enum WriteFailure {
    /// No space: retry once there is some.
    DiskFull(io::Error),
    /// Anything else: the log stops acknowledging.
    Fatal(io::Error),
}

/// Creates segment `seq` holding a checkpoint of every group's vote, committed marker (as
/// the disk has it: `durable_committed`) and purge point (so older segments are needed
/// only for their entries), durably, and
/// records it as the active segment. Returns the file and its size. A segment that could
/// not be completed is deleted again: replayed after the records that the previous
/// segment receives next, its partial checkpoint could bring back an older vote.
fn new_segment<E: LogEntry>(
    shared: &Shared<E>,
    durable_committed: &HashMap<GroupId, Vec<u8>>,
    buf: &mut Vec<u8>,
    seq: u64,
) -> io::Result<(File, u64)> {
    let written = segment::create(&shared.dir, seq).and_then(|mut file| {
        buf.clear();
        let slots: Vec<(GroupId, Arc<Mutex<_>>)> = read(&shared.groups)
            .iter()
            .map(|(id, slot)| (*id, Arc::clone(slot)))
            .collect();
        for (id, slot) in slots {
            let state = lock(&slot);
            if let Some(vote) = &state.vote {
                record::put_vote(buf, id, vote);
            }
            if let Some(committed) = durable_committed.get(&id) {
                record::put_committed(buf, id, committed);
            }
            if let Some((upto, log_id)) = &state.purged {
                record::put_purge(buf, id, *upto, log_id);
            }
        }
        file.write_all(buf)?;
        file.sync_data()?;
        Ok((file, (segment::MAGIC.len() + buf.len()) as u64))
    });
    match written {
        Ok(done) => {
            lock(&shared.segments).push(SegmentInfo {
                seq,
                max_index: HashMap::new(),
            });
            Ok(done)
        }
        Err(e) => {
            match fs::remove_file(segment::path(&shared.dir, seq)) {
                Ok(()) => segment::sync_dir(&shared.dir)?,
                Err(gone) if gone.kind() == io::ErrorKind::NotFound => {}
                Err(stuck) => return Err(stuck),
            }
            Err(e)
        }
    }
}
