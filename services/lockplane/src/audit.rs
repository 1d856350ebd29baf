//! `lockplane audit`: questions over the audit trail in PostgreSQL (what the audit
//! consumer stores): one key's history, who held a key at an instant, the most contended
//! keys. A table, or JSON with `--json`.

use std::time::Duration;

use clap::{Args, Subcommand};
use lockplane_audit_consumer::check_postgres_url;
use lockplane_audit_consumer::queries::{self, Contended, Hold, QueryError};
use lockplane_audit_consumer::retention::archive;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;

use crate::failure::{Failure, exit, usage};
use crate::input::parse_duration;

/// Flags of `lockplane audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The audit database, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
    #[arg(
        long,
        env = "LOCKPLANE_POSTGRES_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    postgres: String,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Who held KEY, when, with which tokens, and how each hold ended (newest first).
    History {
        /// The lock key.
        key: String,
        /// Only this tenant's key (by name).
        #[arg(long)]
        tenant: Option<String>,
        /// Most holds shown (1..=10000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
    /// Who held KEY at TIME (RFC 3339, e.g. 2026-12-01T10:00:00Z; without an offset, UTC).
    HolderAt {
        /// The lock key.
        key: String,
        /// The instant.
        time: String,
        /// Only this tenant's key (by name).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Export the daily partitions older than --keep to compressed CSV files in --dir,
    /// then drop them (what every audit consumer also does hourly).
    Archive {
        /// How long rows stay in PostgreSQL (e.g. 7d; 1h..=3650d).
        #[arg(long, default_value = "7d", value_parser = parse_keep)]
        keep: Duration,
        /// Where the files go (`lock_audit_YYYYMMDD.csv.gz`).
        #[arg(long, default_value = "./lockplane-audit-archive")]
        dir: std::path::PathBuf,
    },
    /// The keys callers waited for or were refused most often.
    TopContended {
        /// How far back to look (e.g. 15m, 1h, 7d... in 1s..=30d).
        #[arg(long, default_value = "1h", value_parser = parse_since)]
        since: Duration,
        /// Most keys shown (1..=1000).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=1_000))]
        limit: i64,
    },
}

/// A duration in days too (`7d`), as retention and look-back windows are written.
fn parse_days(text: &str) -> Result<Duration, String> {
    let days = text
        .trim()
        .strip_suffix('d')
        .and_then(|d| d.parse::<u64>().ok());
    match days {
        Some(days) => Ok(Duration::from_secs(days.saturating_mul(86_400))),
        None => parse_duration(text),
    }
}

/// `--keep`: how long audit rows stay in PostgreSQL, 1h..=3650d.
pub fn parse_keep(text: &str) -> Result<Duration, String> {
    let keep = parse_days(text)?;
    if keep < Duration::from_secs(3_600) || keep > Duration::from_secs(3_650 * 86_400) {
        return Err(format!("{text:?} is outside 1h..=3650d"));
    }
    Ok(keep)
}

fn parse_since(text: &str) -> Result<Duration, String> {
    let since = parse_days(text)?;
    if since < Duration::from_secs(1) || since > Duration::from_secs(30 * 86_400) {
        return Err(format!("{text:?} is outside 1s..=30d"));
    }
    Ok(since)
}

/// Runs the chosen question; with `json`, prints JSON.
pub fn run(args: AuditArgs, json: bool) -> anyhow::Result<()> {
    if let Err(e) = check_postgres_url(&args.postgres) {
        usage!("--postgres: {e}");
    }
    let runtime = crate::runtime::command()?;
    runtime.block_on(async move {
        // Times without an offset read as UTC, as every time printed here is.
        let options = PgConnectOptions::from_str(&args.postgres)
            .map_err(|e| Failure::usage(format!("--postgres: {e}")))?
            .options([("TimeZone", "UTC")]);
        let pool = PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| unavailable(&e.to_string()))?;
        match args.command {
            AuditCommand::History { key, tenant, limit } => {
                let holds = queries::history(&pool, &key, tenant.as_deref(), limit)
                    .await
                    .map_err(failed)?;
                print_holds(&holds, json);
            }
            AuditCommand::HolderAt { key, time, tenant } => {
                let hold = queries::holder_at(&pool, &key, tenant.as_deref(), &time)
                    .await
                    .map_err(failed)?;
                if json {
                    println!("{}", json!({"holder": hold.as_ref().map(hold_json)}));
                } else {
                    match &hold {
                        Some(hold) => print_holds(std::slice::from_ref(hold), false),
                        None => println!("nobody held {key} at {time}"),
                    }
                }
            }
            AuditCommand::Archive { keep, dir } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let archived = archive(&pool, &dir, keep, now)
                    .await
                    .map_err(|e| anyhow::Error::new(e).context("archiving failed"))?;
                if json {
                    let files: Vec<Value> = archived
                        .iter()
                        .map(|a| json!({"partition": a.partition, "rows": a.rows, "file": a.file}))
                        .collect();
                    println!("{}", json!({ "archived": files }));
                } else if archived.is_empty() {
                    println!(
                        "nothing to archive (no partition older than {})",
                        lockplane_proto::human::duration(keep)
                    );
                } else {
                    let rows: Vec<Vec<String>> = archived
                        .iter()
                        .map(|a| {
                            vec![
                                a.partition.clone(),
                                a.rows.to_string(),
                                a.file.display().to_string(),
                            ]
                        })
                        .collect();
                    print_table(&["PARTITION", "ROWS", "FILE"], &rows);
                }
            }
            AuditCommand::TopContended { since, limit } => {
                let keys = queries::top_contended(&pool, since, limit)
                    .await
                    .map_err(failed)?;
                print_contended(&keys, json);
            }
        }
        Ok(())
    })
}

fn unavailable(detail: &str) -> anyhow::Error {
    Failure::new(
        exit::UNAVAILABLE,
        "unavailable",
        format!("cannot reach the audit database: {detail}"),
    )
    .into()
}

fn failed(error: QueryError) -> anyhow::Error {
    match error {
        QueryError::BadTime(_) => Failure::usage(format!("TIME: {error}")).into(),
        QueryError::Database(e) => anyhow::Error::new(e).context("the audit query failed"),
    }
}

fn hold_json(hold: &Hold) -> Value {
    json!({
        "tenant": hold.tenant,
        "key": hold.key,
        "owner": hold.owner,
        "fencing_token": hold.token,
        "acquired_at": hold.acquired_at,
        "ended_at": hold.ended_at,
        "ended_by": hold.ended_by,
        "reason": hold.reason,
    })
}

fn print_holds(holds: &[Hold], json: bool) {
    if json {
        println!(
            "{}",
            json!({"holds": holds.iter().map(hold_json).collect::<Vec<_>>()})
        );
        return;
    }
    let rows: Vec<Vec<String>> = holds
        .iter()
        .map(|h| {
            vec![
                h.tenant.clone(),
                h.key.clone(),
                h.owner.clone(),
                h.token.to_string(),
                h.acquired_at.clone(),
                h.ended_at.clone().unwrap_or_else(|| "-".into()),
                h.reason.clone().unwrap_or_else(|| "held".into()),
            ]
        })
        .collect();
    print_table(
        &[
            "TENANT", "KEY", "OWNER", "TOKEN", "ACQUIRED", "ENDED", "HOW",
        ],
        &rows,
    );
}

fn print_contended(keys: &[Contended], json: bool) {
    if json {
        let keys: Vec<Value> = keys
            .iter()
            .map(|k| {
                json!({"tenant": k.tenant, "key": k.key, "waits": k.waits,
                       "refusals": k.refusals, "grants": k.grants})
            })
            .collect();
        println!("{}", json!({ "keys": keys }));
        return;
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.tenant.clone(),
                k.key.clone(),
                k.waits.to_string(),
                k.refusals.to_string(),
                k.grants.to_string(),
            ]
        })
        .collect();
    print_table(&["TENANT", "KEY", "WAITS", "REFUSED", "GRANTS"], &rows);
}

/// Left-aligned columns, two spaces apart.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_is_bounded() {
        assert_eq!(parse_keep("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_keep("10m").unwrap_err().contains("1h..=3650d"));
        assert!(parse_keep("4000d").unwrap_err().contains("1h..=3650d"));
    }

    #[test]
    fn since_is_bounded() {
        assert_eq!(parse_since("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_since("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_since("0s").unwrap_err().contains("1s..=30d"));
        assert!(parse_since("60d").unwrap_err().contains("1s..=30d"));
        assert!(parse_since("soon").is_err());
    }
}
