//! The record format of the write-ahead log.
//!
//! ```text
//! record  = len: u32 LE | crc: u32 LE | body (len bytes)
//! body    = kind: u8 | group: u32 LE | payload
//! payload = Entries:   first: u64 LE | n: u32 LE | n × (len: u32 LE | bytes)
//!         | Vote:      bytes
//!         | Committed: bytes
//!         | Truncate:  since: u64 LE
//!         | Purge:     upto: u64 LE | log_id bytes
//! ```
//!
//! `crc` is CRC-32C of the body. A record that is cut short or fails its checksum at the
//! end of the newest segment is a torn write from a crash and is dropped; anywhere else it
//! is corruption.

use std::io;

use super::GroupId;

const HEADER: usize = 8;

const ENTRIES: u8 = 1;
const VOTE: u8 = 2;
const COMMITTED: u8 = 3;
const TRUNCATE: u8 = 4;
const PURGE: u8 = 5;

/// One decoded record, borrowing from the segment bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// Consecutive entries from `first`; replaces any entries at or after `first`.
    Entries {
        group: GroupId,
        first: u64,
        entries: Vec<&'a [u8]>,
    },
    Vote {
        group: GroupId,
        vote: &'a [u8],
    },
    Committed {
        group: GroupId,
        committed: &'a [u8],
    },
    Truncate {
        group: GroupId,
        since: u64,
    },
    Purge {
        group: GroupId,
        upto: u64,
        log_id: &'a [u8],
    },
}

/// Why a record could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The bytes end inside the record, or its checksum fails: a torn write if at the tail.
    Torn,
    /// The checksum holds but the body does not parse: written wrong, never torn.
    Malformed,
}

/// Appends one record to `buf`, with `payload` writing the payload.
fn put(buf: &mut Vec<u8>, kind: u8, group: GroupId, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    buf.push(kind);
    buf.extend_from_slice(&group.to_le_bytes());
    payload(buf);
    let body = &buf[start + HEADER..];
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let crc = crc32c::crc32c(body);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends an `Entries` record; `encode` writes one entry's bytes. On an encoding error
/// `buf` is left as it was.
pub(crate) fn put_entries<E>(
    buf: &mut Vec<u8>,
    group: GroupId,
    first: u64,
    entries: &[E],
    encode: impl Fn(&E, &mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let start = buf.len();
    let mut result = Ok(());
    put(buf, ENTRIES, group, |buf| {
        buf.extend_from_slice(&first.to_le_bytes());
        buf.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for entry in entries {
            let at = buf.len();
            buf.extend_from_slice(&[0; 4]);
            if let Err(e) = encode(entry, buf) {
                result = Err(e);
                return;
            }
            let len = (buf.len() - at - 4) as u32;
            buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
    });
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

pub(crate) fn put_vote(buf: &mut Vec<u8>, group: GroupId, vote: &[u8]) {
    put(buf, VOTE, group, |buf| buf.extend_from_slice(vote));
}

pub(crate) fn put_committed(buf: &mut Vec<u8>, group: GroupId, committed: &[u8]) {
    put(buf, COMMITTED, group, |buf| {
        buf.extend_from_slice(committed)
    });
}

pub(crate) fn put_truncate(buf: &mut Vec<u8>, group: GroupId, since: u64) {
    put(buf, TRUNCATE, group, |buf| {
        buf.extend_from_slice(&since.to_le_bytes())
    });
}

pub(crate) fn put_purge(buf: &mut Vec<u8>, group: GroupId, upto: u64, log_id: &[u8]) {
    put(buf, PURGE, group, |buf| {
        buf.extend_from_slice(&upto.to_le_bytes());
        buf.extend_from_slice(log_id);
    });
}

/// Reads the record at the start of `bytes`; returns it and its encoded length.
pub(crate) fn read(bytes: &[u8]) -> Result<(Record<'_>, usize), ReadError> {
    if bytes.len() < HEADER {
        return Err(ReadError::Torn);
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let body = bytes
        .get(HEADER..HEADER.saturating_add(len))
        .ok_or(ReadError::Torn)?;
    if crc32c::crc32c(body) != crc {
        return Err(ReadError::Torn);
    }
    let mut r = Cursor(body);
    let kind = r.u8()?;
    let group = r.u32()?;
    let record = match kind {
        ENTRIES => {
            let first = r.u64()?;
            let n = r.u32()? as usize;
            let mut entries = Vec::with_capacity(n.min(r.0.len() / 4));
            for _ in 0..n {
                let len = r.u32()? as usize;
                entries.push(r.take(len)?);
            }
            Record::Entries {
                group,
                first,
                entries,
            }
        }
        VOTE => Record::Vote {
            group,
            vote: r.rest(),
        },
        COMMITTED => Record::Committed {
            group,
            committed: r.rest(),
        },
        TRUNCATE => Record::Truncate {
            group,
            since: r.u64()?,
        },
        PURGE => Record::Purge {
            group,
            upto: r.u64()?,
            log_id: r.rest(),
        },
        _ => return Err(ReadError::Malformed),
    };
    if !r.0.is_empty() {
        return Err(ReadError::Malformed);
    }
    Ok((record, HEADER + len))
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if self.0.len() < n {
            return Err(ReadError::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, ReadError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, ReadError> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut bytes: &[u8]) -> Vec<Record<'_>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (record, len) = read(bytes).unwrap();
            out.push(record);
            bytes = &bytes[len..];
        }
        out
    }

    #[test]
    fn every_kind_round_trips() {
        let mut buf = Vec::new();
        let entries = [b"a".to_vec(), Vec::new(), b"ccc".to_vec()];
        put_entries(&mut buf, 3, 10, &entries, |e, b| {
            b.extend_from_slice(e);
            Ok(())
        })
        .unwrap();
        put_vote(&mut buf, 3, b"v");
        put_committed(&mut buf, 4, b"");
        put_truncate(&mut buf, 5, 7);
        put_purge(&mut buf, 6, 9, b"id");
        assert_eq!(
            all(&buf),
            vec![
                Record::Entries {
                    group: 3,
                    first: 10,
                    entries: vec![b"a", b"", b"ccc"]
                },
                Record::Vote {
                    group: 3,
                    vote: b"v"
                },
                Record::Committed {
                    group: 4,
                    committed: b""
                },
                Record::Truncate { group: 5, since: 7 },
                Record::Purge {
                    group: 6,
                    upto: 9,
                    log_id: b"id"
                },
            ]
        );
    }

    #[test]
    fn a_cut_or_flipped_record_reads_as_torn() {
        let mut buf = Vec::new();
        put_vote(&mut buf, 1, b"vote-bytes");
        for cut in 0..buf.len() {
            assert_eq!(read(&buf[..cut]).err(), Some(ReadError::Torn), "cut {cut}");
        }
        for bit in 0..buf.len() * 8 {
            let mut flipped = buf.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(read(&flipped).is_err(), "bit {bit}");
        }
    }
}
