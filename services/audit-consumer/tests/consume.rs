//! The consumer against a real broker (tansu, `LOCKPLANE_TEST_TANSU`) and the machine's
//! PostgreSQL (`LOCKPLANE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432`),
//! each test in a database of its own: one row per event whatever the copies, unreadable
//! messages kept, offsets committed only after the rows, and the seed's queries verbatim.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockplane_audit_consumer::{ConsumerConfig, ConsumerStats, connect, run};
use lockplane_node::audit::{AuditConfig, ensure_topic};
use lockplane_proto::audit::{AuditEvent, EventType};
use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{PgPool, Row};
use testkit::broker::Broker;
use testkit::postgres::Database;

fn event(group: u32, index: u64, kind: EventType, key: &str, owner: &str, at: u64) -> AuditEvent {
    let mut e = AuditEvent {
        schema_version: 1,
        group_id: group,
        log_index: index,
        position: 0,
        timestamp_ms: at,
        region: "local".into(),
        tenant_id: 1,
        tenant: "dev".into(),
        key: key.into(),
        owner: owner.into(),
        fencing_token: index,
        details_json: r#"{"ttl_ms":30000}"#.into(),
        ..AuditEvent::default()
    };
    e.set_event_type(kind);
    e
}

async fn produce(broker: &Broker, topic: &str, messages: &[(String, Vec<u8>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (key, payload) in messages {
        producer
            .send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(pool).await.unwrap().get(0)
}

/// Waits until `sql` counts `want`.
async fn until_count(pool: &PgPool, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = count(pool, sql).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {got}, expected {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_one_row_and_the_seed_queries_run_verbatim() {
    let broker = Broker::start();
    let db = Database::create("consume_once");
    let topic = "audit-consume";
    let mut topic_config = AuditConfig::new(broker.address());
    topic_config.topic = topic.to_string();
    topic_config.partitions = 3;
    ensure_topic(&topic_config).await.unwrap();

    // 3 owners acquire and release order:12345 in turn, an hour ago and now; every event
    // is sent twice (a republished copy), one of them much later; plus one message that is
    // not an event.
    let now = testkit::wall::unix_ms();
    let mut events = Vec::new();
    for (i, owner) in ["billing", "shipping", "billing", "audit"]
        .iter()
        .enumerate()
    {
        let i = i as u64;
        let at = if i == 0 {
            now - 2 * 3_600_000
        } else {
            now - 60_000 + i * 1_000
        };
        events.push(event(
            4,
            10 + 2 * i,
            EventType::Acquired,
            "order:12345",
            owner,
            at,
        ));
        events.push(event(
            4,
            11 + 2 * i,
            EventType::Released,
            "order:12345",
            owner,
            at + 500,
        ));
    }
    events.push(event(
        2,
        5,
        EventType::Acquired,
        "order:999",
        "shipping",
        now - 1_000,
    ));
    // A refused caller's key with a NUL in it (PostgreSQL's text cannot hold one).
    events.push(event(
        2,
        6,
        EventType::Rejected,
        "bad\0key",
        "mallory",
        now - 900,
    ));
    let encoded: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|e| (format!("1/{}", e.key), e.encode_to_vec()))
        .collect();
    produce(&broker, topic, &encoded).await;
    produce(
        &broker,
        topic,
        &[("1/x".to_string(), b"\xff not protobuf".to_vec())],
    )
    .await;
    let mut bad_details = event(2, 7, EventType::Acquired, "k", "o", now - 800);
    bad_details.details_json = "{not json".into();
    produce(
        &broker,
        topic,
        &[("1/k".to_string(), bad_details.encode_to_vec())],
    )
    .await;
    produce(&broker, topic, &encoded[..4]).await;
    // A copy published later by another leader, stamped later (as meta events are).
    let mut restamped = events[5].clone();
    restamped.timestamp_ms += 5_000;
    produce(
        &broker,
        topic,
        &[(format!("1/{}", restamped.key), restamped.encode_to_vec())],
    )
    .await;

    // The schema as the consumer makes it (it migrates again at its start: a no-op).
    let pool = connect(&db.url()).await.unwrap();
    let stats = Arc::new(ConsumerStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ConsumerConfig::new(&broker.address(), topic, &db.url());
    let consumer = tokio::spawn(run(config, Arc::clone(&stats), async {
        let _ = stopped.await;
    }));
    until_count(&pool, "SELECT count(*) FROM lock_audit_unreadable", 2).await;
    until_count(
        &pool,
        "SELECT count(*) FROM lock_audit",
        events.len() as i64,
    )
    .await;
    let distinct = count(
        &pool,
        "SELECT count(DISTINCT (group_id, log_index, position)) FROM lock_audit",
    )
    .await;
    assert_eq!(distinct, events.len() as i64);

    // The seed's two queries, verbatim.
    let history = sqlx::query(
        "SELECT * FROM lock_audit WHERE resource_id = 'order:12345' ORDER BY timestamp DESC LIMIT 10;",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let seen: Vec<(String, String)> = history
        .iter()
        .map(|r| {
            (
                r.get::<String, _>("event_type"),
                r.get::<String, _>("owner_id"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("RELEASED", "audit"),
            ("ACQUIRED", "audit"),
            ("RELEASED", "billing"),
            ("ACQUIRED", "billing"),
            ("RELEASED", "shipping"),
            ("ACQUIRED", "shipping"),
            ("RELEASED", "billing"),
            ("ACQUIRED", "billing"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let top = sqlx::query(
        "SELECT owner_id, COUNT(*) as lock_count FROM lock_audit WHERE event_type = 'ACQUIRED' AND timestamp > NOW() - INTERVAL '1 hour' GROUP BY owner_id ORDER BY lock_count DESC;",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut top: Vec<(String, i64)> = top
        .iter()
        .map(|r| {
            (
                r.get::<String, _>("owner_id"),
                r.get::<i64, _>("lock_count"),
            )
        })
        .collect();
    top.sort();
    assert_eq!(
        top,
        [("audit", 1), ("billing", 1), ("shipping", 2)].map(|(o, n)| (o.to_string(), n))
    );
    let details: serde_json::Value = sqlx::query("SELECT details::text FROM lock_audit LIMIT 1")
        .fetch_one(&pool)
        .await
        .map(|r| serde_json::from_str(&r.get::<String, _>(0)).unwrap())
        .unwrap();
    assert_eq!(details["ttl_ms"], 30_000);

    // Every copy was seen and skipped (the restamped one too).
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.duplicates.load(std::sync::atomic::Ordering::Relaxed) < 5 {
        assert!(Instant::now() < deadline, "copies skipped: {stats:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM lock_audit").await,
        events.len() as i64
    );

    // Offsets were committed after the rows: a new consumer of the group, once it has
    // the partitions, reads nothing again (no copy is even seen).
    stop.send(()).unwrap();
    consumer.await.unwrap().unwrap();
    assert_eq!(
        stats.rows.load(std::sync::atomic::Ordering::Relaxed),
        events.len() as u64
    );
    assert_eq!(
        stats.duplicates.load(std::sync::atomic::Ordering::Relaxed),
        5
    );
    let again = Arc::new(ConsumerStats::default());
    let config = ConsumerConfig::new(&broker.address(), topic, &db.url());
    let watched = Arc::clone(&again);
    let second = tokio::spawn(run(config, Arc::clone(&again), async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while watched.assigned() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Time to read anything it would read, once it has its partitions.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }));
    second.await.unwrap().unwrap();
    assert!(again.assigned() > 0, "the second consumer got no partition");
    assert_eq!(again.rows.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(
        again.duplicates.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    pool.close().await;
}
