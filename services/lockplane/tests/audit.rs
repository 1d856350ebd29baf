//! `lockplane dev --kafka`: the embedded node publishes every applied change to a real
//! Kafka-protocol broker (tansu, from `LOCKPLANE_TEST_TANSU`), the dev tenant's name and
//! the lock's key and token included.
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
}
