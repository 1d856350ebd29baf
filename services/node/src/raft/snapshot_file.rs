//! A group's state-machine snapshot on disk: one current file, replaced atomically.
//!
//! ```text
//! "LPSN" | version: u16 LE | meta_len: u32 LE | meta (postcard SnapshotMeta) | data | crc32c: u32 LE
//! ```
//!
//! Written to `snapshot.tmp`, synced, renamed over `snapshot`, and the directory synced, so a
//! crash leaves either the old snapshot or the new one, never a mix. On a full disk the
//! partial `snapshot.tmp` is deleted and the save waits for space ([`save_when_space`]).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::BasicNode;
use openraft::SnapshotMeta;

use super::NodeId;
use super::codec::{from_bytes, to_vec};
use crate::wal::{FULL_DISK_FIRST_RETRY, FULL_DISK_MAX_RETRY, is_disk_full};

const MAGIC: &[u8; 4] = b"LPSN";
const VERSION: u16 = 1;

/// Snapshot metadata as openraft defines it for a lock group.
pub(crate) type Meta = SnapshotMeta<NodeId, BasicNode>;

/// The directory holding one group's snapshot.
pub(crate) struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// Opens (creating) `dir`.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn current(&self) -> PathBuf {
        self.dir.join("snapshot")
    }

    /// Durably replaces the current snapshot with `meta` and `data`.
    pub(crate) fn save(&self, meta: &Meta, data: &[u8]) -> io::Result<()> {
        let meta_bytes = to_vec(meta)?;
        let mut bytes = Vec::with_capacity(16 + meta_bytes.len() + data.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        let meta_len = u32::try_from(meta_bytes.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "snapshot metadata too large")
        })?;
        bytes.extend_from_slice(&meta_len.to_le_bytes());
        bytes.extend_from_slice(&meta_bytes);
        bytes.extend_from_slice(data);
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let tmp = self.dir.join("snapshot.tmp");
        let written = fs::File::create(&tmp).and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        });
        if let Err(e) = written {
            // Give the space back; the old snapshot stays current.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, self.current())?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// The current snapshot, if one was ever saved. A damaged file is an error, not absence.
    pub(crate) fn load(&self) -> io::Result<Option<(Meta, Vec<u8>)>> {
        let bytes = match fs::read(self.current()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("snapshot {} is damaged: {what}", self.current().display()),
            )
        };
        if bytes.len() < 14 || &bytes[..4] != MAGIC {
            return Err(bad("not a snapshot file"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err(bad("checksum mismatch"));
        }
        let version = u16::from_le_bytes([body[4], body[5]]);
        if version != VERSION {
            return Err(bad(&format!("unsupported version {version}")));
        }
        let meta_len = u32::from_le_bytes([body[6], body[7], body[8], body[9]]) as usize;
        let meta_bytes = body
            .get(10..10 + meta_len)
            .ok_or_else(|| bad("truncated metadata"))?;
        let meta = from_bytes(meta_bytes)?;
        Ok(Some((meta, body[10 + meta_len..].to_vec())))
    }
}

/// Saves `meta` and `data` as the current snapshot of `dir` off the async threads. A full
/// disk is waited out (the group's state machine pauses meanwhile, as its log does); any
/// other error is returned.
pub(crate) async fn save_when_space(
    dir: Arc<SnapshotDir>,
    meta: Meta,
    data: Arc<Vec<u8>>,
) -> io::Result<()> {
    let mut pause = FULL_DISK_FIRST_RETRY;
    loop {
        let (dir, meta, data) = (Arc::clone(&dir), meta.clone(), Arc::clone(&data));
        let saved = tokio::task::spawn_blocking(move || dir.save(&meta, &data))
            .await
            .map_err(io::Error::other)?;
        match saved {
            Err(e) if is_disk_full(&e) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(FULL_DISK_MAX_RETRY);
            }
            other => return other,
        }
    }
}
