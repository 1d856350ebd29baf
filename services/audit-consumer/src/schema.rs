//! The audit database's schema: the numbered migrations of `migrations/` (embedded), and
//! the daily partitions of `lock_audit`, created ahead of time and on demand.

use std::collections::BTreeSet;

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::rows::DAY_MS;

/// Every migration of `migrations/`, run by the consumer at start.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Days of partitions created ahead of today.
pub const DAYS_AHEAD: i64 = 3;

/// The partition of the day starting at `day_ms` (ms since the epoch, UTC midnight).
pub fn partition_name(day_ms: i64) -> String {
    let (year, month, day) = civil_date(day_ms.div_euclid(DAY_MS));
    format!("lock_audit_{year:04}{month:02}{day:02}")
}

/// The UTC date of `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The partitions this process knows exist, so each is created once.
#[derive(Debug, Default)]
pub struct Partitions {
    made: BTreeSet<i64>,
}

impl Partitions {
    /// Makes sure the partitions of `days` (each a UTC midnight in ms) exist. Another
    /// consumer creating the same partition at the same time is not an error.
    pub async fn ensure(&mut self, pool: &PgPool, days: &[i64]) -> Result<(), sqlx::Error> {
        for &day in days {
            if self.made.contains(&day) {
                continue;
            }
            let name = partition_name(day);
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF lock_audit \
                 FOR VALUES FROM (to_timestamp({from} / 1000.0)) TO (to_timestamp({to} / 1000.0))",
                from = day,
                to = day + DAY_MS
            );
            // Attaching a partition locks the whole table: wait at most 2 s for a long
            // query to finish, rather than hold every insert up behind the wait.
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL lock_timeout = '2s'")
                .execute(&mut *tx)
                .await?;
            let created = match sqlx::query(&sql).execute(&mut *tx).await {
                Ok(_) => tx.commit().await,
                Err(e) => Err(e),
            };
            match created {
                Ok(()) => {}
                // Lost a race with another consumer: the partition exists.
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("42P07" | "23505")) => {}
                Err(e) => return Err(e),
            }
            self.made.insert(day);
        }
        Ok(())
    }

    /// Makes sure today's partition and the next [`DAYS_AHEAD`] days' exist.
    pub async fn ensure_ahead(&mut self, pool: &PgPool, now_ms: i64) -> Result<(), sqlx::Error> {
        let today = now_ms - now_ms.rem_euclid(DAY_MS);
        let days: Vec<i64> = (0..=DAYS_AHEAD).map(|d| today + d * DAY_MS).collect();
        self.ensure(pool, &days).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_by_utc_date() {
        assert_eq!(partition_name(0), "lock_audit_19700101");
        // 2026-12-01T00:00:00Z
        assert_eq!(partition_name(1_796_083_200_000), "lock_audit_20261201");
        // 2024-02-29 (a leap day) and 2000-03-01.
        assert_eq!(partition_name(1_709_164_800_000), "lock_audit_20240229");
        assert_eq!(partition_name(951_868_800_000), "lock_audit_20000301");
    }
}
