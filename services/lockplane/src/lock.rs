//! `lockplane lock acquire | release | status | list`: one call each to the gateway.

use std::time::Duration;

use clap::{Args, Subcommand};
use lockplane_client::{AcquireOptions, LockInfo};
use serde_json::json;

use crate::remote::{Remote, default_owner, parse_duration};

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
        /// The key.
        key: String,
        /// The lease.
        #[arg(long, value_parser = parse_duration, default_value = "30s")]
        ttl: Duration,
        /// How long to wait when the lock is held.
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        wait: Duration,
        /// The owner string (renew and release must give it again).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Give a lock up.
    Release {
        /// The key.
        key: String,
        /// The fencing token the acquire printed.
        #[arg(long)]
        token: u64,
        /// The owner string the acquire used.
        #[arg(long)]
        owner: String,
    },
    /// Show who holds a lock (linearizable read).
    Status {
        /// The key.
        key: String,
    },
    /// List held or waited-on locks by key prefix.
    List {
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
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
            "{}: held by {owner}, token {token}, {} ms left, {} waiting",
            info.key,
            info.ttl_remaining.map_or(0, |d| d.as_millis()),
            info.waiters
        ),
        _ => format!("{}: free, {} waiting", info.key, info.waiters),
    }
}

/// Runs the chosen `lock` subcommand.
pub fn run(args: LockArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let json = args.remote.json;
    crate::runtime::command()?.block_on(async move {
        match args.command {
            LockCommand::Acquire {
                key,
                ttl,
                wait,
                owner,
            } => {
                let owner = owner.unwrap_or_else(default_owner);
                let options = AcquireOptions::new(owner, ttl).wait(wait);
                let grant = client.try_acquire(&key, &options).await?;
                if json {
                    println!(
                        "{}",
                        json!({"key": grant.key, "owner": grant.owner, "fencing_token": grant.fencing_token, "ttl_ms": grant.ttl.as_millis() as u64})
                    );
                } else {
                    println!(
                        "acquired {} as {} with fencing token {} for {} ms",
                        grant.key,
                        grant.owner,
                        grant.fencing_token,
                        grant.ttl.as_millis()
                    );
                }
            }
            LockCommand::Release { key, token, owner } => {
                client.release(&key, &owner, token).await?;
                if json {
                    println!("{}", json!({"released": true}));
                } else {
                    println!("released {key}");
                }
            }
            LockCommand::Status { key } => {
                let info = client.status(&key, true).await?;
                if json {
                    println!("{}", info_json(&info));
                } else {
                    println!("{}", info_text(&info));
                }
            }
            LockCommand::List { prefix, limit } => {
                let (locks, next) = client.list(&prefix, limit, None).await?;
                if json {
                    let locks: Vec<_> = locks.iter().map(info_json).collect();
                    println!("{}", json!({"locks": locks, "next_cursor": next}));
                } else {
                    for info in &locks {
                        println!("{}", info_text(info));
                    }
                    if next.is_some() {
                        println!("(more; raise --limit)");
                    }
                }
            }
        }
        Ok(())
    })
}
