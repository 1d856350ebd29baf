//! PostgreSQL down for 30 s under load: a server of the test's own
//! (`testkit::postgres::Server`, never the machine's) is stopped like a crash while events
//! keep arriving, then started again; every event becomes one row, none twice.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lockplane_audit_consumer::{ConsumerConfig, ConsumerStats, run};
use lockplane_node::audit::{AuditConfig, ensure_topic};
use lockplane_proto::audit::{AuditEvent, EventType};
use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use testkit::broker::Broker;
use testkit::postgres::Server;

async fn produce(producer: &FutureProducer, topic: &str, indexes: std::ops::RangeInclusive<u64>) {
    let now = testkit::wall::unix_ms();
    let mut sends = Vec::new();
    for index in indexes {
        let mut event = AuditEvent {
            schema_version: 1,
            group_id: 1,
            log_index: index,
            timestamp_ms: now,
            key: format!("key-{}", index % 20),
            owner: "o".into(),
            fencing_token: index,
            ..AuditEvent::default()
        };
        event.set_event_type(EventType::Acquired);
        let payload = event.encode_to_vec();
        let record = FutureRecord::to(topic).key(&event.key).payload(&payload);
        sends.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for send in sends {
        send.await.unwrap().unwrap();
    }
}

async fn until_rows(stats: &ConsumerStats, want: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while stats.rows.load(Ordering::Relaxed) < want {
        assert!(Instant::now() < deadline, "rows: {stats:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_down_for_30_s_loses_and_doubles_no_row() {
    let broker = Broker::start();
    let mut server = Server::start();
    server.create_database("audit");
    let topic = "audit-outage";
    let mut topic_config = AuditConfig::new(broker.address());
    topic_config.topic = topic.to_string();
    topic_config.partitions = 3;
    ensure_topic(&topic_config).await.unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .create()
        .unwrap();

    let stats = Arc::new(ConsumerStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ConsumerConfig::new(&broker.address(), topic, &server.url("audit"));
    let consumer = tokio::spawn(run(config, Arc::clone(&stats), async {
        let _ = stopped.await;
    }));
    produce(&producer, topic, 1..=2_000).await;
    until_rows(&stats, 2_000, Duration::from_secs(60)).await;

    server.stop();
    let down = Instant::now();
    produce(&producer, topic, 2_001..=4_000).await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    assert_eq!(
        stats.rows.load(Ordering::Relaxed),
        2_000,
        "stored while down?"
    );
    assert!(
        stats.store_failures.load(Ordering::Relaxed) > 0,
        "{stats:?}"
    );
    server.resume();
    until_rows(&stats, 4_000, Duration::from_secs(60)).await;

    let counted = std::process::Command::new("psql")
        .args(["-tA", "-c"])
        .arg("SELECT count(*), count(DISTINCT (group_id, log_index, position)) FROM lock_audit")
        .args(["-F", " "])
        .arg(server.url("audit"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&counted.stdout).trim(), "4000 4000");
    stop.send(()).unwrap();
    consumer.await.unwrap().unwrap();
}
