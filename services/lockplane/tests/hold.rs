//! `lockplane hold` as real processes against a real `lockplane dev`: CMD's exit code
//! passed on (127 not found, 126 not executable), the lock released on every exit, signals
//! forwarded to CMD's whole process group with SIGKILL after the grace period, leftovers of
//! CMD stopped before the release, the group stopped with exit 75 when the lock is lost,
//! the waiting line, `--wait forever` keeping its place, and Ctrl-C while waiting leaving
//! the queue. Orphans are checked by PID.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Dev;

/// True while process `pid` runs (a zombie or a missing process does not).
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|at| stat[at + 1..].split_whitespace().next());
    state.is_some_and(|s| s != "Z" && s != "X")
}

/// Waits until process `pid` is in `state` (`T` stopped, `S` sleeping).
fn wait_state(pid: u32, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let now = stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().next())
            .unwrap_or("gone")
            .to_string();
        if now == state {
            return;
        }
        assert!(Instant::now() < deadline, "{pid} is {now}, not {state}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The PIDs a command wrote to `file`, one per line, once it holds `n` of them.
fn pids(file: &Path, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.len() >= n {
            return pids;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {text:?}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, name: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "hold did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// True when `key` is free right now (a linearizable read).
fn free(dev: &Dev, key: &str) -> bool {
    let status = dev.cli(&["--json", "lock", "status", key]);
    let value: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    value["held"] == false
}

fn start_hold(dev: &Dev, args: &[&str]) -> Child {
    dev.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn hold_passes_exit_codes_on_and_releases_on_every_exit() {
    let dev = Dev::start("hold-exit");
    let not_found = dev.cli(&["hold", "job", "--", "/no/such/command"]);
    assert_eq!(
        not_found.status.code(),
        Some(127),
        "{}",
        stderr_of(&not_found)
    );
    assert!(stderr_of(&not_found).contains("command not found"));
    assert!(
        free(&dev, "job"),
        "released after a command that was not found"
    );

    let script = dev.dir.0.join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let not_executable = dev.cli(&["hold", "job", "--", script.to_str().unwrap()]);
    assert_eq!(not_executable.status.code(), Some(126));
    assert!(stderr_of(&not_executable).contains("permission denied"));
    assert!(free(&dev, "job"));

    let failed = dev.cli(&[
        "hold",
        "job",
        "--owner",
        "me",
        "--",
        "sh",
        "-c",
        "echo owner=$LOCKPLANE_LOCK_OWNER; exit 3",
    ]);
    assert_eq!(failed.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&failed.stdout).contains("owner=me"));
    assert!(free(&dev, "job"));

    let (status, body) = common::http(
        dev.http_port,
        "POST",
        "/v1/sessions",
        &dev.key,
        r#"{"ttl_ms": 60000}"#,
    );
    assert_eq!(status, 201, "{body}");
    let session: serde_json::Value = serde_json::from_str(&body).unwrap();
    let session = session["session_id"].as_str().unwrap();
    let in_session = dev.cli(&[
        "hold",
        "job",
        "--session",
        session,
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    assert_eq!(
        in_session.status.code(),
        Some(0),
        "{}",
        stderr_of(&in_session)
    );
    assert!(free(&dev, "job"));
    let no_session = dev.cli(&["hold", "job", "--session", "4242", "--", "true"]);
    assert_eq!(
        no_session.status.code(),
        Some(75),
        "{}",
        stderr_of(&no_session)
    );
    assert!(
        stderr_of(&no_session).contains("session"),
        "{}",
        stderr_of(&no_session)
    );

    let held = dev.cli(&["lock", "acquire", "job", "--owner", "other", "--ttl", "60s"]);
    assert!(held.status.success());
    let busy = dev.cli(&["hold", "job", "--wait", "0s", "--", "true"]);
    assert_eq!(
        busy.status.code(),
        Some(75),
        "held and no wait: temporary failure"
    );
    assert!(
        stderr_of(&busy).contains("held by other"),
        "{}",
        stderr_of(&busy)
    );
}

#[test]
fn signals_reach_the_whole_group_and_the_lock_is_released_after_it_stopped() {
    let dev = Dev::start("hold-signals");
    let pid_file = dev.dir.0.join("term.pids");
    let script = format!(
        "sleep 300 & echo $! >> {f}; sleep 301 & echo $! >> {f}; wait",
        f = pid_file.display()
    );
    let mut hold = start_hold(&dev, &["hold", "term", "--", "sh", "-c", &script]);
    let started = pids(&pid_file, 2);
    signal(hold.id(), "TERM");
    assert_eq!(wait_exit(&mut hold, Duration::from_secs(10)), Some(143));
    for pid in &started {
        assert!(!running(*pid), "sleep {pid} outlived hold");
    }
    assert!(free(&dev, "term"));

    // SIGINT: the shell exits 7 from its trap; its background sleep ignores SIGINT (as
    // background jobs of a non-interactive shell do) and is stopped before the release.
    let pid_file = dev.dir.0.join("int.pids");
    let script = format!(
        "trap 'exit 7' INT; sleep 302 & echo $! >> {f}; echo $$ >> {f}; wait",
        f = pid_file.display()
    );
    let mut hold = start_hold(&dev, &["hold", "int", "--", "sh", "-c", &script]);
    let started = pids(&pid_file, 2);
    signal(hold.id(), "INT");
    assert_eq!(wait_exit(&mut hold, Duration::from_secs(15)), Some(7));
    for pid in &started {
        assert!(!running(*pid), "{pid} outlived hold");
    }
    assert!(free(&dev, "int"));

    // Ctrl-Z stops the group and hold, SIGCONT continues both; SIGUSR1 reaches CMD.
    let pid_file = dev.dir.0.join("tstp.pids");
    let script = format!(
        "trap 'exit 9' USR1; sleep 305 & echo $! >> {f}; echo $$ >> {f}; wait",
        f = pid_file.display()
    );
    let mut hold = start_hold(&dev, &["hold", "tstp", "--", "sh", "-c", &script]);
    let started = pids(&pid_file, 2);
    signal(hold.id(), "TSTP");
    wait_state(hold.id(), "T");
    wait_state(started[0], "T");
    signal(hold.id(), "CONT");
    wait_state(hold.id(), "S");
    wait_state(started[0], "S");
    signal(hold.id(), "USR1");
    assert_eq!(wait_exit(&mut hold, Duration::from_secs(15)), Some(9));
    for pid in &started {
        assert!(!running(*pid), "{pid} outlived hold");
    }
    assert!(free(&dev, "tstp"));

    // A group that ignores SIGTERM gets SIGKILL after --grace.
    let pid_file = dev.dir.0.join("kill.pids");
    let script = format!(
        "trap '' TERM; sleep 303 & echo $! >> {f}; echo $$ >> {f}; wait",
        f = pid_file.display()
    );
    let mut hold = start_hold(
        &dev,
        &["hold", "kill", "--grace", "1s", "--", "sh", "-c", &script],
    );
    let started = pids(&pid_file, 2);
    let sent = Instant::now();
    signal(hold.id(), "TERM");
    assert_eq!(wait_exit(&mut hold, Duration::from_secs(10)), Some(137));
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "SIGKILL came after the grace"
    );
    for pid in &started {
        assert!(!running(*pid), "{pid} outlived hold");
    }
    assert!(free(&dev, "kill"));
}

#[test]
fn a_lost_lock_stops_the_whole_group_and_exits_75() {
    let dev = Dev::start("hold-lost");
    let pid_file = dev.dir.0.join("lost.pids");
    let lockplane = env!("CARGO_BIN_EXE_lockplane");
    let script = format!(
        "sleep 304 & echo $! >> {f}; echo $$ >> {f}; \
         {lockplane} lock release lost --owner me --token $LOCKPLANE_FENCING_TOKEN; wait",
        f = pid_file.display()
    );
    let mut hold = start_hold(
        &dev,
        &[
            "hold", "lost", "--owner", "me", "--ttl", "1500ms", "--", "sh", "-c", &script,
        ],
    );
    let started = pids(&pid_file, 2);
    assert_eq!(wait_exit(&mut hold, Duration::from_secs(15)), Some(75));
    for pid in &started {
        assert!(!running(*pid), "{pid} outlived the lost lock");
    }
}

#[test]
fn waiting_says_for_whom_keeps_its_place_for_ever_and_leaves_on_ctrl_c() {
    let dev = Dev::start("hold-wait");
    let held = dev.cli(&[
        "--json", "lock", "acquire", "w", "--owner", "alice", "--ttl", "60s",
    ]);
    let grant: serde_json::Value = serde_json::from_slice(&held.stdout).unwrap();
    let alice_token = grant["fencing_token"].as_u64().unwrap().to_string();

    let timed_out = dev.cli(&["hold", "w", "--wait", "1s", "--", "true"]);
    assert_eq!(timed_out.status.code(), Some(75));
    let said = stderr_of(&timed_out);
    assert!(
        said.contains(&format!(
            "waiting for w (held by alice, fencing token {alice_token}, queue position 1)…"
        )),
        "{said}"
    );
    let quiet = dev.cli(&["hold", "w", "--wait", "1s", "--quiet", "--", "true"]);
    assert_eq!(quiet.status.code(), Some(75));
    assert!(
        !stderr_of(&quiet).contains("waiting for"),
        "{}",
        stderr_of(&quiet)
    );

    // Ctrl-C while queued: exits 130 and leaves the queue.
    let mut interrupted = start_hold(&dev, &["hold", "w", "--wait", "forever", "--", "true"]);
    wait_for_waiters(&dev, "w", 1);
    signal(interrupted.id(), "INT");
    assert_eq!(
        wait_exit(&mut interrupted, Duration::from_secs(10)),
        Some(130)
    );
    wait_for_waiters(&dev, "w", 0);

    // For ever, in 1 s steps: a waiter that came later stays behind it.
    let token_file = dev.dir.0.join("forever.token");
    let script = format!("echo $LOCKPLANE_FENCING_TOKEN > {}", token_file.display());
    let mut forever = start_hold(
        &dev,
        &[
            "hold",
            "w",
            "--wait",
            "forever",
            "--wait-step",
            "1s",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    wait_for_waiters(&dev, "w", 1);
    let later = dev
        .command(&[
            "--json", "lock", "acquire", "w", "--owner", "later", "--wait", "60s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_waiters(&dev, "w", 2);
    std::thread::sleep(Duration::from_secs(4));
    wait_for_waiters(&dev, "w", 2);
    let released = dev.cli(&[
        "lock",
        "release",
        "w",
        "--owner",
        "alice",
        "--token",
        &alice_token,
    ]);
    assert!(released.status.success(), "{}", stderr_of(&released));
    assert_eq!(wait_exit(&mut forever, Duration::from_secs(20)), Some(0));
    let hold_token: u64 = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let later = later.wait_with_output().unwrap();
    let later: serde_json::Value = serde_json::from_slice(&later.stdout).unwrap();
    assert!(
        later["fencing_token"].as_u64().unwrap() > hold_token,
        "the earlier waiter went first: {later}"
    );
}

fn wait_for_waiters(dev: &Dev, key: &str, waiters: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = dev.cli(&["--json", "lock", "status", key]);
        let value: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        if value["waiters"] == waiters {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key}: {value}, expected {waiters} waiters"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
