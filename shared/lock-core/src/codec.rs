//! A minimal byte encoding for snapshots: LEB128 varints, length-prefixed UTF-8, and a
//! CRC-32C checksum. Reading never panics and never allocates more than the input holds.

use crate::error::SnapshotError;

/// Appends values to a byte buffer.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    pub(crate) fn u16(&mut self, value: u16) {
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u32_fixed(&mut self, value: u32) {
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    pub(crate) fn len(&mut self, len: usize) {
        self.varint(len as u64);
    }

    pub(crate) fn str(&mut self, value: &str) {
        self.len(value.len());
        self.buf.extend_from_slice(value.as_bytes());
    }

    pub(crate) fn opt_varint(&mut self, value: Option<u64>) {
        match value {
            Some(v) => {
                self.u8(1);
                self.varint(v);
            }
            None => self.u8(0),
        }
    }

    pub(crate) fn opt_str(&mut self, value: Option<&str>) {
        match value {
            Some(v) => {
                self.u8(1);
                self.str(v);
            }
            None => self.u8(0),
        }
    }
}

/// Reads values back from a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.buf.len() < n {
            return Err(SnapshotError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, SnapshotError> {
        let bytes = self.take(2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    pub(crate) fn varint(&mut self) -> Result<u64, SnapshotError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(SnapshotError::Corrupt("varint overflows u64"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SnapshotError::Corrupt("varint too long"))
    }

    /// A count of items that follow, each at least one byte long: bounded by the input so
    /// that a corrupt count cannot make the reader reserve huge amounts of memory.
    pub(crate) fn len(&mut self) -> Result<usize, SnapshotError> {
        let len = self.varint()?;
        if len > self.buf.len() as u64 {
            return Err(SnapshotError::Truncated);
        }
        Ok(len as usize)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, SnapshotError> {
        let len = self.len()?;
        std::str::from_utf8(self.take(len)?).map_err(|_| SnapshotError::Corrupt("invalid utf-8"))
    }

    pub(crate) fn flag(&mut self) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(SnapshotError::Corrupt("invalid option tag")),
        }
    }

    pub(crate) fn opt_varint(&mut self) -> Result<Option<u64>, SnapshotError> {
        Ok(if self.flag()? {
            Some(self.varint()?)
        } else {
            None
        })
    }

    pub(crate) fn opt_str(&mut self) -> Result<Option<&'a str>, SnapshotError> {
        Ok(if self.flag()? {
            Some(self.str()?)
        } else {
            None
        })
    }
}

/// CRC-32C (Castagnoli), the checksum etcd's WAL and many storage engines use.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = crc32c_table();
    let mut crc = !0u32;
    for &byte in bytes {
        crc = TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        let values = [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX];
        let mut w = Writer::default();
        for v in values {
            w.varint(v);
        }
        let mut r = Reader::new(&w.buf);
        for v in values {
            assert_eq!(r.varint().unwrap(), v);
        }
        assert!(r.is_empty());
        let overflow = [0xff; 9].into_iter().chain([0x02]).collect::<Vec<_>>();
        assert!(Reader::new(&overflow).varint().is_err());
        assert_eq!(Reader::new(&[0x80]).varint(), Err(SnapshotError::Truncated));
    }

    #[test]
    fn lengths_beyond_the_input_are_refused() {
        let mut w = Writer::default();
        w.varint(1 << 40);
        assert_eq!(Reader::new(&w.buf).str(), Err(SnapshotError::Truncated));
    }
}
