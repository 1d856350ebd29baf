//! Each node's data directory on its own size-limited tmpfs, so a run can fill a node's
//! disk (the `disk-full` fault) and give the space back, as a real full disk would.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// How big each node's disk is: far more than a run writes (old log segments are deleted,
/// one snapshot per group is kept), and only what is written takes memory.
const SIZE: &str = "512m";

/// A tmpfs mounted on a node's data directory, unmounted on drop.
pub struct NodeDisk {
    dir: PathBuf,
}

impl NodeDisk {
    /// Mounts a fresh tmpfs on `dir` (created if missing).
    pub fn mount(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={SIZE},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .context("cannot run mount")?;
        if !status.success() {
            bail!("cannot mount a tmpfs on {} ({status})", dir.display());
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Gives the space back.
    pub fn free(&self) -> anyhow::Result<()> {
        std::fs::remove_file(filler(&self.dir)).context("cannot remove the filler file")
    }
}

fn filler(dir: &Path) -> PathBuf {
    dir.join("disk-full-filler")
}

/// Takes every free byte of the disk holding `dir` (hundreds of megabytes of blocking
/// writes: run it off the async threads); returns how many.
pub fn fill(dir: &Path) -> anyhow::Result<u64> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(filler(dir))
        .context("cannot create the filler file")?;
    let chunk = vec![0u8; 1 << 16];
    let mut taken = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => return Ok(taken),
            Ok(n) => taken += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return Ok(taken),
            Err(e) => return Err(e).context("cannot fill the disk"),
        }
    }
}

impl Drop for NodeDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
