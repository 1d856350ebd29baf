//! A gateway killed (SIGKILL) while a client waits in a key's queue through it, on a
//! three-node cluster of real processes: the client gets an error, never a grant; the wait
//! leaves the queue (the node sees its caller gone); a new gateway finds the lock as it was,
//! and after the holder's release the key is free, with no grant to the ghost waiter.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Process, TempDir, admin_token, free_ports, http};

const BIN: &str = env!("CARGO_BIN_EXE_lockplane");
const KEY: &str = "restart-key";

fn gateway(port: u16, endpoint: &str) -> Process {
    let gateway = Process::start(Command::new(BIN).args([
        "gateway",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--endpoint",
        endpoint,
    ]));
    gateway.wait_for("gateway serving");
    gateway
}

/// The key's status through the gateway on `port`, read at the group's leader.
fn status(port: u16) -> serde_json::Value {
    let (code, body) = http(
        port,
        "GET",
        "/v1/locks/job?consistency=linearizable",
        KEY,
        "",
    );
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Acquires `job` through the gateway on `port` with `body`; the fencing token.
fn acquire(port: u16, body: &str) -> u64 {
    let (code, answer) = http(port, "POST", "/v1/locks/job/acquire", KEY, body);
    assert_eq!(code, 200, "{answer}");
    let granted: serde_json::Value = serde_json::from_str(&answer).unwrap();
    granted["fencing_token"].as_u64().unwrap()
}

#[test]
fn a_gateway_killed_mid_wait_fails_its_client_and_leaves_no_ghost_waiter() {
    let dir = TempDir::new("gateway-restart");
    let up = Process::start(
        Command::new(BIN)
            .args(["cluster", "up", "--nodes", "3", "--groups", "2"])
            .arg("--data-dir")
            .arg(&dir.0),
    );
    let lines = up.wait_for("cluster ready");
    let endpoint = lines
        .iter()
        .find(|l| l.starts_with("node ") && l.contains("(data in"))
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .unwrap();
    let created = Command::new(BIN)
        .args([
            "tenant",
            "create",
            "restarts",
            "--api-key",
            KEY,
            "--endpoint",
        ])
        .arg(&endpoint)
        .env("LOCKPLANE_ADMIN_TOKEN", admin_token(&dir.0))
        .output()
        .unwrap();
    assert!(created.status.success());

    let ports = free_ports(2);
    let mut first = gateway(ports[0], &endpoint);
    let token = acquire(ports[0], r#"{"owner": "holder", "ttl_ms": 120000}"#);

    let first_port = ports[0];
    let waiter = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", first_port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let body = r#"{"owner": "waiter", "ttl_ms": 60000, "wait_ms": 60000}"#;
        write!(
            stream,
            "POST /v1/locks/job/acquire HTTP/1.1\r\nHost: localhost\r\n\
             Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let read = stream.read_to_string(&mut answer);
        (read.is_ok(), answer)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(ports[0])["waiters"] != 1 {
        assert!(Instant::now() < deadline, "the waiter never queued");
        std::thread::sleep(Duration::from_millis(20));
    }

    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let (_, answer) = waiter.join().unwrap();
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "a client of a killed gateway was granted: {answer}"
    );

    let _second = gateway(ports[1], &endpoint);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = status(ports[1]);
        assert_eq!(now["owner"], "holder", "{now}");
        assert_eq!(now["fencing_token"], token, "{now}");
        if now["waiters"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ghost waiter is still queued: {now}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let release = format!(r#"{{"owner": "holder", "fencing_token": {token}}}"#);
    let (code, body) = http(ports[1], "POST", "/v1/locks/job/release", KEY, &release);
    assert_eq!(code, 200, "{body}");
    let after = status(ports[1]);
    assert_eq!(after["held"], false, "nobody was granted the key: {after}");

    assert!(acquire(ports[1], r#"{"owner": "next", "ttl_ms": 60000}"#) > token);
    up.terminate("all stopped");
}

#[test]
fn a_malformed_redis_url_stops_start_up_naming_the_flag() {
    for command in [
        vec![
            "gateway",
            "--endpoint",
            "127.0.0.1:1",
            "--redis",
            "localhost:6379",
        ],
        vec!["dev", "--redis", "redis://127.0.0.1:notaport"],
        vec!["cluster", "up", "--redis", "redis-cluster://"],
    ] {
        let out = Command::new(BIN).args(&command).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{command:?}: {said}");
        assert!(said.contains("--redis"), "{command:?}: {said}");
        let url = command.last().unwrap();
        assert!(said.contains(&format!("{url:?}")), "{command:?}: {said}");
    }
}
