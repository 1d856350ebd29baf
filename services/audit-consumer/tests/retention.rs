//! Retention against the machine's PostgreSQL (a database of the test's own): partitions
//! older than the kept window go to gzip-compressed CSV files and are dropped, with their
//! identities; younger rows stay.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::Read;
use std::time::Duration;

use lockplane_audit_consumer::connect;
use lockplane_audit_consumer::retention::archive;
use lockplane_audit_consumer::rows::{DAY_MS, Rows};
use lockplane_audit_consumer::schema::Partitions;
use lockplane_audit_consumer::store::store;
use lockplane_proto::audit::{AuditEvent, EventType};
use testkit::postgres::Database;

fn event(index: u64, at_ms: i64) -> AuditEvent {
    let mut e = AuditEvent {
        schema_version: 1,
        group_id: 1,
        log_index: index,
        timestamp_ms: u64::try_from(at_ms).unwrap(),
        tenant_id: 1,
        tenant: "dev".into(),
        key: format!("key,{index}"),
        owner: "o".into(),
        fencing_token: index,
        details_json: r#"{"ttl_ms":30000}"#.into(),
        ..AuditEvent::default()
    };
    e.set_event_type(EventType::Acquired);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_partitions_are_exported_then_dropped_and_young_rows_stay() {
    let db = Database::create("retention");
    let pool = connect(&db.url()).await.unwrap();
    let now = i64::try_from(testkit::wall::unix_ms()).unwrap();
    // 3 rows ten days ago, 2 eight days ago, 4 in the last hour.
    let mut rows = Rows::default();
    let mut index = 0;
    for (age_ms, count) in [(10 * DAY_MS, 3), (8 * DAY_MS, 2), (3_600_000 / 2, 4)] {
        for _ in 0..count {
            index += 1;
            rows.push(&event(index, now - age_ms)).unwrap();
        }
    }
    Partitions::default()
        .ensure(&pool, &rows.days())
        .await
        .unwrap();
    store(&pool, &rows, &[]).await.unwrap();

    let dir = std::env::temp_dir().join(format!("lockplane-archive-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let archived = archive(&pool, &dir, Duration::from_secs(7 * 86_400), now)
        .await
        .unwrap();
    let counts: Vec<i64> = archived.iter().map(|a| a.rows).collect();
    assert_eq!(counts, [3, 2], "{archived:?}");
    for a in &archived {
        let mut csv = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&a.file).unwrap())
            .read_to_string(&mut csv)
            .unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(
            lines[0].starts_with("group_id,log_index,position,timestamp"),
            "{}",
            lines[0]
        );
        assert_eq!(lines.len() as i64, 1 + a.rows, "{csv}");
        assert!(csv.contains("\"key,1\"") || a.rows == 2, "{csv}");
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&a.partition)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(!exists, "{} still exists", a.partition);
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM lock_audit")
        .fetch_one(&pool)
        .await
        .unwrap();
    let ids: i64 = sqlx::query_scalar("SELECT count(*) FROM lock_audit_ids")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((left, ids), (4, 4));
    let again = archive(&pool, &dir, Duration::from_secs(7 * 86_400), now)
        .await
        .unwrap();
    assert!(again.is_empty());
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
