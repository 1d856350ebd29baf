//! `lockplane lock acquire | renew | release | status | list`: one call each to the gateway.

use std::time::Duration;

use clap::{Args, Subcommand};
use lockplane_client::{AcquireOptions, ClientError, LockInfo};
use lockplane_proto::human;
use serde_json::json;

use crate::input::{parse_key, parse_owner, parse_ttl, parse_wait};
use crate::remote::{Remote, default_owner};

/// Flags of `lockplane lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: LockCommand,
}

#[derive(Debug, Subcommand)]
enum LockCommand {
    /// Take a lock (waiting up to --wait) and print its fencing token. Nothing renews it:
    /// it ends after --ttl unless renewed or released (`lockplane hold` renews).
    Acquire {
        /// The key (1..=512 bytes).
        #[arg(value_parser = parse_key)]
        key: String,
        /// The lease (1ms..24h).
        #[arg(long, value_parser = parse_ttl, default_value = "30s")]
        ttl: Duration,
        /// How long to wait when the lock is held (a duration, or `forever`).
        #[arg(long, value_parser = parse_wait, default_value = "0s")]
        wait: Duration,
        /// The owner string (renew and release must give it again) [default: USER@HOST:PID].
        #[arg(long, value_parser = parse_owner)]
        owner: Option<String>,
        /// Bind the lock to this session (it ends with the session).
        #[arg(long)]
        session: Option<String>,
    },
    /// Extend a held lock's lease from now.
    Renew {
        #[command(flatten)]
        held: HeldLock,
        /// The new lease (1ms..24h).
        #[arg(long, value_parser = parse_ttl, default_value = "30s")]
        ttl: Duration,
    },
    /// Give a lock up.
    Release {
        #[command(flatten)]
        held: HeldLock,
    },
    /// Show who holds a lock (linearizable read).
    Status {
        /// The key.
        #[arg(value_parser = parse_key)]
        key: String,
    },
    /// List held or waited-on locks by key prefix.
    List {
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many (1..=1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000))]
        limit: u32,
    },
}

/// A held lock, as renew and release name it.
#[derive(Debug, Args)]
struct HeldLock {
    /// The key.
    #[arg(value_parser = parse_key)]
    key: String,
    /// The fencing token the acquire printed.
    #[arg(long)]
    token: u64,
    /// The owner string the acquire used.
    #[arg(long, value_parser = parse_owner)]
    owner: String,
}

fn info_json(info: &LockInfo) -> serde_json::Value {
    json!({
        "key": info.key,
        "held": info.held,
        "owner": info.owner,
        "fencing_token": info.fencing_token,
        "ttl_remaining_ms": info.ttl_remaining.map(|d| d.as_millis() as u64),
        "waiters": info.waiters,
    })
}

fn info_text(info: &LockInfo) -> String {
    match (&info.owner, info.fencing_token) {
        (Some(owner), Some(token)) if info.held => format!(
            "{}: held by {owner}, fencing token {token}, {} left, {} waiting",
            info.key,
            human::duration(info.ttl_remaining.unwrap_or_default()),
            info.waiters
        ),
        _ => format!("{}: free, {} waiting", info.key, info.waiters),
    }
}

/// Runs the chosen `lock` subcommand; with `json`, prints JSON.
pub fn run(args: LockArgs, json: bool) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let remote = &args.remote;
    crate::runtime::command()?.block_on(async move {
        let failed = |what: String| {
            move |e: ClientError| anyhow::Error::new(remote.failure(e)).context(what)
        };
        match args.command {
            LockCommand::Acquire {
                key,
                ttl,
                wait,
                owner,
                session,
            } => {
                let owner = owner.unwrap_or_else(default_owner);
                let mut options = AcquireOptions::new(owner, ttl).wait(wait);
                if let Some(session) = session {
                    options = options.session(session);
                }
                let grant = client
                    .try_acquire(&key, &options)
                    .await
                    .map_err(failed(format!("cannot acquire {key}")))?;
                if json {
                    println!(
                        "{}",
                        json!({"key": grant.key, "owner": grant.owner, "fencing_token": grant.fencing_token, "ttl_ms": grant.ttl.as_millis() as u64, "session_id": grant.session})
                    );
                } else {
                    println!(
                        "acquired {} as {} with fencing token {} for {}",
                        grant.key,
                        grant.owner,
                        grant.fencing_token,
                        human::duration(grant.ttl)
                    );
                }
            }
            LockCommand::Renew {
                held: HeldLock { key, token, owner },
                ttl,
            } => {
                let ttl = client
                    .renew(&key, &owner, token, ttl)
                    .await
                    .map_err(failed(format!(
                        "cannot renew {key} as {owner} with fencing token {token}"
                    )))?;
                if json {
                    println!(
                        "{}",
                        json!({"key": key, "fencing_token": token, "ttl_ms": ttl.as_millis() as u64})
                    );
                } else {
                    println!(
                        "renewed {key} (fencing token {token}) for {}",
                        human::duration(ttl)
                    );
                }
            }
            LockCommand::Release {
                held: HeldLock { key, token, owner },
            } => {
                client
                    .release(&key, &owner, token)
                    .await
                    .map_err(failed(format!(
                        "cannot release {key} as {owner} with fencing token {token}"
                    )))?;
                if json {
                    println!("{}", json!({"released": true}));
                } else {
                    println!("released {key}");
                }
            }
            LockCommand::Status { key } => {
                let info = client
                    .status(&key, true)
                    .await
                    .map_err(failed(format!("cannot read {key}")))?;
                if json {
                    println!("{}", info_json(&info));
                } else {
                    println!("{}", info_text(&info));
                }
            }
            LockCommand::List { prefix, limit } => {
                let (locks, next) = client
                    .list(&prefix, limit, None)
                    .await
                    .map_err(failed("cannot list locks".into()))?;
                print_list(&locks, next.as_deref(), json);
            }
        }
        Ok(())
    })
}

fn print_list(locks: &[LockInfo], next: Option<&str>, json: bool) {
    if json {
        let locks: Vec<_> = locks.iter().map(info_json).collect();
        println!("{}", json!({"locks": locks, "next_cursor": next}));
        return;
    }
    for info in locks {
        println!("{}", info_text(info));
    }
    if next.is_some() {
        println!("(more; raise --limit)");
    }
}
