//! Segment files: `wal-<seq>.log`, each starting with a magic header, then records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The first bytes of every segment file (format version 1).
pub(crate) const MAGIC: &[u8; 8] = b"LPWAL001";

/// The path of segment `seq` in `dir`.
pub(crate) fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("wal-{seq:016x}.log"))
}

/// The segment numbers present in `dir`, oldest first.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
        {
            if let Ok(seq) = u64::from_str_radix(hex, 16) {
                seqs.push(seq);
            }
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Creates segment `seq` with its header, durably (file and directory entry).
pub(crate) fn create(dir: &Path, seq: u64) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path(dir, seq))?;
    file.write_all(MAGIC)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

/// Makes creations, renames and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Cuts a segment back to `len` bytes (dropping a torn tail), durably.
pub(crate) fn truncate(dir: &Path, seq: u64, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path(dir, seq))?;
    file.set_len(len)?;
    file.sync_all()
}
