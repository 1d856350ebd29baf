//! `lockplane hold KEY -- CMD ARGS…`: runs CMD while holding KEY. Acquires (waiting), keeps
//! the lease alive while CMD runs, gives CMD the fencing token as
//! `LOCKPLANE_FENCING_TOKEN`, releases when CMD exits and exits with CMD's code. If the
//! lock is lost, CMD is killed and `hold` exits with 75 (EX_TEMPFAIL).

use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lockplane_client::AcquireOptions;

use crate::remote::{Remote, default_owner, parse_duration};

/// Exit code when the lock was lost while CMD ran.
const LOST: u8 = 75;

/// Flags of `lockplane hold`.
#[derive(Debug, Args)]
pub struct HoldArgs {
    #[command(flatten)]
    remote: Remote,
    /// The key.
    key: String,
    /// The lease, renewed at about a third of it while CMD runs.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    ttl: Duration,
    /// How long to wait for the lock.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    wait: Duration,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs CMD under the lock; CMD's exit code, or 75 if the lock was lost.
pub fn run(args: HoldArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    crate::runtime::command()?.block_on(async move {
        let options = AcquireOptions::new(default_owner(), args.ttl).wait(args.wait);
        let guard = client.acquire(&args.key, options).await?;
        let (program, rest) = args
            .command
            .split_first()
            .context("no command to run after --")?;
        let mut child = Command::new(program)
            .args(rest)
            .env("LOCKPLANE_FENCING_TOKEN", guard.fencing_token().to_string())
            .env("LOCKPLANE_LOCK_KEY", &args.key)
            .spawn()
            .with_context(|| format!("cannot run {program:?}"))?;
        loop {
            if let Some(status) = child.try_wait().context("cannot wait for the command")? {
                guard.release().await?;
                let code = status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1));
                return Ok(ExitCode::from(code));
            }
            if guard.is_lost() {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!(
                    "lockplane hold: lost the lock on {}; stopped {program:?}",
                    args.key
                );
                return Ok(ExitCode::from(LOST));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}
