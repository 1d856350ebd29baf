//! docs/audit.md's cookbook, run from the file itself against rows stored by the consumer's
//! own insert (the machine's PostgreSQL, `LOCKPLANE_TEST_POSTGRES`, in a database of the
//! test's own); and the questions `lockplane audit` asks, on the same rows.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use lockplane_audit_consumer::connect;
use lockplane_audit_consumer::queries::{self, QueryError};
use lockplane_audit_consumer::rows::Rows;
use lockplane_audit_consumer::schema::Partitions;
use lockplane_audit_consumer::store::store;
use lockplane_proto::audit::{AuditEvent, EventType};
use sqlx::{PgPool, Row};
use testkit::postgres::Database;

/// The `sql` blocks of docs/audit.md's cookbook, by the name on their first line.
fn cookbook() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/audit.md"))
        .unwrap();
    let mut queries = BTreeMap::new();
    for block in doc.split("```sql\n").skip(1) {
        let sql = block.split("```").next().unwrap();
        if let Some(rest) = sql.strip_prefix("-- cookbook: ") {
            let (name, query) = rest.split_once('\n').unwrap();
            queries.insert(name.trim().to_string(), query.to_string());
        }
    }
    queries
}

/// A scenario on key order:12345 of tenant dev, starting at `t` (ms):
/// billing holds it 30 s and releases; shipping holds it until its lease expires 4 min
/// later; meanwhile audit queues, mallory is refused, billing's stale token is refused;
/// audit is granted from the queue and releases. Tenant other has its own order:12345,
/// and dev holds order:999.
fn scenario(t: u64) -> Vec<AuditEvent> {
    let mut index = 0;
    let mut event = |tenant: (u64, &str),
                     at: u64,
                     kind: EventType,
                     key: &str,
                     owner: &str,
                     token: u64,
                     details: &str| {
        index += 1;
        let mut e = AuditEvent {
            schema_version: 1,
            group_id: if key == "order:999" { 2 } else { 1 },
            log_index: index,
            position: 0,
            timestamp_ms: t + at,
            region: "eu".into(),
            tenant_id: tenant.0,
            tenant: tenant.1.into(),
            key: key.into(),
            owner: owner.into(),
            fencing_token: token,
            details_json: details.into(),
            ..AuditEvent::default()
        };
        e.set_event_type(kind);
        e
    };
    let dev = (1, "dev");
    let other = (2, "other");
    use EventType::*;
    vec![
        // A grant whose end never reached the trail (dropped past a backlog limit).
        event(
            dev,
            0,
            Acquired,
            "order:12345",
            "ghost",
            5,
            r#"{"ttl_ms":30000}"#,
        ),
        event(
            dev,
            1_000,
            Acquired,
            "order:12345",
            "billing",
            10,
            r#"{"ttl_ms":30000}"#,
        ),
        event(
            dev,
            5_000,
            Acquired,
            "order:999",
            "shipping",
            11,
            r#"{"ttl_ms":600000}"#,
        ),
        event(
            other,
            10_000,
            Acquired,
            "order:12345",
            "eve",
            3,
            r#"{"ttl_ms":30000}"#,
        ),
        event(
            dev,
            30_000,
            Released,
            "order:12345",
            "billing",
            10,
            r#"{"reason":"released"}"#,
        ),
        event(
            dev,
            60_000,
            Acquired,
            "order:12345",
            "shipping",
            12,
            r#"{"ttl_ms":30000}"#,
        ),
        event(
            dev,
            120_000,
            WaitStarted,
            "order:12345",
            "audit",
            0,
            r#"{"wait":13}"#,
        ),
        event(
            dev,
            150_000,
            Rejected,
            "order:12345",
            "mallory",
            0,
            r#"{"reason":"held","message":"lock is held"}"#,
        ),
        event(
            dev,
            200_000,
            Rejected,
            "order:12345",
            "billing",
            10,
            r#"{"reason":"stale_token","message":"caller is not the holder"}"#,
        ),
        event(
            dev,
            300_000,
            Expired,
            "order:12345",
            "shipping",
            12,
            r#"{"reason":"lease_expired"}"#,
        ),
        event(
            dev,
            300_000,
            Acquired,
            "order:12345",
            "audit",
            14,
            r#"{"ttl_ms":30000,"wait":13}"#,
        ),
        event(
            dev,
            310_000,
            Released,
            "order:12345",
            "audit",
            14,
            r#"{"reason":"released"}"#,
        ),
    ]
}

fn text(row: &sqlx::postgres::PgRow, column: &str) -> String {
    row.get::<Option<String>, _>(column).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cookbook_query_and_audit_question_answers_from_real_rows() {
    let db = Database::create("cookbook");
    let pool: PgPool = connect(&db.url()).await.unwrap();
    let now = testkit::wall::unix_ms();
    let t = now - 30 * 60_000;
    let mut rows = Rows::default();
    for event in scenario(t) {
        assert!(rows.push(&event).unwrap());
    }
    Partitions::default()
        .ensure(&pool, &rows.days())
        .await
        .unwrap();
    store(&pool, &rows, &[]).await.unwrap();
    let instant = |ms: u64| {
        sqlx::query("SELECT to_char(to_timestamp($1 / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
            .bind(i64::try_from(ms).unwrap())
    };
    let at_90s: String = instant(t + 90_000).fetch_one(&pool).await.unwrap().get(0);

    let cookbook = cookbook();
    let run = |name: &str| {
        let sql = cookbook[name].replace("2026-12-01T10:00:00Z", &at_90s);
        let pool = pool.clone();
        async move { sqlx::query(&sql).fetch_all(&pool).await.unwrap() }
    };
    assert_eq!(cookbook.len(), 8, "{:?}", cookbook.keys());

    let history = run("history").await;
    let seen: Vec<(String, String, String)> = history
        .iter()
        .map(|r| {
            (
                text(r, "tenant"),
                text(r, "event_type"),
                text(r, "owner_id"),
            )
        })
        .collect();
    assert_eq!(seen.len(), 10);
    let owned = |v: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
        v.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    };
    assert_eq!(seen[..1], owned(&[("dev", "RELEASED", "audit")]));
    // The expiry and the grant to the waiter share one entry, so one instant.
    let mut tied = seen[1..3].to_vec();
    tied.sort();
    assert_eq!(
        tied,
        owned(&[("dev", "ACQUIRED", "audit"), ("dev", "EXPIRED", "shipping")])
    );

    let owners: Vec<(String, i64)> = run("top-owners")
        .await
        .iter()
        .map(|r| (text(r, "owner_id"), r.get("lock_count")))
        .collect();
    assert_eq!(owners.len(), 5, "{owners:?}");
    assert_eq!(owners[0], ("shipping".to_string(), 2));
    assert!(owners[1..].iter().all(|(_, n)| *n == 1), "{owners:?}");

    let holder = run("holder-at").await;
    assert_eq!(holder.len(), 1);
    assert_eq!(
        (
            text(&holder[0], "owner_id"),
            holder[0].get::<i64, _>("fencing_token")
        ),
        ("shipping".to_string(), 12)
    );

    let longest = run("longest-holds").await;
    let held: Vec<(String, i64, String)> = longest
        .iter()
        .map(|r| {
            (
                text(r, "owner_id"),
                r.get("fencing_token"),
                text(r, "reason"),
            )
        })
        .collect();
    assert_eq!(
        held,
        [
            ("shipping", 12, "lease_expired"),
            ("billing", 10, "released"),
            ("audit", 14, "released")
        ]
        .map(|(o, t, w)| (o.to_string(), t, w.to_string()))
    );

    let contended = run("most-contended").await;
    let first = &contended[0];
    assert_eq!(
        (text(first, "tenant"), text(first, "resource_id")),
        ("dev".to_string(), "order:12345".to_string())
    );
    assert_eq!(
        (
            first.get::<i64, _>("waits"),
            first.get::<i64, _>("refused"),
            first.get::<i64, _>("grants")
        ),
        (1, 1, 4)
    );

    let expired = run("expired-while-held").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(text(&expired[0], "owner_id"), "shipping");

    let stale = run("stale-tokens").await;
    assert_eq!(stale.len(), 1);
    assert_eq!(
        (
            text(&stale[0], "owner_id"),
            stale[0].get::<i64, _>("fencing_token")
        ),
        ("billing".to_string(), 10)
    );

    let activity: Vec<(String, i64)> = run("tenant-activity")
        .await
        .iter()
        .map(|r| (text(r, "event_type"), r.get("events")))
        .collect();
    assert_eq!(
        activity,
        [
            ("ACQUIRED", 5),
            ("REJECTED", 2),
            ("RELEASED", 2),
            ("EXPIRED", 1),
            ("WAIT_STARTED", 1)
        ]
        .map(|(k, n)| (k.to_string(), n))
    );

    // The same questions as `lockplane audit` asks them.
    let holds = queries::history(&pool, "order:12345", Some("dev"), 10)
        .await
        .unwrap();
    let summary: Vec<(String, i64, Option<String>)> = holds
        .iter()
        .map(|h| (h.owner.clone(), h.token, h.reason.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("audit", 14, Some("released")),
            ("shipping", 12, Some("lease_expired")),
            ("billing", 10, Some("released")),
            ("ghost", 5, None),
        ]
        .map(|(o, t, r)| (o.to_string(), t, r.map(str::to_string)))
    );
    let at = queries::holder_at(&pool, "order:12345", Some("dev"), &at_90s)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((at.owner.as_str(), at.token), ("shipping", 12));
    let other = queries::holder_at(&pool, "order:12345", Some("other"), &at_90s)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((other.owner.as_str(), other.ended_at), ("eve", None));
    // Between billing's release and shipping's grant nobody held it, whatever an older
    // grant without a recorded end says.
    let at_45s: String = instant(t + 45_000).fetch_one(&pool).await.unwrap().get(0);
    let nobody = queries::holder_at(&pool, "order:12345", Some("dev"), &at_45s)
        .await
        .unwrap();
    assert_eq!(nobody, None);
    assert!(matches!(
        queries::holder_at(&pool, "order:12345", None, "yesterday-ish").await,
        Err(QueryError::BadTime(_))
    ));
    let top = queries::top_contended(&pool, Duration::from_secs(3_600), 10)
        .await
        .unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(
        (top[0].key.as_str(), top[0].waits, top[0].refusals),
        ("order:12345", 1, 1)
    );

    pool.close().await;
}
