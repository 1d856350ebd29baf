//! Tests of the node's write-ahead log through its public API: durability across reopen,
//! torn tails, corruption, group commit, segment rotation and deletion, random histories,
//! and a writer process killed with SIGKILL.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod crash;
mod disk_faults;
mod history;

pub use common::TempDir;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use lockplane_node::wal::{Done, GroupState, LogEngine, LogEntry, Options};

/// A test entry: opaque bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl LogEntry for Bytes {
    fn encode(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.extend_from_slice(&self.0);
        Ok(())
    }

    fn decode(bytes: &[u8]) -> io::Result<Self> {
        Ok(Bytes(bytes.to_vec()))
    }
}

pub fn entry(group: u32, index: u64) -> Bytes {
    Bytes(format!("g{group}-i{index}").into_bytes())
}

/// A callback and the receiver that waits for it.
pub fn done() -> (Done, mpsc::Receiver<io::Result<()>>) {
    let (tx, rx) = mpsc::channel();
    (Box::new(move |r| drop(tx.send(r))), rx)
}

pub fn open(dir: &Path) -> LogEngine<Bytes> {
    LogEngine::open(dir, Options::default()).unwrap()
}

pub fn append_sync(engine: &LogEngine<Bytes>, group: u32, first: u64, n: u64) {
    let (cb, rx) = done();
    let entries = (first..first + n).map(|i| entry(group, i)).collect();
    engine.group(group).append(first, entries, cb);
    rx.recv().unwrap().unwrap();
}

/// Every group that holds anything, with its state (a group handle taken only to read
/// creates an empty state that is never written, so empty states are left out).
pub fn snapshot(engine: &LogEngine<Bytes>) -> Vec<(u32, GroupState<Bytes>)> {
    engine
        .group_ids()
        .into_iter()
        .map(|id| (id, engine.group(id).read(|s| s.clone())))
        .filter(|(_, state)| *state != GroupState::default())
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

#[test]
fn everything_written_is_there_after_reopen() {
    let dir = TempDir::new("reopen");
    let before = {
        let engine = open(dir.path());
        append_sync(&engine, 1, 1, 10);
        append_sync(&engine, 2, 1, 3);
        let (cb, rx) = done();
        engine.group(1).save_vote(b"vote-1".to_vec(), cb);
        rx.recv().unwrap().unwrap();
        engine.group(1).save_committed(b"c-7".to_vec());
        engine.group(1).truncate(9);
        engine.group(1).purge(3, b"id-3".to_vec());
        append_sync(&engine, 1, 9, 2);
        snapshot(&engine)
    };
    let engine = open(dir.path());
    assert_eq!(snapshot(&engine), before);
    let g1 = engine.group(1);
    g1.read(|s| {
        assert_eq!((s.first_index(), s.last_index()), (Some(4), Some(10)));
        assert_eq!(s.vote.as_deref(), Some(&b"vote-1"[..]));
        assert_eq!(s.committed.as_deref(), Some(&b"c-7"[..]));
        assert_eq!(s.purged, Some((3, b"id-3".to_vec())));
        assert_eq!(s.entries(9..=9), vec![entry(1, 9)]);
    });
}

#[test]
fn a_torn_tail_is_dropped_at_every_cut_point() {
    let dir = TempDir::new("torn");
    {
        let engine = open(dir.path());
        append_sync(&engine, 1, 1, 5);
        append_sync(&engine, 1, 6, 1);
    }
    let file = segments(dir.path()).pop().unwrap();
    let whole = std::fs::read(&file).unwrap();
    let last_record = whole.len() - (8 + 1 + 4 + 8 + 4 + 4 + entry(1, 6).0.len());
    for cut in last_record..whole.len() {
        std::fs::write(&file, &whole[..cut]).unwrap();
        let engine = open(dir.path());
        let last = engine.group(1).read(|s| s.last_index());
        assert_eq!(last, Some(5), "cut at {cut}");
        drop(engine);
        // Restore the layout for the next cut: only the first segment holds the records.
        for extra in segments(dir.path()).into_iter().filter(|p| *p != file) {
            std::fs::remove_file(extra).unwrap();
        }
    }
    let mut flipped = whole.clone();
    *flipped.last_mut().unwrap() ^= 0xff;
    std::fs::write(&file, &flipped).unwrap();
    let engine = open(dir.path());
    assert_eq!(engine.group(1).read(|s| s.last_index()), Some(5));
}

#[test]
fn damage_before_the_newest_segment_refuses_to_open() {
    let dir = TempDir::new("corrupt");
    {
        let engine = open(dir.path());
        append_sync(&engine, 1, 1, 5);
    }
    drop(open(dir.path()));
    let files = segments(dir.path());
    assert!(files.len() >= 2, "reopening starts a new segment");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x55;
    std::fs::write(&files[0], &bytes).unwrap();
    let err = LogEngine::<Bytes>::open(dir.path(), Options::default())
        .err()
        .unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn concurrent_groups_share_fsyncs() {
    let dir = TempDir::new("group-commit");
    let engine = open(dir.path());
    let threads = 8;
    let per_thread = 200;
    std::thread::scope(|scope| {
        for group in 0..threads {
            let handle = engine.group(group);
            scope.spawn(move || {
                for i in 1..=per_thread {
                    let (cb, rx) = done();
                    handle.append(i, vec![entry(group, i)], cb);
                    rx.recv().unwrap().unwrap();
                }
            });
        }
    });
    let stats = engine.stats();
    let appends = u64::from(threads) * per_thread;
    assert_eq!(stats.records, appends);
    assert!(
        stats.fsyncs < appends,
        "{} fsyncs for {appends} appends: no write shared an fsync",
        stats.fsyncs
    );
    drop(engine);
    let engine = open(dir.path());
    for group in 0..threads {
        assert_eq!(engine.group(group).read(|s| s.len()), per_thread as usize);
    }
}

#[test]
fn segments_rotate_and_are_deleted_once_purged() {
    let dir = TempDir::new("rotate");
    let options = Options {
        segment_bytes: 4 << 10,
        ..Options::default()
    };
    let engine = LogEngine::<Bytes>::open(dir.path(), options.clone()).unwrap();
    append_sync(&engine, 9, 1, 1);
    for round in 0..50u64 {
        append_sync(&engine, 1, round * 20 + 1, 20);
        engine.group(1).purge(round * 20 + 10, b"id".to_vec());
    }
    let stats = engine.stats();
    assert!(stats.segments > 3, "group 9 pins every segment: {stats:?}");
    assert_eq!(engine.pinning_groups(), vec![9]);
    engine.group(9).purge(1, b"id".to_vec());
    append_sync(&engine, 1, 1001, 1);
    assert!(engine.stats().segments <= 2, "{:?}", engine.stats());
    assert_eq!(segments(dir.path()).len() as u64, engine.stats().segments);
    let before = snapshot(&engine);
    drop(engine);
    let engine = LogEngine::<Bytes>::open(dir.path(), options).unwrap();
    assert_eq!(
        snapshot(&engine),
        before,
        "checkpoints carry purges and votes forward"
    );
}

#[test]
fn a_failed_callback_path_reports_errors_not_panics() {
    let dir = TempDir::new("empty");
    let engine = open(dir.path());
    let (cb, rx) = done();
    engine.group(1).append(1, Vec::new(), cb);
    assert!(
        rx.recv().unwrap().is_ok(),
        "an empty append completes at once"
    );
}
