//! Replay on open: every segment in order, through the same `GroupState` methods the live
//! writes use. A torn record at the end of the newest segment is cut off; a bad record
//! anywhere else is corruption and stops the open.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use super::record::{self, ReadError, Record};
use super::writer::SegmentInfo;
use super::{GroupId, GroupState, LogEntry, segment};

pub(crate) struct Recovered<E> {
    pub(crate) groups: HashMap<GroupId, GroupState<E>>,
    pub(crate) segments: Vec<SegmentInfo>,
    pub(crate) next_seq: u64,
}

pub(crate) fn recover<E: LogEntry>(dir: &Path) -> io::Result<Recovered<E>> {
    let seqs = segment::list(dir)?;
    let mut groups: HashMap<GroupId, GroupState<E>> = HashMap::new();
    let mut segments = Vec::with_capacity(seqs.len());
    for (n, &seq) in seqs.iter().enumerate() {
        let newest = n + 1 == seqs.len();
        let bytes = fs::read(segment::path(dir, seq))?;
        if !bytes.starts_with(segment::MAGIC) {
            if newest && bytes.len() < segment::MAGIC.len() {
                // Torn while being created: it never held a record.
                fs::remove_file(segment::path(dir, seq))?;
                segment::sync_dir(dir)?;
                continue;
            }
            return Err(corrupt(seq, 0, "not a log segment"));
        }
        let mut info = SegmentInfo {
            seq,
            max_index: HashMap::new(),
        };
        let mut offset = segment::MAGIC.len();
        while offset < bytes.len() {
            match record::read(&bytes[offset..]) {
                Ok((record, len)) => {
                    replay(&mut groups, &mut info, record)
                        .map_err(|e| corrupt(seq, offset, &format!("undecodable entry: {e}")))?;
                    offset += len;
                }
                Err(ReadError::Torn) if newest => {
                    segment::truncate(dir, seq, offset as u64)?;
                    break;
                }
                Err(ReadError::Torn) => return Err(corrupt(seq, offset, "bad checksum")),
                Err(ReadError::Malformed) => return Err(corrupt(seq, offset, "malformed record")),
            }
        }
        segments.push(info);
    }
    let next_seq = seqs.last().map_or(0, |s| s + 1);
    Ok(Recovered {
        groups,
        segments,
        next_seq,
    })
}

fn replay<E: LogEntry>(
    groups: &mut HashMap<GroupId, GroupState<E>>,
    info: &mut SegmentInfo,
    record: Record<'_>,
) -> io::Result<()> {
    match record {
        Record::Entries {
            group,
            first,
            entries,
        } => {
            let decoded = entries
                .into_iter()
                .map(E::decode)
                .collect::<io::Result<Vec<E>>>()?;
            if !decoded.is_empty() {
                let max = first + decoded.len() as u64 - 1;
                let slot = info.max_index.entry(group).or_default();
                *slot = (*slot).max(max);
            }
            groups.entry(group).or_default().append(first, decoded);
        }
        Record::Vote { group, vote } => groups.entry(group).or_default().vote = Some(vote.to_vec()),
        Record::Committed { group, committed } => {
            groups.entry(group).or_default().committed = Some(committed.to_vec());
        }
        Record::Truncate { group, since } => groups.entry(group).or_default().truncate(since),
        Record::Purge {
            group,
            upto,
            log_id,
        } => groups
            .entry(group)
            .or_default()
            .purge(upto, log_id.to_vec()),
    }
    Ok(())
}

fn corrupt(seq: u64, offset: usize, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("log segment {seq:016x} is corrupt at byte {offset}: {what}"),
    )
}
