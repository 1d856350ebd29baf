//! The log on a disk that fills up (a real tmpfs) and with an fsync that fails (injected):
//! nothing unlogged is ever acknowledged, a full disk is waited out, a failed fsync stops
//! the log for good, and what was acknowledged is there after reopening.

use std::sync::Arc;
use std::time::Duration;

use lockplane_node::wal::{FaultHooks, LogEngine, LogHealth, Options};

use super::common::SmallDisk;
use super::{Bytes, append_sync, done, snapshot};

/// An entry big enough that appending it needs fresh pages of the tmpfs.
fn big_entry(group: u32, index: u64) -> Bytes {
    let mut bytes = format!("g{group}-i{index}-").into_bytes();
    bytes.resize(16 << 10, b'x');
    Bytes(bytes)
}

/// A log on `disk` whose every batch passes the segment size, so every commit rotates.
fn rotating_log(disk: &SmallDisk) -> (std::path::PathBuf, Options, LogEngine<Bytes>) {
    let dir = disk.path().join("wal");
    let options = Options {
        segment_bytes: 1,
        ..Options::default()
    };
    let engine = LogEngine::<Bytes>::open(&dir, options.clone()).unwrap();
    (dir, options, engine)
}

/// Waits (bounded) until `check` holds.
fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting until {what}");
}

#[test]
fn a_full_disk_holds_writes_unacknowledged_until_space_returns() {
    let Some(disk) = SmallDisk::mount("wal-full", 1 << 20) else {
        return;
    };
    let dir = disk.path().join("wal");
    let options = Options {
        segment_bytes: 64 << 20,
        ..Options::default()
    };
    let before = {
        let engine = LogEngine::<Bytes>::open(&dir, options.clone()).unwrap();
        append_sync(&engine, 1, 1, 3);
        disk.fill();
        let (cb, acked) = done();
        engine
            .group(1)
            .append(4, vec![big_entry(1, 4), big_entry(1, 5)], cb);
        eventually("the log reports the full disk", || {
            matches!(engine.health(), LogHealth::Stalled { .. })
        });
        // Later writes queue behind the stalled one, in order, and are not acknowledged.
        let (vote_cb, vote_acked) = done();
        engine.group(2).save_vote(b"vote-2".to_vec(), vote_cb);
        std::thread::sleep(Duration::from_millis(200));
        assert!(acked.try_recv().is_err(), "acknowledged on a full disk");
        assert!(
            vote_acked.try_recv().is_err(),
            "acknowledged on a full disk"
        );
        assert!(engine.stats().write_errors > 0);
        let health = engine.health().describe();
        assert!(health.contains("disk is full"), "{health}");

        disk.free();
        acked.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
        vote_acked
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(engine.health(), LogHealth::Healthy);
        append_sync(&engine, 1, 6, 1);
        snapshot(&engine)
    };
    let engine = LogEngine::<Bytes>::open(&dir, options).unwrap();
    assert_eq!(snapshot(&engine), before, "reopened log differs");
    engine.group(1).read(|s| {
        assert_eq!(s.last_index(), Some(6));
        assert_eq!(s.entries(4..=5), vec![big_entry(1, 4), big_entry(1, 5)]);
    });
}

#[test]
fn stopping_on_a_full_disk_fails_the_waiting_writes_and_keeps_the_log_readable() {
    let Some(disk) = SmallDisk::mount("wal-full-stop", 1 << 20) else {
        return;
    };
    let dir = disk.path().join("wal");
    let (failed, before) = {
        let engine = LogEngine::<Bytes>::open(&dir, Options::default()).unwrap();
        append_sync(&engine, 1, 1, 2);
        let before = snapshot(&engine);
        disk.fill();
        let (cb, acked) = done();
        engine.group(1).append(3, vec![big_entry(1, 3)], cb);
        eventually("the log reports the full disk", || {
            matches!(engine.health(), LogHealth::Stalled { .. })
        });
        drop(engine);
        (acked.recv_timeout(Duration::from_secs(5)).unwrap(), before)
    };
    assert!(failed.is_err(), "a write never logged was acknowledged");
    disk.free();
    let engine = LogEngine::<Bytes>::open(&dir, Options::default()).unwrap();
    assert_eq!(snapshot(&engine), before);
}

#[test]
fn a_full_disk_at_rotation_keeps_writing_the_active_segment() {
    let Some(disk) = SmallDisk::mount("wal-full-rotate", 1 << 20) else {
        return;
    };
    let (dir, options, engine) = rotating_log(&disk);
    append_sync(&engine, 1, 1, 1);
    let files = || std::fs::read_dir(&dir).unwrap().count();
    let (segments, on_disk) = (engine.stats().segments, files());
    // No file can be created, but the active segment can still grow: the batch is
    // acknowledged, and the failed rotation leaves no half-made segment behind.
    disk.fill_inodes();
    append_sync(&engine, 1, 2, 2);
    assert_eq!(engine.health(), LogHealth::Healthy);
    assert_eq!((engine.stats().segments, files()), (segments, on_disk));
    assert!(engine.stats().write_errors > 0);
    disk.free();
    // The next rotation is tried a second after the one that failed.
    std::thread::sleep(Duration::from_millis(1_100));
    append_sync(&engine, 1, 4, 1);
    assert!(engine.stats().segments > segments, "rotation resumes");
    let before = snapshot(&engine);
    drop(engine);
    let engine = LogEngine::<Bytes>::open(&dir, options).unwrap();
    assert_eq!(snapshot(&engine), before);
}

#[test]
fn a_new_segment_whose_checkpoint_finds_the_disk_full_is_deleted_again() {
    let Some(disk) = SmallDisk::mount("wal-full-checkpoint", 4 << 20) else {
        return;
    };
    let (dir, options, engine) = rotating_log(&disk);
    // Enough votes that a checkpoint needs several pages.
    for group in 1..=300 {
        let (cb, acked) = done();
        engine
            .group(group)
            .save_vote(format!("vote-of-group-{group:04}").into_bytes(), cb);
        acked.recv().unwrap().unwrap();
    }
    let files = || {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let on_disk = files();
    // One free page: a new segment gets its header into it, but not its checkpoint.
    disk.fill();
    disk.give_back(4096);
    let errors = engine.stats().write_errors;
    let (cb, acked) = done();
    engine.group(1).save_vote(b"v".to_vec(), cb);
    acked.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert!(engine.stats().write_errors > errors, "no rotation failed");
    assert_eq!(files(), on_disk, "a half-made segment was left behind");
    assert_eq!(engine.health(), LogHealth::Healthy);
    let before = snapshot(&engine);
    drop(engine);
    // Opening starts a new segment, which needs space.
    disk.free();
    let engine = LogEngine::<Bytes>::open(&dir, options).unwrap();
    assert_eq!(snapshot(&engine), before);
}

#[test]
fn a_failed_fsync_stops_the_log_for_good_and_acknowledges_nothing_after_it() {
    let dir = super::TempDir::new("wal-fsync");
    let hooks = Arc::new(FaultHooks::default());
    let options = Options {
        faults: Some(Arc::clone(&hooks)),
        ..Options::default()
    };
    let before = {
        let engine = LogEngine::<Bytes>::open(dir.path(), options.clone()).unwrap();
        append_sync(&engine, 1, 1, 3);
        let before = snapshot(&engine);
        hooks.fail_next_syncs(1);
        let (cb, acked) = done();
        engine.group(1).append(4, vec![super::entry(1, 4)], cb);
        let error = acked
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap_err();
        assert!(error.to_string().contains("fsync failed"), "{error}");
        // The fsync would work now, but its failure is not forgotten: a second fsync can
        // report success for pages the kernel already dropped.
        let (cb, acked) = done();
        engine.group(1).save_vote(b"later".to_vec(), cb);
        assert!(acked.recv_timeout(Duration::from_secs(5)).unwrap().is_err());
        let health = engine.health();
        assert!(matches!(health, LogHealth::Failed { .. }), "{health:?}");
        assert!(
            health.describe().contains("restart"),
            "{}",
            health.describe()
        );
        before
    };
    // What was acknowledged is there; entry 4 may or may not be (its fsync's fate is
    // unknown), but nothing after it is.
    let engine = LogEngine::<Bytes>::open(dir.path(), Options::default()).unwrap();
    engine.group(1).read(|s| {
        assert!(s.last_index() >= Some(3));
        assert!(
            s.vote.is_none(),
            "a vote written after the failed fsync came back"
        );
    });
    let reopened = snapshot(&engine);
    let acked_entries =
        |state: &[(u32, lockplane_node::wal::GroupState<Bytes>)]| state[0].1.entries(1..=3);
    assert_eq!(acked_entries(&reopened), acked_entries(&before));
}
