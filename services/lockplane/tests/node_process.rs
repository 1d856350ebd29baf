//! `lockplane node` as real processes, started and stopped by PID: a three-node cluster
//! elects a leader in every group, survives `kill -9` of a node and its restart from disk,
//! stops cleanly on SIGTERM, and refuses bad flags with a clear message; a `--bootstrap` node
//! prints its admin token once, and the token admits admin calls across a restart.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TempDir, free_ports, lines_of};

const GROUPS: u32 = 4;

/// A node process and the lines it prints, forwarded to a channel.
struct NodeProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for NodeProcess {
    /// A test that fails midway leaves no node running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn(id: u64, port: u16, dir: &Path, cluster: &str) -> NodeProcess {
    start_node(
        id,
        port,
        dir,
        &[
            "--groups",
            &GROUPS.to_string(),
            "--initial-cluster",
            cluster,
        ],
    )
}

/// `lockplane node --id ID --listen 127.0.0.1:PORT --data-dir DIR/node-ID ARGS…`.
fn start_node(id: u64, port: u16, dir: &Path, args: &[&str]) -> NodeProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockplane"))
        .args(["node", "--id", &id.to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join(format!("node-{id}")))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    NodeProcess { child, lines }
}

/// Reads what each node says about each group's leader until every given node's latest
/// view of every group names one of the given nodes.
fn wait_for_leaders(nodes: &mut [(u64, &NodeProcess)], views: &mut BTreeMap<(u64, u32), u64>) {
    let live: BTreeSet<u64> = nodes.iter().map(|(id, _)| *id).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (id, node) in nodes.iter() {
            while let Ok(line) = node.lines.try_recv() {
                // "… leader known group=G leader=L term=T"
                if line.contains("leader known") {
                    let field = |name: &str| -> u64 {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix(name))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                    };
                    views.insert((*id, field("group=") as u32), field("leader="));
                }
            }
        }
        let settled = (1..=GROUPS).all(|g| {
            live.iter().all(|id| {
                views
                    .get(&(*id, g))
                    .is_some_and(|leader| live.contains(leader))
            })
        });
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no settled leaders among {live:?}: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn terminate(mut node: NodeProcess) {
    let status = Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            assert!(status.success(), "node exited with {status}");
            return;
        }
        if Instant::now() >= deadline {
            let said: Vec<String> = node.lines.try_iter().collect();
            panic!("node did not stop on SIGTERM; its last lines: {said:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_node_processes_elect_survive_kill_9_and_stop_cleanly() {
    let dir = TempDir::new("node-proc");
    let ports = free_ports(3);
    let cluster = (1..=3)
        .map(|id| format!("{id}=127.0.0.1:{}", ports[id - 1]))
        .collect::<Vec<_>>()
        .join(",");
    let mut views = BTreeMap::new();
    let mut nodes: BTreeMap<u64, NodeProcess> = (1..=3)
        .map(|id| (id, spawn(id, ports[id as usize - 1], &dir.0, &cluster)))
        .collect();
    let watch = |nodes: &BTreeMap<u64, NodeProcess>, views: &mut BTreeMap<(u64, u32), u64>| {
        let mut live: Vec<(u64, &NodeProcess)> = nodes.iter().map(|(id, n)| (*id, n)).collect();
        wait_for_leaders(&mut live, views);
    };
    watch(&nodes, &mut views);

    // kill -9 the leader of group 1 and start it again from its disk: group 1 elects a new
    // leader, and the restarted node rejoins every group.
    let victim = views[&(1, 1)];
    let mut killed = nodes.remove(&victim).unwrap();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    views.retain(|(id, _), _| *id != victim);
    watch(&nodes, &mut views);
    let new_leader = views[&(*nodes.keys().next().unwrap(), 1)];
    assert_ne!(new_leader, victim, "group 1 kept a dead leader");
    nodes.insert(
        victim,
        spawn(victim, ports[victim as usize - 1], &dir.0, &cluster),
    );
    watch(&nodes, &mut views);

    // Stop group 1's leader cleanly: the other two elect again.
    let leader = views[&(victim, 1)];
    terminate(nodes.remove(&leader).unwrap());
    views.retain(|(id, _), _| *id != leader);
    watch(&nodes, &mut views);
    for (_, node) in nodes {
        terminate(node);
    }
}

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&["node", "--id", "4", "--initial-cluster", "1=127.0.0.1:7101"]);
    assert!(err.contains("does not list this node"), "{err}");
    let err = run(&["node", "--id", "1", "--initial-cluster", "1=nowhere"]);
    assert!(err.contains("is not HOST:PORT"), "{err}");
    let err = run(&["node", "--id", "1", "--groups", "0"]);
    assert!(err.contains("--groups must be in 1..=1024"), "{err}");
    let err = run(&[
        "node",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:1",
        "--initial-cluster",
        "1=127.0.0.1:2",
    ]);
    assert!(err.contains("but --listen is"), "{err}");
}

#[test]
fn a_bootstrapped_node_prints_its_admin_token_once_and_it_admits_admin_calls() {
    let dir = TempDir::new("node-bootstrap");
    let port = free_ports(1)[0];
    let start = || start_node(1, port, &dir.0, &["--groups", "2", "--bootstrap"]);
    let said = |node: &NodeProcess, needle: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = node.lines.recv_timeout(left).expect(needle);
            if line.contains(needle) {
                return line;
            }
        }
    };
    let node = start();
    let line = said(&node, "admin token: ");
    let token = line
        .split("admin token: ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let tenant = |token: &str| {
        Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args([
                "tenant",
                "create",
                "team",
                "--endpoint",
                &format!("127.0.0.1:{port}"),
            ])
            .env("LOCKPLANE_ADMIN_TOKEN", token)
            .output()
            .unwrap()
    };
    assert!(tenant(&token).status.success());
    assert_eq!(tenant("not-it").status.code(), Some(77));
    terminate(node);
    let again = start();
    said(&again, "has its admin token already");
    assert!(
        tenant(&token).status.success(),
        "the token survives a restart"
    );
    terminate(again);
}
