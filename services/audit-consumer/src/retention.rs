//! Retention: daily partitions of `lock_audit` older than the kept window are exported to
//! a gzip-compressed CSV file in an archive directory, then dropped (their identities in
//! `lock_audit_ids` with them). `lockplane audit archive` runs it; so does every consumer,
//! hourly. One run at a time across consumers (a PostgreSQL advisory lock).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::StreamExt;
use sqlx::postgres::PgPoolCopyExt;
use sqlx::{PgPool, Row};

use crate::rows::DAY_MS;
use crate::schema::partition_name;

/// How long rows are kept in PostgreSQL unless configured otherwise (seed 002: "7 days
/// hot").
pub const DEFAULT_KEEP: Duration = Duration::from_secs(7 * 86_400);

/// The advisory lock that keeps two archivers apart.
const ARCHIVE_LOCK: i64 = 0x4c50_4155_4449_5401;

/// One partition exported and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The partition, `lock_audit_YYYYMMDD`.
    pub partition: String,
    /// Its rows.
    pub rows: i64,
    /// The file they went to.
    pub file: PathBuf,
}

/// Why archiving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The archive file could not be written (nothing was dropped).
    #[error("cannot write {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The days (UTC midnights, in ms) of the partitions that exist.
async fn partition_days(pool: &PgPool) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.relname FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
         WHERE p.relname = 'lock_audit'",
    )
    .fetch_all(pool)
    .await?;
    let mut days: Vec<(i64, String)> = rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            let day = day_of(&name)?;
            (partition_name(day) == name).then_some((day, name))
        })
        .collect();
    days.sort();
    Ok(days)
}

/// The UTC midnight (ms) a partition name stands for.
fn day_of(name: &str) -> Option<i64> {
    let date = name.strip_prefix("lock_audit_")?;
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i64 = date[..4].parse().ok()?;
    let month: i64 = date[4..6].parse().ok()?;
    let day: i64 = date[6..].parse().ok()?;
    // Days from the civil date (Howard Hinnant's `days_from_civil`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * DAY_MS)
}

/// Exports and drops every partition whose day ended more than `keep` before `now_ms`,
/// oldest first; the files go to `dir` (created if missing). Does nothing while another
/// archiver runs. Uses two of the pool's connections at once (one holds the lock).
pub async fn archive(
    pool: &PgPool,
    dir: &Path,
    keep: Duration,
    now_ms: i64,
) -> Result<Vec<Archived>, ArchiveError> {
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now_ms.saturating_sub(keep_ms);
    let mut lock = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(ARCHIVE_LOCK)
        .fetch_one(&mut *lock)
        .await?;
    if !locked {
        return Ok(Vec::new());
    }
    let done = archive_locked(pool, dir, cutoff).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(ARCHIVE_LOCK)
        .execute(&mut *lock)
        .await;
    done
}

async fn archive_locked(
    pool: &PgPool,
    dir: &Path,
    cutoff: i64,
) -> Result<Vec<Archived>, ArchiveError> {
    let mut archived = Vec::new();
    for (day, partition) in partition_days(pool).await? {
        if day + DAY_MS > cutoff {
            break;
        }
        let file = dir.join(format!("{partition}.csv.gz"));
        let rows = export(pool, &partition, &file).await?;
        let mut tx = pool.begin().await?;
        sqlx::query(&format!("DROP TABLE {partition}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            r#"DELETE FROM lock_audit_ids
               WHERE "timestamp" >= to_timestamp($1 / 1000.0) AND "timestamp" < to_timestamp($2 / 1000.0)"#,
        )
        .bind(day)
        .bind(day + DAY_MS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(%partition, rows, file = %file.display(), "audit partition archived");
        archived.push(Archived {
            partition,
            rows,
            file,
        });
    }
    Ok(archived)
}

/// Writes `partition` as gzip-compressed CSV (with a header) to `file`, durably (a
/// temporary file, synced, then renamed); the rows written.
async fn export(pool: &PgPool, partition: &str, file: &Path) -> Result<i64, ArchiveError> {
    let failed = |source: std::io::Error| ArchiveError::File {
        path: file.to_path_buf(),
        source,
    };
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {partition}"))
        .fetch_one(pool)
        .await?;
    let tmp = file.with_extension("gz.tmp");
    let out = std::fs::File::create(&tmp).map_err(failed)?;
    let mut gz = GzEncoder::new(std::io::BufWriter::new(out), Compression::default());
    let mut copy = pool
        .copy_out_raw(&format!(
            r#"COPY (SELECT * FROM {partition} ORDER BY "timestamp", group_id, log_index, position)
               TO STDOUT WITH (FORMAT csv, HEADER)"#
        ))
        .await?;
    while let Some(chunk) = copy.next().await {
        gz.write_all(&chunk?).map_err(failed)?;
    }
    let out = gz
        .finish()
        .and_then(|w| w.into_inner().map_err(std::io::IntoInnerError::into_error))
        .map_err(failed)?;
    out.sync_all().map_err(failed)?;
    std::fs::rename(&tmp, file).map_err(failed)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_read_back_as_their_day() {
        for day in [0, 1_709_164_800_000, 1_796_083_200_000, 951_868_800_000] {
            assert_eq!(day_of(&partition_name(day)), Some(day));
        }
        assert_eq!(day_of("lock_audit_2026120"), None);
        assert_eq!(day_of("lock_audit_ids"), None);
    }
}
