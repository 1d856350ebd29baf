//! Helpers shared by the node's test crates.
#![allow(dead_code)]

pub mod cluster;
pub mod grpc_cluster;
pub mod net;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("lockplane-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

use lock_core::{Acquire, Command, FencingToken, LockKey, Reply, Response, TenantId};
use lockplane_node::group::LockGroup;
use lockplane_node::host::Node;
use lockplane_node::raft::NodeId;
use lockplane_node::wal::GroupId;
use openraft::ServerState;
use std::time::Duration;
use testkit::history::{History, Outcome};

/// The ids of the nodes that are running (a stopped node's slot holds `None`).
pub fn running<T>(nodes: &std::collections::BTreeMap<NodeId, Option<T>>) -> Vec<NodeId> {
    nodes
        .iter()
        .filter(|(_, n)| n.is_some())
        .map(|(id, _)| *id)
        .collect()
}

/// The multi-threaded runtime every node test runs on (2 workers, like the machine).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// An acquire of `name` (tenant 1) by `owner` with a lease of `ttl_ms`, no wait.
pub fn acquire(name: &str, owner: &str, ttl_ms: u64) -> Command {
    Command::Acquire(Acquire::new(LockKey::new(TenantId(1), name), owner, ttl_ms))
}

/// The token of a grant; anything else fails the test.
pub fn granted(response: Response) -> FencingToken {
    match response {
        Ok(Reply::Granted(grant)) => grant.token,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// Among `nodes`, the one leading `group` in the highest term (an isolated old leader may
/// still believe it leads an older term).
pub fn leader_among<'a>(
    nodes: impl IntoIterator<Item = (NodeId, &'a Node)>,
    group: GroupId,
) -> Option<NodeId> {
    nodes
        .into_iter()
        .filter_map(|(id, node)| {
            let m = node.raft(group)?.metrics().borrow().clone();
            (m.state == ServerState::Leader).then_some((m.current_term, id))
        })
        .max()
        .map(|(_, id)| id)
}

/// Acquires `key` (tenant 1) at `group`, recording the attempt and its outcome in
/// `history`; returns the token if granted.
pub async fn recorded_acquire(
    history: &History,
    group: &LockGroup,
    key: &str,
    owner: &str,
    ttl_ms: u64,
) -> Option<FencingToken> {
    let op = history.invoke_acquire(key, owner, Duration::from_millis(ttl_ms));
    match group
        .propose(acquire(key, owner, ttl_ms), Duration::from_millis(800))
        .await
    {
        Ok(Ok(Reply::Granted(grant))) => {
            history.complete(op, Outcome::Granted(grant.token.0));
            Some(grant.token)
        }
        Ok(_) => {
            history.complete(op, Outcome::Refused);
            None
        }
        Err(_) => {
            history.complete(op, Outcome::Unknown);
            None
        }
    }
}

/// Releases `key` (tenant 1) at `group` (if a leader is known), recording it in `history`.
pub async fn recorded_release(
    history: &History,
    group: Option<std::sync::Arc<LockGroup>>,
    key: &str,
    owner: &str,
    token: FencingToken,
) {
    let op = history.invoke_release(key, owner, token.0);
    let Some(group) = group else {
        history.complete(op, Outcome::Unknown);
        return;
    };
    let release = Command::Release {
        key: LockKey::new(TenantId(1), key),
        owner: owner.into(),
        token,
    };
    let outcome = match group.propose(release, Duration::from_millis(800)).await {
        Ok(Ok(Reply::Released)) => Outcome::Released,
        Ok(_) => Outcome::Refused,
        Err(_) => Outcome::Unknown,
    };
    history.complete(op, outcome);
}

/// A small tmpfs mounted for one test, so the test can fill the disk under a node's log
/// and free it again. Mounting needs root, as the test suite does (`scripts/test.sh` runs
/// the fault suite as root): for another user [`SmallDisk::mount`] fails the test, unless
/// `LOCKPLANE_SKIP_ROOT_TESTS=1` says to skip it (it then returns `None`).
pub struct SmallDisk {
    dir: TempDir,
    filler: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` on a fresh directory.
    pub fn mount(name: &str, bytes: u64) -> Option<Self> {
        Self::mount_with(name, &format!("size={bytes},nr_inodes=4096"))
    }

    /// Mounts a tmpfs with mount `options` (`size=…,nr_inodes=…`) on a fresh directory.
    pub fn mount_with(name: &str, options: &str) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if !root {
            let skip = std::env::var("LOCKPLANE_SKIP_ROOT_TESTS").is_ok_and(|v| v == "1");
            assert!(
                skip,
                "this test mounts a tmpfs to fill, which needs root; run as root (as \
                 scripts/test.sh does) or set LOCKPLANE_SKIP_ROOT_TESTS=1 to skip it"
            );
            eprintln!("skipped (LOCKPLANE_SKIP_ROOT_TESTS=1): mounting a tmpfs needs root");
            return None;
        }
        let dir = TempDir::new(name);
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            mounted.success(),
            "mount a tmpfs on {}",
            dir.path().display()
        );
        let filler = dir.path().join("filler");
        Some(Self { dir, filler })
    }

    /// The mounted directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Takes every free byte, so the next write finds the disk full.
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .expect("create the filler");
        let chunk = vec![0u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("fill the tmpfs: {e}"),
            }
        }
    }

    /// Frees `bytes` of what [`SmallDisk::fill`] took.
    pub fn give_back(&self, bytes: u64) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.filler)
            .expect("open the filler");
        let len = file.metadata().expect("read the filler's size").len();
        file.set_len(len.saturating_sub(bytes))
            .expect("shorten the filler");
    }

    /// Takes every free inode (the tmpfs's file count), so the next file created finds the
    /// disk full while existing files can still grow.
    pub fn fill_inodes(&self) {
        let dir = self.dir.path().join("inodes");
        std::fs::create_dir_all(&dir).expect("create the inode filler dir");
        for n in 0.. {
            match std::fs::File::create(dir.join(n.to_string())) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("fill the tmpfs's inodes: {e}"),
            }
        }
    }

    /// Gives the filled space and inodes back.
    pub fn free(&self) {
        match std::fs::remove_file(&self.filler) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove the filler: {e}"),
        }
        let _ = std::fs::remove_dir_all(self.dir.path().join("inodes"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
