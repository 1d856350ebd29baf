//! Seed 001's GC pause: a client process takes a lock, writes to the fencing resource,
//! and is paused (SIGSTOP) past its lease. Meanwhile another client takes the lock over
//! and writes with its newer token. When the paused client resumes, it writes again with
//! its old token, as a client that never noticed the pause would; the fencing resource
//! must refuse that write.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::linear::Answer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::client::Gateway;
use crate::workload::{Shared, TTL};

/// The paused client's side (`lockplane-faults paused-client …`): takes `key`, prints
/// `granted <token>`, then every 100 ms writes to the resource and prints
/// `write <token> OK|REFUSED`, until killed.
pub async fn run_client(
    gateway: &str,
    api_key: &str,
    resource: &str,
    key: &str,
) -> anyhow::Result<()> {
    let gateway = Gateway::new(gateway, api_key);
    let asked = Instant::now();
    let reply = gateway
        .acquire(
            key,
            "paused-client",
            TTL,
            Duration::from_secs(10),
            &format!("paused-client-{key}"),
        )
        .await;
    let Answer::Granted(token) = reply.answer else {
        bail!("not granted: {reply:?}");
    };
    println!("granted {token}");
    let stream = TcpStream::connect(resource)
        .await
        .context("cannot reach the fencing resource")?;
    let (read, mut write) = stream.into_split();
    let mut answers = BufReader::new(read).lines();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let valid = asked.elapsed() + Duration::from_millis(50) < TTL;
        let line = format!("WRITE {key} {token} paused-client {}\n", u8::from(valid));
        write.write_all(line.as_bytes()).await?;
        let answer = answers.next_line().await?.unwrap_or_default();
        println!("write {token} {answer}");
    }
}

type ChildLines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// The child's next line, waiting at most 15 s.
async fn next_line(
    lines: &mut ChildLines,
) -> Result<std::io::Result<Option<String>>, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await
}

/// What one pause of a client showed.
#[derive(Debug, Clone)]
pub struct PauseOutcome {
    /// The paused client's token.
    pub paused_token: u64,
    /// The token of the client that took the lock over, if it could.
    pub taker_token: Option<u64>,
    /// Writes of the paused client after it resumed, accepted and refused.
    pub accepted_after: u32,
    /// Refused after it resumed.
    pub refused_after: u32,
}

impl PauseOutcome {
    /// Problems: the lock not taken over after the lease, or a stale write accepted.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.taker_token.is_none() {
            problems.push(format!(
                "paused client: the lock (token {}) was not taken over after its lease ran out",
                self.paused_token
            ));
        }
        if self.taker_token.is_some() && (self.accepted_after > 0 || self.refused_after == 0) {
            problems.push(format!(
                "paused client: after resuming, {} stale writes accepted and {} refused (want 0 and at least 1)",
                self.accepted_after, self.refused_after
            ));
        }
        problems
    }
}

/// Runs one pause: starts the client process, pauses it for `pause` once it has written,
/// takes the lock over, resumes it and reads what its writes got.
pub async fn pause_once(
    shared: &Shared,
    key: &str,
    resource: &str,
    pause: Duration,
) -> anyhow::Result<PauseOutcome> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let mut child = Command::new(exe)
        .args([
            "paused-client",
            "--gateway",
            &format!("http://127.0.0.1:{}", crate::cluster::GATEWAY_PORT),
        ])
        .args([
            "--api-key",
            crate::cluster::API_KEY,
            "--resource",
            resource,
            "--key",
            key,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the paused client")?;
    let pid = Pid::from_raw(
        child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .context("no pid")?,
    );
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let granted = next_line(&mut lines)
        .await
        .context("the paused client said nothing")??
        .unwrap_or_default();
    let paused_token: u64 = granted
        .strip_prefix("granted ")
        .and_then(|t| t.parse().ok())
        .with_context(|| format!("the paused client was not granted the lock: {granted:?}"))?;
    let wrote = next_line(&mut lines)
        .await
        .context("the paused client did not write")??
        .unwrap_or_default();
    if !wrote.ends_with("OK") {
        bail!("the paused client's first write failed: {wrote:?}");
    }
    kill(pid, Signal::SIGSTOP).context("cannot pause the client")?;
    let paused_at = shared.recorder.now();
    tokio::time::sleep(TTL).await;
    let left = pause.saturating_sub(shared.recorder.now() - paused_at);
    let taker = shared
        .acquire(
            key,
            "taker",
            left.max(Duration::from_secs(1)),
            &format!("taker-{key}"),
        )
        .await;
    if let Some((token, since)) = taker {
        let valid = shared.recorder.now() + Duration::from_millis(50) < since + TTL;
        shared.fence.write(key, token, "taker", valid);
    }
    let left = pause.saturating_sub(shared.recorder.now() - paused_at);
    tokio::time::sleep(left).await;
    // Lines the client wrote before it was stopped are not what it did after resuming.
    while let Ok(Ok(Some(_))) =
        tokio::time::timeout(Duration::from_millis(50), lines.next_line()).await
    {}
    kill(pid, Signal::SIGCONT).context("cannot resume the client")?;
    let mut outcome = PauseOutcome {
        paused_token,
        taker_token: taker.map(|(t, _)| t),
        accepted_after: 0,
        refused_after: 0,
    };
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        match next_line(&mut lines).await {
            Ok(Ok(Some(line))) if line.ends_with("REFUSED") => outcome.refused_after += 1,
            Ok(Ok(Some(line))) if line.ends_with("OK") => outcome.accepted_after += 1,
            _ => break,
        }
    }
    let _ = child.kill().await;
    if let Some((token, since)) = taker {
        shared.release(key, "taker", token, since).await;
    }
    Ok(outcome)
}
