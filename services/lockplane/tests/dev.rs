//! `lockplane dev` as a real process: it prints its URL, key and example lines, serves the
//! REST API, stops on SIGTERM, and a restart on the same directory finds the held lock.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{Process, TempDir, admin_token, cli_command, dev_process, free_ports, http};

fn start(dir: &TempDir, http: u16, node: u16, key: &str) -> Process {
    dev_process(dir, http, node, key)
}

#[test]
fn dev_serves_the_api_and_keeps_locks_across_a_restart() {
    let dir = TempDir::new("dev");
    let ports = free_ports(2);
    let (http_port, node_port) = (ports[0], ports[1]);
    let dev = start(&dir, http_port, node_port, "test-key");
    let banner = dev.wait_for("Ctrl-C stops it");
    let text = banner.join("\n");
    assert!(
        text.contains(&format!("http://127.0.0.1:{http_port}")),
        "{text}"
    );
    assert!(text.contains("dev API key: test-key"), "{text}");
    assert!(text.contains("curl -s -X POST"), "{text}");

    let (status, body) = http(
        http_port,
        "POST",
        "/v1/locks/my-job/acquire",
        "test-key",
        r#"{"owner": "me", "ttl_ms": 600000}"#,
    );
    assert_eq!(status, 200, "{body}");
    let granted: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = granted["fencing_token"].as_u64().unwrap();
    let (status, _) = http(http_port, "GET", "/v1/locks/my-job", "wrong", "");
    assert_eq!(status, 401);

    let admin = admin_token(&dir.0);
    let unauthorized = Command::new(env!("CARGO_BIN_EXE_lockplane"))
        .args(["tenant", "create", "team-a", "--endpoint"])
        .arg(format!("127.0.0.1:{node_port}"))
        .env_remove("LOCKPLANE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(
        unauthorized.status.code(),
        Some(77),
        "no admin token: permission"
    );
    let message = String::from_utf8_lossy(&unauthorized.stderr);
    assert!(
        message.contains("needs the cluster's admin token"),
        "{message}"
    );
    let created = Command::new(env!("CARGO_BIN_EXE_lockplane"))
        .args([
            "tenant",
            "create",
            "team-a",
            "--max-locks",
            "100",
            "--endpoint",
        ])
        .arg(format!("127.0.0.1:{node_port}"))
        .env("LOCKPLANE_ADMIN_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let out = String::from_utf8_lossy(&created.stdout).into_owned();
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("api key: "))
        .unwrap_or_else(|| panic!("no key in {out}"))
        .to_string();
    let (status, body) = http(http_port, "GET", "/v1/locks/my-job", &key, "");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""held":false"#),
        "another tenant sees nothing: {body}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_lockplane"))
        .args(["tenant", "create", "Team A", "--endpoint"])
        .arg(format!("127.0.0.1:{node_port}"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tenant name"));
    assert!(out.contains("quota: 100 held locks"), "{out}");
    let quota = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(["tenant", "set-quota"])
            .args(args)
            .arg("--endpoint")
            .arg(format!("127.0.0.1:{node_port}"))
            .env("LOCKPLANE_ADMIN_TOKEN", &admin)
            .output()
            .unwrap()
    };
    let lifted = quota(&["team-a", "--unlimited"]);
    assert!(String::from_utf8_lossy(&lifted.stdout).contains("tenant team-a: no quota"));
    let unknown = quota(&["team-z", "--max-locks", "5"]);
    assert!(!unknown.status.success());
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert!(message.contains("no tenant is named team-z"), "{message}");
    let zero = quota(&["team-a", "--max-locks", "0"]);
    assert!(!zero.status.success());
    dev.terminate("dev stopped");

    let dev = start(&dir, http_port, node_port, "test-key");
    dev.wait_for("Ctrl-C stops it");
    let (status, body) = http(
        http_port,
        "GET",
        "/v1/locks/my-job?consistency=linearizable",
        "test-key",
        "",
    );
    assert_eq!(status, 200, "{body}");
    let read: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(read["held"], true);
    assert_eq!(read["owner"], "me");
    assert_eq!(read["fencing_token"], token);
    dev.terminate("dev stopped");
}

#[test]
fn dev_refuses_bad_flags_with_a_clear_message() {
    for (args, expected) in [
        (vec!["dev", "--groups", "0"], "--groups must be in 1..=1024"),
        (
            vec!["dev", "--api-key", "short"],
            "--api-key must be 8..=256",
        ),
        (vec!["dev", "--http", "nowhere"], "invalid value 'nowhere'"),
        (
            vec!["dev", "--kafka", "nowhere"],
            "--kafka: \"nowhere\" is not HOST:PORT",
        ),
        (
            vec!["dev", "--kafka", "k:9092", "--audit-topic", "no spaces"],
            "--audit-topic: \"no spaces\" is not a Kafka topic name",
        ),
        (
            vec!["dev", "--audit-backlog-limit", "0"],
            "invalid value '0' for '--audit-backlog-limit <EVENTS>'",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
}

fn cli(http_port: u16, args: &[&str]) -> std::process::Output {
    cli_command(http_port, "cli-test-key")
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_cli_acquires_lists_releases_and_holds_a_lock_around_a_command() {
    let dir = TempDir::new("dev-cli");
    let ports = free_ports(2);
    let http_port = ports[0];
    let dev = start(&dir, http_port, ports[1], "cli-test-key");
    dev.wait_for("Ctrl-C stops it");

    let acquired = cli(
        http_port,
        &[
            "lock",
            "acquire",
            "jobs/nightly",
            "--ttl",
            "1m",
            "--owner",
            "me",
            "--json",
        ],
    );
    assert!(
        acquired.status.success(),
        "{}",
        String::from_utf8_lossy(&acquired.stderr)
    );
    let grant: serde_json::Value = serde_json::from_str(text(&acquired).trim()).unwrap();
    let token = grant["fencing_token"].as_u64().unwrap();
    assert_eq!(grant["ttl_ms"], 60_000);

    let held = cli(
        http_port,
        &["lock", "acquire", "jobs/nightly", "--owner", "you"],
    );
    assert_eq!(held.status.code(), Some(75), "held: a temporary failure");
    let message = String::from_utf8_lossy(&held.stderr);
    assert!(
        message.contains("cannot acquire jobs/nightly: held by me (fencing token"),
        "{message}"
    );

    let status = cli(http_port, &["lock", "status", "jobs/nightly"]);
    assert!(
        text(&status).contains(&format!("held by me, fencing token {token}")),
        "{}",
        text(&status)
    );
    let listed = cli(http_port, &["lock", "list", "--prefix", "jobs/", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(text(&listed).trim()).unwrap();
    assert_eq!(listed["locks"][0]["key"], "jobs/nightly");

    let wrong = cli(
        http_port,
        &[
            "lock",
            "release",
            "jobs/nightly",
            "--token",
            &(token + 1).to_string(),
            "--owner",
            "me",
        ],
    );
    assert!(!wrong.status.success(), "a wrong token does not release");
    let released = cli(
        http_port,
        &[
            "lock",
            "release",
            "jobs/nightly",
            "--token",
            &token.to_string(),
            "--owner",
            "me",
        ],
    );
    assert!(
        released.status.success(),
        "{}",
        String::from_utf8_lossy(&released.stderr)
    );

    let held_run = cli(
        http_port,
        &[
            "hold",
            "jobs/nightly",
            "--ttl",
            "2s",
            "--",
            "sh",
            "-c",
            "sleep 1; echo token=$LOCKPLANE_FENCING_TOKEN; exit 3",
        ],
    );
    assert_eq!(
        held_run.status.code(),
        Some(3),
        "hold returns the command's exit code"
    );
    let printed = text(&held_run);
    let hold_token: u64 = printed
        .trim()
        .strip_prefix("token=")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no token in {printed:?}"));
    assert!(hold_token > token);
    let after = cli(http_port, &["lock", "status", "jobs/nightly"]);
    assert!(
        text(&after).contains("free"),
        "hold released the lock: {}",
        text(&after)
    );

    let no_key = Command::new(env!("CARGO_BIN_EXE_lockplane"))
        .args(["lock", "status", "x"])
        .env_remove("LOCKPLANE_API_KEY")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("no API key"));
    let bad_ttl = cli(http_port, &["lock", "acquire", "x", "--ttl", "soon"]);
    assert!(String::from_utf8_lossy(&bad_ttl.stderr).contains("not a duration"));
    dev.terminate("dev stopped");
}

/// The requests of the `curl` lines `lockplane dev` prints, in order: method, path, body.
fn printed_requests(banner: &[String], url: &str) -> Vec<(String, String, String)> {
    let mut requests = Vec::new();
    for (i, line) in banner.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix("curl -s ") else {
            continue;
        };
        let (method, rest) = match rest.strip_prefix("-X POST ") {
            Some(rest) => ("POST", rest),
            None => ("GET", rest),
        };
        let path = rest
            .split_whitespace()
            .next()
            .unwrap()
            .strip_prefix(url)
            .unwrap()
            .to_string();
        let body = if method == "POST" {
            let next = &banner[i + 1];
            let start = next.find("-d '").unwrap() + 4;
            next[start..next.len() - 1].to_string()
        } else {
            String::new()
        };
        requests.push((method.to_string(), path, body));
    }
    requests
}

#[test]
fn the_printed_curl_lines_acquire_renew_wait_and_release() {
    let dir = TempDir::new("dev-curl");
    let ports = free_ports(2);
    let dev = start(&dir, ports[0], ports[1], "curl-key");
    let banner = dev.wait_for("Ctrl-C stops it");
    let requests = printed_requests(&banner, &format!("http://127.0.0.1:{}", ports[0]));
    let routes: Vec<&str> = requests.iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(
        routes,
        [
            "/v1/locks/my-job/acquire",
            "/v1/locks/my-job",
            "/v1/locks/my-job/renew",
            "/v1/locks/my-job/acquire",
            "/v1/locks/my-job/release",
        ],
        "{banner:#?}"
    );
    let send = |n: usize, token: Option<u64>| {
        let (method, path, body) = &requests[n];
        let body = match token {
            Some(token) => body.replace(": N", &format!(": {token}")),
            None => body.clone(),
        };
        http(ports[0], method, path, "curl-key", &body)
    };
    let (status, body) = send(0, None);
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["fencing_token"]
        .as_u64()
        .unwrap();
    let (status, body) = send(1, None);
    assert_eq!(
        (status, body.contains(r#""held":true"#)),
        (200, true),
        "{body}"
    );
    let (status, body) = send(2, Some(token));
    assert_eq!(status, 200, "{body}");
    let (method, path, wait_body) = requests[3].clone();
    let http_port = ports[0];
    let waiter =
        std::thread::spawn(move || http(http_port, &method, &path, "curl-key", &wait_body));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, body) = send(4, Some(token));
    assert_eq!(status, 200, "{body}");
    let (status, body) = waiter.join().unwrap();
    assert_eq!(status, 200, "the waiter is granted on release: {body}");
    let granted: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(granted["owner"], "you");
    assert!(granted["fencing_token"].as_u64().unwrap() > token);
    dev.terminate("dev stopped");
}

/// `lockplane dev` on `http`/`node` in `dir`, with `--api-key` only when `key` is given.
fn start_keyed(dir: &TempDir, http: u16, node: u16, key: Option<&str>) -> (Process, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lockplane"));
    command
        .args(["dev", "--groups", "2"])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--node-listen", &format!("127.0.0.1:{node}")])
        .arg("--data-dir")
        .arg(&dir.0)
        .env_remove("LOCKPLANE_DEV_API_KEY");
    if let Some(key) = key {
        command.args(["--api-key", key]);
    }
    let dev = Process::start(&mut command);
    let banner = dev.wait_for("Ctrl-C stops it");
    let key = banner
        .iter()
        .find_map(|l| l.strip_prefix("dev API key: "))
        .unwrap_or_else(|| panic!("no key in {banner:#?}"))
        .to_string();
    (dev, key)
}

#[test]
fn dev_reuses_its_key_across_restarts_and_a_new_key_replaces_it() {
    let dir = TempDir::new("dev-restarts");
    let ports = free_ports(2);
    let (http_port, node_port) = (ports[0], ports[1]);
    let keys_of_dev = || {
        let listed = Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(["--json", "tenant", "keys", "dev", "--endpoint"])
            .arg(format!("127.0.0.1:{node_port}"))
            .env("LOCKPLANE_ADMIN_TOKEN", admin_token(&dir.0))
            .output()
            .unwrap();
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        listed["key_ids"].as_array().unwrap().len()
    };
    let (dev, first) = start_keyed(&dir, http_port, node_port, None);
    let token = admin_token(&dir.0);
    dev.terminate("dev stopped");
    for _ in 0..3 {
        let (dev, again) = start_keyed(&dir, http_port, node_port, None);
        assert_eq!(again, first, "a restart reuses the recorded key");
        assert_eq!(keys_of_dev(), 1, "and adds none");
        dev.terminate("dev stopped");
    }
    assert_eq!(admin_token(&dir.0), token, "the admin token is kept too");

    let (dev, chosen) = start_keyed(&dir, http_port, node_port, Some("chosen-dev-key"));
    assert_eq!(chosen, "chosen-dev-key");
    assert_eq!(keys_of_dev(), 1, "the new key replaced the recorded one");
    let (status, _) = http(http_port, "GET", "/v1/locks/x", &first, "");
    assert_eq!(status, 401, "the replaced key stopped working");
    let (status, body) = http(http_port, "GET", "/v1/locks/x", "chosen-dev-key", "");
    assert_eq!(status, 200, "{body}");
    dev.terminate("dev stopped");
    let (dev, kept) = start_keyed(&dir, http_port, node_port, None);
    assert_eq!(
        kept, "chosen-dev-key",
        "the chosen key is the recorded one now"
    );
    dev.terminate("dev stopped");
}

#[test]
fn the_cli_says_what_went_wrong_once_with_sysexits_codes_and_json() {
    let dev = common::Dev::start("dev-errors");
    let help = dev.cli(&["--help"]);
    assert!(help.status.success());
    assert!(text(&help).contains("Exit codes:") && text(&help).contains("75"));
    for shell in ["bash", "zsh", "fish"] {
        let script = dev.cli(&["completions", shell]);
        assert!(
            script.status.success() && text(&script).contains("lockplane"),
            "{shell}"
        );
    }

    let usage = dev.cli(&["lock", "acquire", "k", "--ttl", "0s"]);
    assert_eq!(usage.status.code(), Some(64));
    let said = String::from_utf8_lossy(&usage.stderr);
    assert!(
        said.contains("'0s'") && said.contains("--ttl") && said.contains("between 1ms and 24h"),
        "{said}"
    );
    let json_usage = dev.cli(&["--json", "lock", "acquire", "k", "--wait", "soon"]);
    assert_eq!(json_usage.status.code(), Some(64));
    let error: serde_json::Value = serde_json::from_slice(&json_usage.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "usage");

    // Renew and release name the lock once, with the exit code of a lost lock.
    let acquired = dev.cli(&[
        "--json", "lock", "acquire", "k", "--owner", "me", "--ttl", "10s",
    ]);
    let grant: serde_json::Value = serde_json::from_slice(&acquired.stdout).unwrap();
    let token = grant["fencing_token"].as_u64().unwrap().to_string();
    let renewed = dev.cli(&[
        "lock", "renew", "k", "--owner", "me", "--token", &token, "--ttl", "1m",
    ]);
    assert!(text(&renewed).contains(&format!("renewed k (fencing token {token}) for 1m")));
    let stale = dev.cli(&[
        "lock", "renew", "k", "--owner", "me", "--token", "1", "--ttl", "1m",
    ]);
    assert_eq!(stale.status.code(), Some(75));
    let said = String::from_utf8_lossy(&stale.stderr);
    assert_eq!(
        said.trim(),
        "lockplane: cannot renew k as me with fencing token 1: caller is not the holder"
    );
    let json_held = dev.cli(&["--json", "lock", "acquire", "k", "--owner", "you"]);
    assert_eq!(json_held.status.code(), Some(75));
    let error: serde_json::Value = serde_json::from_slice(&json_held.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "held");
    assert_eq!(error["error"]["holder"]["owner"], "me");

    // A lock-delay names its end as a time and a duration, not as an epoch.
    let (status, body) = http(
        dev.http_port,
        "POST",
        "/v1/locks/delayed/acquire",
        &dev.key,
        r#"{"owner": "me", "ttl_ms": 200, "lock_delay_ms": 60000}"#,
    );
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let delayed = dev.cli(&["lock", "acquire", "delayed"]);
    assert_eq!(delayed.status.code(), Some(75));
    let said = String::from_utf8_lossy(&delayed.stderr);
    assert!(
        said.contains("lock-delay after an expiry until 20") && said.contains("Z (in "),
        "{said}"
    );

    // Nothing listening: the URL and the cause, and where a gateway comes from.
    let port = free_ports(1)[0];
    let down = Command::new(env!("CARGO_BIN_EXE_lockplane"))
        .args([
            "lock",
            "status",
            "k",
            "--url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("LOCKPLANE_API_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(69));
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(
        said.contains(&format!(
            "cannot reach http://127.0.0.1:{port}: connection refused"
        )),
        "{said}"
    );
    let no_key = Command::new(env!("CARGO_BIN_EXE_lockplane"))
        .args(["lock", "status", "k"])
        .env_remove("LOCKPLANE_API_KEY")
        .output()
        .unwrap();
    assert_eq!(no_key.status.code(), Some(77));
}
