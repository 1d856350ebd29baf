//! Bytes for what the write-ahead log stores: entries, votes and log ids (postcard, a
//! compact varint serde format).

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Entry;
use crate::wal::LogEntry;

impl LogEntry for Entry {
    fn encode(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        *buf = to_extend(self, std::mem::take(buf))?;
        Ok(())
    }

    fn decode(bytes: &[u8]) -> io::Result<Self> {
        from_bytes(bytes)
    }
}

/// Appends `value`'s bytes to `buf`.
pub(crate) fn to_extend<T: Serialize>(value: &T, buf: Vec<u8>) -> io::Result<Vec<u8>> {
    postcard::to_extend(value, buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// `value` as bytes.
pub(crate) fn to_vec<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    to_extend(value, Vec::new())
}

/// Reads a value back; bad bytes are `InvalidData`.
pub(crate) fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
