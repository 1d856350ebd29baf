//! `lockplane cluster up | status | add-node | remove-node` and `lockplane node --join` as
//! real processes, started and stopped by PID: a local cluster comes up with a gateway and
//! reports its addresses and API key, a fourth node joins and is made a voter of every group, is removed again, and
//! SIGTERM to `cluster up` stops every node it started.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{Process, TempDir, admin_token, free_ports, http};

const BIN: &str = env!("CARGO_BIN_EXE_lockplane");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn a_local_cluster_comes_up_takes_a_node_in_and_out_and_stops_on_sigterm() {
    let dir = TempDir::new("cluster-up");
    let http_port = free_ports(1)[0];
    let up = Process::start(
        Command::new(BIN)
            .args(["cluster", "up", "--nodes", "3", "--groups", "2"])
            .args([
                "--http",
                &format!("127.0.0.1:{http_port}"),
                "--api-key",
                "cluster-key",
            ])
            .arg("--data-dir")
            .arg(&dir.0),
    );
    let lines = up.wait_for("cluster ready");
    let addrs: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("node ") && l.contains("(data in"))
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .collect();
    assert_eq!(addrs.len(), 3, "{lines:#?}");

    let gateway = up.wait_for("gateway serving");
    assert!(
        gateway.iter().any(|l| l.contains("API key cluster-key")),
        "{gateway:#?}"
    );
    let (code, body) = http(
        http_port,
        "POST",
        "/v1/locks/through-the-gateway/acquire",
        "cluster-key",
        r#"{"owner": "me", "ttl_ms": 60000}"#,
    );
    assert_eq!(code, 200, "{body}");

    let status = stdout(&run(&["cluster", "status", "--endpoint", &addrs[1]]));
    assert!(status.contains("2 lock groups"), "{status}");
    for addr in &addrs {
        assert!(status.contains(addr.as_str()), "{status}");
    }

    let node_pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.split_whitespace().nth(3) == Some(&up.child.id().to_string()))
        })
        .collect();
    assert_eq!(
        node_pids.len(),
        4,
        "cluster up runs three node processes and a gateway"
    );

    let token = admin_token(&dir.0);
    let run_admin = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("LOCKPLANE_ADMIN_TOKEN", &token)
            .output()
            .unwrap()
    };
    let port = free_ports(1)[0];
    let fourth = Process::start(
        Command::new(BIN)
            .args(["node", "--id", "4", "--groups", "2", "--region", "eu"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.0.join("node-4"))
            .args(["--join", &addrs[0], "--stop-on-stdin-eof"])
            .env("LOCKPLANE_ADMIN_TOKEN", &token),
    );
    fourth.wait_for("joined via");
    let refused = run(&["cluster", "add-node", "--endpoint", &addrs[0], "--id", "4"]);
    assert_eq!(
        refused.status.code(),
        Some(77),
        "no admin token: permission"
    );
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("needs the cluster's admin token"),
        "{message}"
    );
    let added = stdout(&run_admin(&[
        "cluster",
        "add-node",
        "--endpoint",
        &addrs[0],
        "--id",
        "4",
    ]));
    assert!(added.contains("voter of every group"), "{added}");
    let status = stdout(&run(&["cluster", "status", "--endpoint", &addrs[2]]));
    assert!(status.contains("region eu"), "{status}");
    assert!(status.contains("1,2,3,4"), "{status}");

    let removed = stdout(&run_admin(&[
        "cluster",
        "remove-node",
        "--endpoint",
        &addrs[0],
        "--id",
        "4",
    ]));
    assert!(removed.contains("node 4 removed"), "{removed}");
    let mut fourth = fourth;
    drop(fourth.child.stdin.take());
    assert!(fourth.child.wait().unwrap().success());

    let missing = run_admin(&["cluster", "add-node", "--endpoint", &addrs[0], "--id", "9"]);
    assert!(!missing.status.success());
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(message.contains("node 9 has not joined"), "{message}");

    up.terminate("all stopped");
    for pid in node_pids {
        assert!(!pid_alive(pid), "node process {pid} outlived cluster up");
    }
}

#[test]
fn cluster_up_refuses_bad_flags_with_a_clear_message() {
    for (args, expected) in [
        (
            vec!["cluster", "up", "--nodes", "0"],
            "--nodes must be in 1..=9",
        ),
        (
            vec!["cluster", "up", "--groups", "0"],
            "--groups must be in 1..=1024",
        ),
        (vec!["cluster", "add-node"], "--id"),
        (
            vec!["cluster", "up", "--kafka", "kafka"],
            "--kafka: \"kafka\" is not HOST:PORT",
        ),
        (
            vec![
                "cluster",
                "up",
                "--kafka",
                "k:1",
                "--postgres",
                "mysql://db/x",
            ],
            "--postgres: not a PostgreSQL URL",
        ),
    ] {
        let output = run(&args);
        assert!(!output.status.success(), "{args:?}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
}
