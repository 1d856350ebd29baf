//! `lockplane dev --kafka`: the embedded node publishes every applied change to a real
//! Kafka-protocol broker (tansu, from `LOCKPLANE_TEST_TANSU`), the dev tenant's name and
//! the lock's key and token included; `lockplane audit-consumer` stores them in
//! PostgreSQL (`LOCKPLANE_TEST_POSTGRES`, a database of the test's own), and `lockplane
//! audit` answers from there.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use lockplane_proto::audit::{AuditEvent, EventType};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use testkit::broker::Broker;

use common::{Process, TempDir, free_ports, http};

#[test]
fn dev_publishes_each_change_of_a_lock_to_the_audit_topic() {
    let broker = Broker::start();
    let dir = TempDir::new("dev-audit");
    let ports = free_ports(2);
    let key = "audit-test-key";
    let dev = Process::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(["dev", "--groups", "2", "--api-key", key])
            .args(["--http", &format!("127.0.0.1:{}", ports[0])])
            .args(["--node-listen", &format!("127.0.0.1:{}", ports[1])])
            .args(["--kafka", &broker.address(), "--audit-topic", "dev-audit"])
            .arg("--data-dir")
            .arg(&dir.0),
    );
    dev.wait_for("Ctrl-C stops it");
    let (status, body) = http(
        ports[0],
        "POST",
        "/v1/locks/order%3A12345/acquire",
        key,
        r#"{"owner":"billing","ttl_ms":30000}"#,
    );
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["fencing_token"]
        .as_u64()
        .unwrap();
    let (status, body) = http(
        ports[0],
        "POST",
        "/v1/locks/order%3A12345/acquire",
        key,
        r#"{"owner":"shipping","ttl_ms":30000}"#,
    );
    assert_eq!(status, 409, "{body}");
    let release = format!(r#"{{"owner":"billing","fencing_token":{token}}}"#);
    let (status, body) = http(
        ports[0],
        "POST",
        "/v1/locks/order%3A12345/release",
        key,
        &release,
    );
    assert_eq!(status, 200, "{body}");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", "dev-audit-check")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["dev-audit"]).unwrap();
    let mut seen: Vec<AuditEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let of_key = |events: &[AuditEvent]| -> Vec<(EventType, String, u64)> {
        events
            .iter()
            .filter(|e| e.key == "order:12345")
            .map(|e| (e.event_type(), e.owner.clone(), e.fencing_token))
            .collect()
    };
    while of_key(&seen).len() < 3 {
        assert!(Instant::now() < deadline, "events so far: {seen:?}");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let event = AuditEvent::decode(message.payload().unwrap()).unwrap();
            // A republished copy (same identity) is the same event: keep the first.
            let id = |e: &AuditEvent| (e.group_id, e.log_index, e.position);
            if !seen.iter().any(|e| id(e) == id(&event)) {
                seen.push(event);
            }
        }
    }
    assert_eq!(
        of_key(&seen),
        [
            (EventType::Acquired, "billing".to_string(), token),
            (EventType::Rejected, "shipping".to_string(), 0),
            (EventType::Released, "billing".to_string(), token),
        ]
    );
    let acquired = seen.iter().find(|e| e.key == "order:12345").unwrap();
    assert_eq!(
        (acquired.tenant.as_str(), acquired.schema_version),
        ("dev", 1)
    );
    let rejected = seen
        .iter()
        .find(|e| e.event_type() == EventType::Rejected)
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&rejected.details_json).unwrap();
    assert_eq!(details["reason"], "held");
    assert!(
        seen.iter()
            .any(|e| e.event_type() == EventType::TenantCreated && e.key == "dev"),
        "the meta group's changes are published too: {seen:?}"
    );
    dev.terminate("dev stopped");

    // The consumer stores them; `lockplane audit` reads them back.
    let server = std::env::var("LOCKPLANE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string());
    let database = format!("lockplane_cli_audit_{}", std::process::id());
    admin_sql(&server, &format!("DROP DATABASE IF EXISTS {database}"));
    admin_sql(&server, &format!("CREATE DATABASE {database}"));
    let url = format!("{server}/{database}");
    let metrics_port = free_ports(1)[0];
    let consumer = Process::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(["audit-consumer", "--kafka", &broker.address()])
            .args(["--audit-topic", "dev-audit", "--group", "cli-test"])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .env("LOCKPLANE_POSTGRES_URL", &url),
    );
    consumer.wait_for("audit consumer running");
    let audit = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(["--json", "audit"])
            .args(args)
            .env("LOCKPLANE_POSTGRES_URL", &url)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let holds = loop {
        let output = audit(&["history", "order:12345", "--tenant", "dev"]);
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        if answer["holds"]
            .as_array()
            .is_some_and(|h| !h.is_empty() && h[0]["ended_by"] == "RELEASED")
        {
            break answer["holds"].clone();
        }
        assert!(Instant::now() < deadline, "no history yet: {answer}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(holds[0]["owner"], "billing");
    assert_eq!(holds[0]["fencing_token"], token);
    assert_eq!(holds[0]["reason"], "released");
    let (status, metrics) = http(metrics_port, "GET", "/metrics", "", "");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("lockplane_audit_consumer_rows_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lockplane_audit_consumer_lag_messages"),
        "{metrics}"
    );

    // Bad input is named, with exit 64.
    let bad_time = audit(&["holder-at", "order:12345", "yesterday-ish"]);
    assert_eq!(bad_time.status.code(), Some(64));
    let answer: serde_json::Value = serde_json::from_slice(&bad_time.stdout).unwrap();
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("TIME: \"yesterday-ish\" is not a time"),
        "{answer}"
    );
    let bad_url = std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"))
        .args(["audit", "--postgres", "mysql://db", "top-contended"])
        .output()
        .unwrap();
    assert_eq!(bad_url.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("--postgres: not a PostgreSQL URL"));
    consumer.terminate("audit consumer stopped");
    admin_sql(
        &server,
        &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
    );
}

/// Runs one statement on the server's `postgres` database.
fn admin_sql(server: &str, sql: &str) {
    use sqlx::Connection as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap();
        sqlx::query(sql).execute(&mut admin).await.unwrap();
    });
}
