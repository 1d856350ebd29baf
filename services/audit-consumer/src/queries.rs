//! The questions `lockplane audit` answers over `lock_audit`: one key's holds and how each
//! ended, who held a key at an instant, and the most contended keys. docs/audit.md's
//! cookbook shows the same SQL.

use std::time::Duration;

use sqlx::{PgPool, Row};

/// How a time is shown: RFC 3339 in UTC, to the millisecond.
const SHOWN_TIME: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"#;

/// One hold of a key: its grant and, once over, how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The tenant.
    pub tenant: String,
    /// The key.
    pub key: String,
    /// The holder.
    pub owner: String,
    /// The grant's fencing token.
    pub token: i64,
    /// When it was granted (RFC 3339, UTC).
    pub acquired_at: String,
    /// When it ended, if it did (RFC 3339, UTC).
    pub ended_at: Option<String>,
    /// `RELEASED` or `EXPIRED`, if it ended.
    pub ended_by: Option<String>,
    /// Why (`released`, `lease_expired`, `session_expired`, `session_closed`).
    pub reason: Option<String>,
}

/// Why a question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The time given is not one PostgreSQL reads.
    #[error("{0:?} is not a time (expected RFC 3339, e.g. 2026-12-01T10:00:00Z)")]
    BadTime(String),
    /// The database failed or is unreachable.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Grants of `key` (those `grants` selects, newest first), each joined with the first
/// `RELEASED` or `EXPIRED` row of the same group, key and token at or after it.
fn holds_sql(grants: &str) -> String {
    format!(
        r#"SELECT a.tenant, a.resource_id, a.owner_id, a.fencing_token,
       to_char(a."timestamp" AT TIME ZONE 'UTC', {SHOWN_TIME}) AS acquired_at,
       to_char(e."timestamp" AT TIME ZONE 'UTC', {SHOWN_TIME}) AS ended_at,
       e.event_type AS ended_by, e.details->>'reason' AS reason, e."timestamp" AS ended
FROM ({grants}) a
LEFT JOIN LATERAL (
    SELECT "timestamp", event_type, details FROM lock_audit e
    WHERE e.group_id = a.group_id AND e.resource_id = a.resource_id
      AND e.tenant_id = a.tenant_id AND e.fencing_token = a.fencing_token
      AND e.event_type IN ('RELEASED', 'EXPIRED') AND e."timestamp" >= a."timestamp"
    ORDER BY e."timestamp" LIMIT 1
) e ON true
ORDER BY a."timestamp" DESC, a.log_index DESC, a.position DESC"#
    )
}

/// The grants of `$1` (of tenant `$2`, or any) that `condition` keeps, newest first, at
/// most `$3`.
fn grants_sql(condition: &str) -> String {
    format!(
        r#"SELECT * FROM lock_audit
WHERE resource_id = $1 AND event_type = 'ACQUIRED' AND ($2::text IS NULL OR tenant = $2)
  AND {condition}
ORDER BY "timestamp" DESC, log_index DESC, position DESC
LIMIT $3"#
    )
}

fn hold(row: &sqlx::postgres::PgRow) -> Hold {
    Hold {
        tenant: row.get("tenant"),
        key: row
            .get::<Option<String>, _>("resource_id")
            .unwrap_or_default(),
        owner: row.get::<Option<String>, _>("owner_id").unwrap_or_default(),
        token: row
            .get::<Option<i64>, _>("fencing_token")
            .unwrap_or_default(),
        acquired_at: row.get("acquired_at"),
        ended_at: row.get("ended_at"),
        ended_by: row.get("ended_by"),
        reason: row.get("reason"),
    }
}

/// The newest `limit` holds of `key` (of tenant `tenant`, or any), newest first.
pub async fn history(
    pool: &PgPool,
    key: &str,
    tenant: Option<&str>,
    limit: i64,
) -> Result<Vec<Hold>, QueryError> {
    let rows = sqlx::query(&holds_sql(&grants_sql("true")))
        .bind(key)
        .bind(tenant)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(hold).collect())
}

/// The hold of `key` that covered instant `at`, if any: the newest grant at or before it,
/// unless that one had ended by then (an older grant never covers a later instant).
pub async fn holder_at(
    pool: &PgPool,
    key: &str,
    tenant: Option<&str>,
    at: &str,
) -> Result<Option<Hold>, QueryError> {
    let newest = grants_sql(r#""timestamp" <= $4::timestamptz"#);
    let sql = format!(
        r#"SELECT * FROM ({}) h WHERE h.ended IS NULL OR h.ended > $4::timestamptz"#,
        holds_sql(&newest)
    );
    let row = sqlx::query(&sql)
        .bind(key)
        .bind(tenant)
        .bind(1_i64)
        .bind(at)
        .fetch_optional(pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22")) => {
                QueryError::BadTime(at.to_string())
            }
            _ => QueryError::Database(e),
        })?;
    Ok(row.as_ref().map(hold))
}

/// A key and how contended it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contended {
    /// The tenant.
    pub tenant: String,
    /// The key.
    pub key: String,
    /// Callers that queued for it.
    pub waits: i64,
    /// Acquires refused because it was held.
    pub refusals: i64,
    /// Grants.
    pub grants: i64,
}

/// The `limit` keys with the most waits and refusals-because-held over the last `since`.
pub async fn top_contended(
    pool: &PgPool,
    since: Duration,
    limit: i64,
) -> Result<Vec<Contended>, QueryError> {
    let rows = sqlx::query(
        r#"SELECT * FROM (
    SELECT tenant, resource_id,
           count(*) FILTER (WHERE event_type = 'WAIT_STARTED') AS waits,
           count(*) FILTER (WHERE event_type = 'REJECTED' AND details->>'reason' = 'held')
               AS refusals,
           count(*) FILTER (WHERE event_type = 'ACQUIRED') AS grants
    FROM lock_audit
    WHERE "timestamp" > now() - make_interval(secs => $1) AND group_id > 0
      AND resource_id IS NOT NULL
    GROUP BY tenant, resource_id
) keys
WHERE waits + refusals > 0
ORDER BY waits + refusals DESC, grants DESC, tenant, resource_id
LIMIT $2"#,
    )
    .bind(since.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Contended {
            tenant: row.get("tenant"),
            key: row.get("resource_id"),
            waits: row.get("waits"),
            refusals: row.get("refusals"),
            grants: row.get("grants"),
        })
        .collect())
}
