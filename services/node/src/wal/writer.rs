//! The group-commit thread: drains every queued record, writes them with one `write`, syncs
//! once, then runs the callbacks; rotates segments and deletes the ones nobody needs.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use super::{GroupId, LogEntry, Msg, Request, Shared, lock, read, record, segment};

/// Most records taken into one batch, so callbacks of an endless stream still run.
const MAX_BATCH: usize = 8_192;

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
}

impl<E: LogEntry> Writer<E> {
    /// Opens a fresh segment `seq` (starting with a checkpoint) for the writer to append to.
    pub(crate) fn start(shared: Arc<Shared<E>>, seq: u64) -> io::Result<Self> {
        let mut writer = Self {
            file: segment::create(&shared.dir, seq)?,
            shared,
            size: segment::MAGIC.len() as u64,
            seq,
            buf: Vec::with_capacity(1 << 20),
        };
        writer.write_checkpoint()?;
        writer.delete_unneeded()?;
        Ok(writer)
    }

    /// Runs until told to stop (or every sender is gone), committing batch after batch.
    /// Dropping `rx` on return makes later writes fail at once.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut stop = false;
        while !stop {
            match rx.recv() {
                Ok(Msg::Write(request)) => batch.push(request),
                Ok(Msg::Stop) | Err(_) => stop = true,
            }
            while !stop && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Write(request)) => batch.push(request),
                    Ok(Msg::Stop) => stop = true,
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
            }
        }
        while let Ok(Msg::Write(request)) = rx.try_recv() {
            super::fail(request);
        }
    }

    /// Writes and (if anyone waits) syncs one batch, rotates or deletes segments if due, then
    /// runs the batch's callbacks.
    fn commit(&mut self, batch: &mut Vec<Request>) {
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
        let result = if shared.failed.load(Ordering::Acquire) {
            Err(io::Error::other(
                "the log engine has stopped after a write failure",
            ))
        } else {
            self.file.write_all(&self.buf).and_then(|()| {
                if must_sync {
                    self.file.sync_data()
                } else {
                    Ok(())
                }
            })
        };
        match &result {
            Ok(()) => {
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
            }
            Err(_) => shared.failed.store(true, Ordering::Release),
        }
        if result.is_ok() {
            let housekeeping = if self.size >= shared.options.segment_bytes {
                self.rotate()
            } else if may_free {
                self.delete_unneeded()
            } else {
                Ok(())
            };
            // The batch itself is durable either way; a failure here stops later writes.
            if housekeeping.is_err() {
                shared.failed.store(true, Ordering::Release);
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

    /// Starts the next segment with a checkpoint, then deletes what is no longer needed.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.seq += 1;
        self.file = segment::create(&self.shared.dir, self.seq)?;
        self.size = segment::MAGIC.len() as u64;
        self.write_checkpoint()?;
        self.delete_unneeded()
    }

    /// Writes every group's vote, committed marker and purge point at the start of the
    /// active segment, so that older segments are needed only for their entries.
    fn write_checkpoint(&mut self) -> io::Result<()> {
        self.buf.clear();
        let slots: Vec<(GroupId, Arc<Mutex<_>>)> = read(&self.shared.groups)
            .iter()
            .map(|(id, slot)| (*id, Arc::clone(slot)))
            .collect();
        for (id, slot) in slots {
            let state = lock(&slot);
            if let Some(vote) = &state.vote {
                record::put_vote(&mut self.buf, id, vote);
            }
            if let Some(committed) = &state.committed {
                record::put_committed(&mut self.buf, id, committed);
            }
            if let Some((upto, log_id)) = &state.purged {
                record::put_purge(&mut self.buf, id, *upto, log_id);
            }
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        self.size += self.buf.len() as u64;
        lock(&self.shared.segments).push(SegmentInfo {
            seq: self.seq,
            max_index: HashMap::new(),
        });
        Ok(())
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
