//! Helpers shared by the process tests of the `lockplane` binary.
#![allow(dead_code)]

pub mod metrics;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lockplane-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Free loopback ports, found by binding port 0 and letting go.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The lines a process prints, forwarded to a channel by a reader thread.
pub fn lines_of(output: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

/// One HTTP/1.1 request; the status code and the body.
pub fn http(port: u16, method: &str, path: &str, key: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A process a test started, with its output lines on a channel; killed if still running
/// when dropped.
pub struct Process {
    pub child: std::process::Child,
    pub lines: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `command` with piped stdin and stdout.
    pub fn start(command: &mut std::process::Command) -> Self {
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        Process { child, lines }
    }

    /// Lines up to and including the first that contains `needle` (within 60 s).
    pub fn wait_for(&self, needle: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line with {needle:?}; saw {seen:#?}"));
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }

    /// Sends SIGTERM, waits for the line `farewell`, and checks the exit status.
    pub fn terminate(mut self, farewell: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the process exited before SIGTERM, with {status}");
        }
        let term = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.wait_for(farewell);
        }));
        let status = self.child.wait().unwrap();
        assert!(
            seen.is_ok(),
            "no {farewell:?} before it exited with {status}"
        );
        assert!(status.success(), "exited with {status}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `lockplane cluster up` of 3 nodes and 2 lock groups with data in `dir`, and a gateway
/// on `http` serving the `dev` tenant with API key `key` (more flags may follow).
pub fn cluster_up(dir: &TempDir, http: u16, key: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"));
    command
        .args(["cluster", "up", "--nodes", "3", "--groups", "2"])
        .args(["--http", &format!("127.0.0.1:{http}"), "--api-key", key])
        .arg("--data-dir")
        .arg(&dir.0);
    command
}

/// `lockplane dev` on `http` and `node` with data in `dir` and API key `key`.
pub fn dev_process(dir: &TempDir, http: u16, node: u16, key: &str) -> Process {
    Process::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(["dev", "--groups", "4", "--api-key", key])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--node-listen", &format!("127.0.0.1:{node}")])
            .arg("--data-dir")
            .arg(&dir.0),
    )
}

/// A `lockplane` command aimed at the gateway on `http` with API key `key`.
pub fn cli_command(http: u16, key: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"));
    command
        .env("LOCKPLANE_URL", format!("http://127.0.0.1:{http}"))
        .env("LOCKPLANE_API_KEY", key);
    command
}

/// A running `lockplane dev` in a fresh directory, and commands aimed at it.
pub struct Dev {
    pub process: Process,
    pub http_port: u16,
    pub key: String,
    pub dir: TempDir,
}

impl Dev {
    /// Starts it and waits until it serves.
    pub fn start(name: &str) -> Self {
        let dir = TempDir::new(name);
        let ports = free_ports(2);
        let key = format!("{name}-test-key");
        let process = dev_process(&dir, ports[0], ports[1], &key);
        process.wait_for("Ctrl-C stops it");
        Dev {
            process,
            http_port: ports[0],
            key,
            dir,
        }
    }

    /// `lockplane ARGS…` aimed at this server.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = cli_command(self.http_port, &self.key);
        command.args(args);
        command
    }

    /// Runs `lockplane ARGS…` to the end.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }
}

/// The admin token `lockplane dev` or `cluster up` keeps in data directory `dir`.
pub fn admin_token(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("admin-token"))
        .unwrap_or_else(|e| panic!("no admin token in {}: {e}", dir.display()))
        .trim()
        .to_string()
}
