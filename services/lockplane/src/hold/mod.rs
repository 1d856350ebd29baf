//! `lockplane hold KEY -- CMD ARGS…`: runs CMD while holding KEY, like `consul lock` and
//! `etcdctl lock`. It waits for the lock (saying for whom it waits, unless `--quiet`),
//! keeps the lease alive while CMD runs, gives CMD the fencing token as
//! `LOCKPLANE_FENCING_TOKEN`, and exits with CMD's exit code.
//!
//! CMD runs in a process group of its own (`group`), like `consul lock`'s (so it does not
//! read from the terminal). SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to `hold` are
//! forwarded to the whole group; after `--grace` the group gets SIGKILL (a second signal
//! sends it at once). SIGUSR1/SIGUSR2 are passed on; Ctrl-Z stops the group and `hold`,
//! `fg` continues both (`signals`). When CMD exits, whatever it left running in its group
//! is stopped the same way. The lock is released only then, and always before `hold` exits.
//! If the lock is lost, the group is stopped (SIGTERM, grace, SIGKILL) and `hold` exits 75.
//! A CMD that is not found exits 127, one that cannot be executed 126, as in a shell.

mod group;
mod signals;

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use lockplane_client::{AcquireOptions, Client, ClientError, LockGuard, MAX_CALL_WAIT};
use lockplane_proto::human;
use nix::sys::signal::Signal;

use crate::failure::{Failure, exit};
use crate::input::{parse_duration, parse_key, parse_owner, parse_ttl, parse_wait, show_wait};
use crate::remote::{Remote, default_owner};
use group::{Group, exit_code};
use signals::{Meaning, Signals, stop_self};

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
        let waiting = acquire(&client, &args);
        tokio::pin!(waiting);
        let guard = loop {
            tokio::select! {
                guard = &mut waiting => break guard?,
                (signal, meaning) = signals.next() => match meaning {
                    Meaning::End => return Ok(interrupted(&client, &args, signal).await),
                    Meaning::Suspend => stop_self(),
                    Meaning::Forward | Meaning::Resume => {}
                },
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

/// Waits until CMD exits (passing signals on to its group meanwhile) or the lock is lost.
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
            (signal, meaning) = signals.next() => match meaning {
                Meaning::End if kill_at.is_some() => group.signal(Signal::SIGKILL),
                Meaning::End => {
                    group.signal(signal);
                    kill_at = Some(tokio::time::Instant::now() + grace);
                }
                Meaning::Forward => group.signal(signal),
                Meaning::Suspend => {
                    group.signal(Signal::SIGSTOP);
                    stop_self();
                }
                Meaning::Resume => group.signal(Signal::SIGCONT),
            },
            () = kill => {
                group.signal(Signal::SIGKILL);
                kill_at = None;
            }
        }
    }
}

/// An ending signal arrived while waiting: the wait is dropped (the server takes it out of
/// the queue). If the grant raced the signal and the lock is now this owner's, it is
/// released. The exit code is 128 + the signal's number.
async fn interrupted(client: &Client, args: &HoldArgs, signal: Signal) -> ExitCode {
    let owner = args.owner.clone().unwrap_or_else(default_owner);
    let held = client
        .status(&args.key, true)
        .await
        .ok()
        .filter(|info| info.held && info.owner.as_deref() == Some(owner.as_str()));
    let outcome = match held.and_then(|info| info.fencing_token) {
        Some(token) => match client.release(&args.key, &owner, token).await {
            Ok(()) => "the lock was granted as the wait ended; released it",
            Err(_) => {
                "the lock was granted as the wait ended and could not be released; \
                       it ends with its lease"
            }
        },
        None => "left the queue",
    };
    eprintln!(
        "lockplane hold: {} while waiting for {}; {outcome}",
        signal.as_str(),
        args.key
    );
    ExitCode::from(128 + signal as i32 as u8)
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
