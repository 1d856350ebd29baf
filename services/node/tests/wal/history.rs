//! Random histories of appends, votes, truncations and purges over a few groups, with the
//! engine closed and reopened at random points (small segments, so rotation and deletion
//! happen too): after every reopen the log must read back exactly as it was.

use proptest::prelude::*;

use lockplane_node::wal::{LogEngine, Options};

use crate::{Bytes, TempDir, done, snapshot};

#[derive(Clone, Debug)]
enum Op {
    Append { group: u32, back: u64, n: u64 },
    Vote { group: u32, v: u8 },
    Committed { group: u32, v: u8 },
    Truncate { group: u32, back: u64 },
    Purge { group: u32, ahead: u64 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u32..3, 0u64..3, 1u64..6).prop_map(|(group, back, n)| Op::Append { group, back, n }),
        1 => (0u32..3, any::<u8>()).prop_map(|(group, v)| Op::Vote { group, v }),
        1 => (0u32..3, any::<u8>()).prop_map(|(group, v)| Op::Committed { group, v }),
        1 => (0u32..3, 0u64..4).prop_map(|(group, back)| Op::Truncate { group, back }),
        2 => (0u32..3, 0u64..6).prop_map(|(group, ahead)| Op::Purge { group, ahead }),
        1 => Just(Op::Reopen),
    ]
}

fn options() -> Options {
    Options {
        segment_bytes: 512,
        ..Options::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn reopening_never_changes_what_the_log_reads(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = TempDir::new("history");
        let mut engine = LogEngine::<Bytes>::open(dir.path(), options()).unwrap();
        let mut counter = 0u64;
        for op in ops {
            match op {
                Op::Append { group, back, n } => {
                    let g = engine.group(group);
                    let next = g.read(|s| s.last_index().map_or(s.purged.as_ref().map_or(1, |p| p.0 + 1), |l| l + 1));
                    let first = next.saturating_sub(back).max(g.read(|s| s.purged.as_ref().map_or(1, |p| p.0 + 1)));
                    let entries = (0..n).map(|_| { counter += 1; Bytes(counter.to_le_bytes().to_vec()) }).collect();
                    let (cb, rx) = done();
                    g.append(first, entries, cb);
                    rx.recv().unwrap().unwrap();
                }
                Op::Vote { group, v } => {
                    let (cb, rx) = done();
                    engine.group(group).save_vote(vec![v], cb);
                    rx.recv().unwrap().unwrap();
                }
                Op::Committed { group, v } => engine.group(group).save_committed(vec![v]),
                Op::Truncate { group, back } => {
                    let g = engine.group(group);
                    if let Some(last) = g.read(|s| s.last_index()) {
                        g.truncate(last.saturating_sub(back).max(1));
                    }
                }
                Op::Purge { group, ahead } => {
                    let g = engine.group(group);
                    if let Some(first) = g.read(|s| s.first_index()) {
                        g.purge(first + ahead, (first + ahead).to_le_bytes().to_vec());
                    }
                }
                Op::Reopen => {
                    let before = snapshot(&engine);
                    drop(engine);
                    engine = LogEngine::<Bytes>::open(dir.path(), options()).unwrap();
                    prop_assert_eq!(snapshot(&engine), before);
                }
            }
        }
        let before = snapshot(&engine);
        drop(engine);
        let engine = LogEngine::<Bytes>::open(dir.path(), options()).unwrap();
        prop_assert_eq!(snapshot(&engine), before);
    }
}
