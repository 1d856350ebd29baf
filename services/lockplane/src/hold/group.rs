//! CMD in a process group of its own, so that a signal or a stop reaches everything it
//! started (a shell's children included), not just the direct child: `hold` forwards
//! signals to the group, stops the group (SIGTERM, a grace period, SIGKILL) when the lock
//! is lost, and stops what CMD left running in its group before it releases the lock.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How often the group is looked at while waiting for it to go.
const POLL: Duration = Duration::from_millis(20);

/// Why CMD could not be started, with the exit code a shell gives for it.
#[derive(Debug)]
pub struct SpawnError {
    /// 127 when the command was not found, 126 when it cannot be executed.
    pub exit: u8,
    /// What went wrong.
    pub message: String,
}

/// A running command, leader of its own process group.
pub struct Group {
    child: Child,
    pgid: Pid,
    exited: Option<ExitStatus>,
}

impl Group {
    /// Starts `program` with `args` and `env` as the leader of a new process group.
    pub fn spawn(
        program: &str,
        args: &[String],
        env: &[(&str, String)],
    ) -> Result<Self, SpawnError> {
        let mut command = Command::new(program);
        command.args(args).process_group(0);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().map_err(|e| {
            let (exit, what) = match e.kind() {
                io::ErrorKind::NotFound => (127, "command not found".to_string()),
                io::ErrorKind::PermissionDenied => (126, "permission denied".to_string()),
                _ => (126, format!("cannot execute: {e}")),
            };
            SpawnError {
                exit,
                message: format!("{program}: {what}"),
            }
        })?;
        let pid = child.id().ok_or_else(|| SpawnError {
            exit: 126,
            message: format!("{program}: exited before it could be watched"),
        })?;
        let pgid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        Ok(Self {
            child,
            pgid,
            exited: None,
        })
    }

    /// The process group's id (the leader's pid).
    pub fn id(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// Sends `signal` to every process of the group (none left is not an error).
    pub fn signal(&self, signal: Signal) {
        let _ = killpg(self.pgid, signal);
    }

    /// Waits for the leader to exit; its status.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let status = self.child.wait().await?;
        self.exited = Some(status);
        Ok(status)
    }

    /// Stops the whole group: `first` (SIGTERM, with SIGCONT so that stopped members can
    /// act on it), then SIGKILL to whatever is left after `grace`. Returns once the leader has exited and no member of the group still runs
    /// (or, for members that outlive SIGKILL, such as ones stopped in uninterruptible
    /// sleep, a further `grace` has passed).
    pub async fn stop(&mut self, first: Signal, grace: Duration) {
        if !self.has_live_members() && self.exited.is_some() {
            return;
        }
        self.signal(first);
        self.signal(Signal::SIGCONT);
        if !self.gone_within(grace).await {
            self.signal(Signal::SIGKILL);
            self.gone_within(grace).await;
        }
    }

    /// True when the leader exited (reaped) and no member of the group runs within `limit`.
    async fn gone_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.exited.is_none() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    self.exited = Some(status);
                }
            }
            if self.exited.is_some() && !self.has_live_members() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// True while a process of the group runs. Zombies answer a signal too, so when
    /// `/proc` is there, only members that are not zombies count.
    fn has_live_members(&self) -> bool {
        if killpg(self.pgid, None).is_err() {
            return false;
        }
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return true;
        };
        entries.flatten().any(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            runs_in_group(&stat, self.pgid.as_raw())
        })
    }
}

/// True when a `/proc/PID/stat` line is of a process in group `pgid` that is not a zombie.
fn runs_in_group(stat: &str, pgid: i32) -> bool {
    let Some(after_name) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
        return false;
    };
    let mut fields = after_name.split_whitespace();
    let state = fields.next();
    let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
    group == Some(pgid) && state.is_some_and(|s| s != "Z" && s != "X")
}

/// The exit code a shell reports for `status`: the code, or 128 + the signal that ended it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_tells_group_and_zombies() {
        let line = "4242 (sleep (x) 1) S 1 4240 4240 0 -1 4194304";
        assert!(runs_in_group(line, 4240));
        assert!(!runs_in_group(line, 4242));
        assert!(!runs_in_group("4242 (sh) Z 1 4240 4240 0", 4240));
        assert!(!runs_in_group("garbage", 4240));
    }

    #[test]
    fn signals_end_in_128_plus_their_number() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
