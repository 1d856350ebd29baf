//! `lockplane hold KEY -- CMD ARGS…`: runs CMD while holding KEY, like `consul lock` and
//! `etcdctl lock`. It waits for the lock (saying for whom it waits, unless `--quiet`),
//! keeps the lease alive while CMD runs, gives CMD the fencing token as
//! `LOCKPLANE_FENCING_TOKEN`, and exits with CMD's exit code.
//!
//! CMD runs in a process group of its own (`group`). SIGINT, SIGTERM and SIGHUP sent to
//! `hold` are forwarded to the whole group; after `--grace` the group gets SIGKILL (a second
//! signal sends it at once). When CMD exits, whatever it left running in its group is
//! stopped the same way. The lock is released only then, and always before `hold` exits.
//! If the lock is lost, the group is stopped (SIGTERM, grace, SIGKILL) and `hold` exits 75.
//! A CMD that is not found exits 127, one that cannot be executed 126, as in a shell.

mod group;

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use lockplane_client::{AcquireOptions, Client, ClientError, LockGuard, MAX_CALL_WAIT};
use lockplane_proto::human;
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

use crate::failure::{Failure, exit};
use crate::input::{parse_duration, parse_key, parse_owner, parse_ttl, parse_wait, show_wait};
use crate::remote::{Remote, default_owner};
use group::{Group, exit_code};

/// Flags of `lockplane hold`.
#[derive(Debug, Args)]
pub struct HoldArgs {
    #[command(flatten)]
    remote: Remote,
    /// The key (1..=512 bytes).
    #[arg(value_parser = parse_key)]
    key: String,
    /// The lease (1ms..24h), renewed at about a third of it while CMD runs.
    #[arg(long, value_parser = parse_ttl, default_value = "30s")]
    ttl: Duration,
    /// How long to wait for the lock: a duration, or `forever` (the wait keeps its place in
    /// the queue across the server's 5-minute limit per call).
    #[arg(long, value_parser = parse_wait, default_value = "5m")]
    wait: Duration,
    /// The owner string the lock is held under [default: USER@HOST:PID].
    #[arg(long, value_parser = parse_owner)]
    owner: Option<String>,
    /// Bind the lock to this session (it ends with the session).
    #[arg(long)]
    session: Option<String>,
    /// How long CMD's process group has to exit after SIGTERM (or a forwarded signal)
    /// before it gets SIGKILL.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    grace: Duration,
    /// Say nothing while waiting.
    #[arg(long, short)]
    quiet: bool,
    /// The length of each call of a long wait (for tests; at most 5m).
    #[arg(long, value_parser = parse_duration, hide = true)]
    wait_step: Option<Duration>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// What ended the supervision of CMD.
enum Ending {
    /// CMD exited with this code.
    Exited(u8),
    /// The lock was lost while CMD ran.
    Lost,
}

/// Runs CMD under the lock; CMD's exit code (126/127 when it cannot run, 75 when the lock
/// was lost or could not be had, 128+N when signal N interrupted the wait).
pub fn run(args: HoldArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    crate::runtime::command()?.block_on(async move {
        let mut signals = Signals::new()?;
        let guard = tokio::select! {
            guard = acquire(&client, &args) => guard?,
            signal = signals.next() => {
                eprintln!(
                    "lockplane hold: {} while waiting for {}; left the queue",
                    signal.as_str(),
                    args.key
                );
                return Ok(ExitCode::from(128 + signal as i32 as u8));
            }
        };
        let Some((program, rest)) = args.command.split_first() else {
            release(guard, &args.key).await;
            return Err(Failure::usage("no command to run after --").into());
        };
        let env = [
            ("LOCKPLANE_FENCING_TOKEN", guard.fencing_token().to_string()),
            ("LOCKPLANE_LOCK_KEY", args.key.clone()),
            ("LOCKPLANE_LOCK_OWNER", guard.grant().owner.clone()),
        ];
        let mut group = match Group::spawn(program, rest, &env) {
            Ok(group) => group,
            Err(e) => {
                release(guard, &args.key).await;
                eprintln!("lockplane hold: {}", e.message);
                return Ok(ExitCode::from(e.exit));
            }
        };
        let ending = supervise(&mut group, &guard, &mut signals, args.grace).await;
        match ending {
            Ending::Exited(code) => {
                group.stop(Signal::SIGTERM, args.grace).await;
                release(guard, &args.key).await;
                Ok(ExitCode::from(code))
            }
            Ending::Lost => {
                eprintln!(
                    "lockplane hold: lost the lock on {}; stopping {program:?} (process group {})",
                    args.key,
                    group.id()
                );
                group.stop(Signal::SIGTERM, args.grace).await;
                Ok(ExitCode::from(exit::TEMPFAIL))
            }
        }
    })
}

/// Takes the lock, first without waiting; if it is held, says for whom it waits (unless
/// quiet) and waits up to `--wait`.
async fn acquire(client: &Client, args: &HoldArgs) -> anyhow::Result<LockGuard> {
    let owner = args.owner.clone().unwrap_or_else(default_owner);
    let mut options =
        AcquireOptions::new(owner, args.ttl).wait_step(args.wait_step.unwrap_or(MAX_CALL_WAIT));
    if let Some(session) = &args.session {
        options = options.session(session.clone());
    }
    let failed = |e: ClientError| {
        anyhow::Error::new(args.remote.failure(e)).context(format!("cannot hold {}", args.key))
    };
    let why = match client.acquire(&args.key, options.clone()).await {
        Ok(guard) => return Ok(guard),
        Err(ClientError::Held(holder)) if !args.wait.is_zero() => format!(
            "held by {}, fencing token {}",
            holder.owner, holder.fencing_token
        ),
        Err(ClientError::LockDelayed { retry_after, .. }) if !args.wait.is_zero() => {
            format!("in its lock-delay for {}", human::duration(retry_after))
        }
        Err(e) => return Err(failed(e)),
    };
    if !args.quiet {
        let position = match client.status(&args.key, true).await {
            Ok(info) => format!(", queue position {}", info.waiters + 1),
            Err(_) => String::new(),
        };
        eprintln!("waiting for {} ({why}{position})…", args.key);
    }
    match client.acquire(&args.key, options.wait(args.wait)).await {
        Ok(guard) => Ok(guard),
        Err(ClientError::WaitTimedOut) => Err(anyhow::Error::new(Failure::new(
            exit::TEMPFAIL,
            "wait-timed-out",
            format!(
                "waited {} for {} without getting it",
                show_wait(args.wait),
                args.key
            ),
        ))),
        Err(e) => Err(failed(e)),
    }
}

/// Waits until CMD exits (forwarding signals to its group meanwhile) or the lock is lost.
async fn supervise(
    group: &mut Group,
    guard: &LockGuard,
    signals: &mut Signals,
    grace: Duration,
) -> Ending {
    let mut kill_at: Option<tokio::time::Instant> = None;
    loop {
        let kill = async {
            match kill_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = group.wait() => {
                return Ending::Exited(status.map_or(1, exit_code));
            }
            () = guard.lost() => return Ending::Lost,
            signal = signals.next() => {
                if kill_at.is_some() {
                    group.signal(Signal::SIGKILL);
                } else {
                    group.signal(signal);
                    kill_at = Some(tokio::time::Instant::now() + grace);
                }
            }
            () = kill => {
                group.signal(Signal::SIGKILL);
                kill_at = None;
            }
        }
    }
}

/// Releases the lock, or says why it could not and when it ends on its own.
async fn release(guard: LockGuard, key: &str) {
    let ttl = guard.grant().ttl;
    if let Err(e) = guard.release().await {
        eprintln!(
            "lockplane hold: could not release {key} ({e}); it ends with its lease within {}",
            human::duration(ttl)
        );
    }
}

/// The signals `hold` forwards: SIGINT, SIGTERM, SIGHUP.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal that arrives.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::SIGINT,
            _ = self.terminate.recv() => Signal::SIGTERM,
            _ = self.hangup.recv() => Signal::SIGHUP,
        }
    }
}
