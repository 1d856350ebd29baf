//! One batch into PostgreSQL, in one transaction: the rows whose identity is new (an
//! identity seen before, from a republished copy, is skipped), and the unreadable messages.

use sqlx::PgPool;

use crate::rows::Rows;

/// A message that is not a row, kept as it came.
#[derive(Debug, Clone)]
pub struct UnreadableMessage {
    /// Where it came from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Why it is not a row.
    pub error: String,
    /// The payload, if any.
    pub payload: Option<Vec<u8>>,
}

/// What a stored batch added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// New rows.
    pub rows: u64,
    /// Events already stored (republished copies).
    pub duplicates: u64,
}

const INSERT_ROWS: &str = r#"
WITH batch AS (
    SELECT * FROM UNNEST(
        $1::int[], $2::bigint[], $3::int[], $4::bigint[], $5::text[], $6::text[],
        $7::bigint[], $8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[],
        $13::text[], $14::int[]
    ) AS b(group_id, log_index, position, ts_ms, event_type, tenant, tenant_id,
           resource_id, owner_id, fencing_token, session_id, region, details, schema_version)
), fresh AS (
    INSERT INTO lock_audit_ids (group_id, log_index, position, "timestamp")
    SELECT group_id, log_index, position, to_timestamp(ts_ms / 1000.0) FROM batch
    ON CONFLICT DO NOTHING
    RETURNING group_id, log_index, position
)
INSERT INTO lock_audit (group_id, log_index, position, "timestamp", event_type, tenant,
    tenant_id, resource_id, owner_id, fencing_token, session_id, region, details,
    schema_version)
SELECT b.group_id, b.log_index, b.position, to_timestamp(b.ts_ms / 1000.0), b.event_type,
    b.tenant, b.tenant_id, b.resource_id, b.owner_id, b.fencing_token, b.session_id,
    b.region, b.details::jsonb, b.schema_version
FROM batch b JOIN fresh f USING (group_id, log_index, position)
"#;

const INSERT_UNREADABLE: &str = r#"
INSERT INTO lock_audit_unreadable (topic, partition, "offset", error, payload)
SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::text[], $5::bytea[])
ON CONFLICT DO NOTHING
"#;

/// Stores `rows` and `unreadable` in one transaction (the batch's partitions must exist).
pub async fn store(
    pool: &PgPool,
    rows: &Rows,
    unreadable: &[UnreadableMessage],
) -> Result<Stored, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut added = 0;
    if !rows.is_empty() {
        added = sqlx::query(INSERT_ROWS)
            .bind(&rows.group_id)
            .bind(&rows.log_index)
            .bind(&rows.position)
            .bind(&rows.timestamp_ms)
            .bind(&rows.event_type)
            .bind(&rows.tenant)
            .bind(&rows.tenant_id)
            .bind(&rows.resource_id)
            .bind(&rows.owner_id)
            .bind(&rows.fencing_token)
            .bind(&rows.session_id)
            .bind(&rows.region)
            .bind(&rows.details)
            .bind(&rows.schema_version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    if !unreadable.is_empty() {
        sqlx::query(INSERT_UNREADABLE)
            .bind(
                unreadable
                    .iter()
                    .map(|m| m.topic.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(unreadable.iter().map(|m| m.partition).collect::<Vec<_>>())
            .bind(unreadable.iter().map(|m| m.offset).collect::<Vec<_>>())
            .bind(
                unreadable
                    .iter()
                    .map(|m| m.error.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                unreadable
                    .iter()
                    .map(|m| m.payload.clone())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Stored {
        rows: added,
        duplicates: rows.len() as u64 - added,
    })
}
