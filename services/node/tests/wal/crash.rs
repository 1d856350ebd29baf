//! A writer process killed with SIGKILL mid-stream: every append it had seen acknowledged
//! must be there when the log is reopened, and the log must stay consecutive.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::{TempDir, done, entry, open};

const CHILD_DIR: &str = "LOCKPLANE_WAL_CRASH_DIR";

/// Runs only as the child of `acknowledged_appends_survive_kill_9`: appends forever,
/// printing each acknowledged index.
#[test]
#[ignore = "run by acknowledged_appends_survive_kill_9 as a child process"]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let engine = open(std::path::Path::new(&dir));
    let group = engine.group(1);
    let mut next = group.read(|s| s.last_index()).map_or(1, |l| l + 1);
    loop {
        let (cb, rx) = done();
        let batch: Vec<_> = (next..next + 3).map(|i| entry(1, i)).collect();
        group.append(next, batch, cb);
        rx.recv().unwrap().unwrap();
        next += 3;
        println!("acked {}", next - 1);
    }
}

#[test]
fn acknowledged_appends_survive_kill_9() {
    let dir = TempDir::new("kill9");
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash::crash_child_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acked = 0u64;
        for line in BufReader::new(stdout).lines() {
            if let Some(n) = line.unwrap().strip_prefix("acked ") {
                acked = n.parse().unwrap();
                if acked >= 300 * (round + 1) {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let engine = open(dir.path());
        let group = engine.group(1);
        let last = group.read(|s| s.last_index()).unwrap();
        assert!(last >= acked, "round {round}: acked {acked}, found {last}");
        let all = group.read(|s| s.entries(1..=last));
        let expected: Vec<_> = (1..=last).map(|i| entry(1, i)).collect();
        assert_eq!(all, expected, "round {round}: the log is not consecutive");
    }
}
