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
use testkit::postgres::Database;

use common::metrics::{leader_of, node_metrics_ports, sample, scrape, total};
use common::{Process, TempDir, cluster_up, free_ports, http};

#[test]
fn dev_publishes_each_change_of_a_lock_to_the_audit_topic() {
    let broker = Broker::start();
    let dir = TempDir::new("dev-audit");
    let ports = free_ports(2);
    let key = "audit-test-key";
    // dev runs the whole pipeline in one process: node, publisher and a consumer into a
    // database of its own.
    let dev_database = Database::create("cli_dev");
    let dev_url = dev_database.url();
    let dev = Process::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(["dev", "--groups", "2", "--api-key", key])
            .args(["--http", &format!("127.0.0.1:{}", ports[0])])
            .args(["--node-listen", &format!("127.0.0.1:{}", ports[1])])
            .args(["--kafka", &broker.address(), "--audit-topic", "dev-audit"])
            .env("LOCKPLANE_POSTGRES_URL", &dev_url)
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
    let tenant_created = |events: &[AuditEvent]| {
        events
            .iter()
            .any(|e| e.event_type() == EventType::TenantCreated && e.key == "dev")
    };
    while of_key(&seen).len() < 3 || !tenant_created(&seen) {
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
    let deadline = Instant::now() + Duration::from_secs(60);
    while row_counts(&dev_url).0 < seen.len() as i64 {
        assert!(
            Instant::now() < deadline,
            "dev's consumer stored {:?} of {} events",
            row_counts(&dev_url),
            seen.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    dev.terminate("dev stopped");
    drop(dev_database);

    // A consumer of its own stores them too; `lockplane audit` reads them back.
    let database = Database::create("cli_audit");
    let url = database.url();
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
}

/// The rows of `database`: how many, and how many distinct identities.
fn row_counts(url: &str) -> (i64, i64) {
    use sqlx::Connection as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Ok(mut db) = sqlx::PgConnection::connect(url).await else {
            return (0, 0);
        };
        let counted = sqlx::query_as::<_, (i64, i64)>(
            "SELECT count(*), count(DISTINCT (group_id, log_index, position)) FROM lock_audit",
        )
        .fetch_one(&mut db)
        .await;
        counted.unwrap_or((0, 0))
    })
}

fn start_consumer(broker: &Broker, url: &str, topic: &str) -> (Process, u16) {
    let metrics_port = free_ports(1)[0];
    let process = Process::start(
        std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(["audit-consumer", "--kafka", &broker.address()])
            .args(["--audit-topic", topic, "--group", "shared"])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .env("LOCKPLANE_POSTGRES_URL", url),
    );
    process.wait_for("audit consumer running");
    (process, metrics_port)
}

/// Partitions a consumer reports assigned to it.
fn assigned(metrics_port: u16) -> usize {
    let (_, metrics) = http(metrics_port, "GET", "/metrics", "", "");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("lockplane_audit_consumer_assigned_partitions "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn rows_stored(metrics_port: u16) -> u64 {
    let (_, metrics) = http(metrics_port, "GET", "/metrics", "", "");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("lockplane_audit_consumer_rows_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_consumer_killed_mid_run_loses_and_doubles_nothing_and_two_share_the_partitions() {
    let broker = Broker::start();
    let topic = "kill-audit";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut topic_config = lockplane_node::audit::AuditConfig::new(broker.address());
    topic_config.topic = topic.to_string();
    topic_config.partitions = 4;
    runtime
        .block_on(lockplane_node::audit::ensure_topic(&topic_config))
        .unwrap();
    let database = Database::create("cli_kill");
    let url = database.url();

    // 20,000 events over 50 keys (every 10th one sent twice, as a new leader would).
    let producer: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let total = 20_000_u64;
    let first_half = total / 2;
    let now = testkit::wall::unix_ms();
    let produce = |range: std::ops::RangeInclusive<u64>| {
        runtime.block_on(async {
            let mut sends = Vec::new();
            for index in range {
                let key = format!("key-{}", index % 50);
                let mut event = AuditEvent {
                    schema_version: 1,
                    group_id: 1,
                    log_index: index,
                    timestamp_ms: now - total + index,
                    tenant_id: 1,
                    tenant: "t".into(),
                    key: key.clone(),
                    owner: "o".into(),
                    fencing_token: index,
                    ..AuditEvent::default()
                };
                event.set_event_type(EventType::Acquired);
                let payload = event.encode_to_vec();
                for _ in 0..if index % 10 == 0 { 2 } else { 1 } {
                    let record = rdkafka::producer::FutureRecord::to(topic)
                        .key(&key)
                        .payload(&payload);
                    sends.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
                }
            }
            for send in sends {
                send.await.unwrap().unwrap();
            }
        });
    };
    produce(1..=first_half);

    // One consumer, SIGKILLed once it has stored some rows; then two in the same group.
    let (mut first, _) = start_consumer(&broker, &url, topic);
    let deadline = Instant::now() + Duration::from_secs(60);
    while row_counts(&url).0 < 2_000 {
        assert!(
            Instant::now() < deadline,
            "the first consumer stored nothing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let stored_when_killed = row_counts(&url).0;
    // The broker drops the dead member after its session timeout (10 s). Consumers that
    // joined before that were seen, in parallel runs against tansu 0.6, to wait more than
    // 90 s for their partitions; real deployments meet the same wait (docs/operations.md).
    std::thread::sleep(Duration::from_secs(11));
    let (second, second_port) = start_consumer(&broker, &url, topic);
    let (third, third_port) = start_consumer(&broker, &url, topic);
    // Once the group has settled (each of the two reports lag for the partitions it was
    // given), the second half goes out.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (a, b) = (assigned(second_port), assigned(third_port));
        if a > 0 && b > 0 && a + b == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions assigned: {a} and {b}; {}",
            http(second_port, "GET", "/metrics", "", "").1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = (rows_stored(second_port), rows_stored(third_port));
    produce(first_half + 1..=total);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (rows, distinct) = row_counts(&url);
        assert_eq!(rows, distinct, "a row stored twice");
        if rows == total as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} of {total} rows (killed at {stored_when_killed})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        stored_when_killed < first_half as i64,
        "killed mid-run: {stored_when_killed} of {first_half} stored"
    );
    // Both consumers of the group stored rows of the second half: they shared the
    // partitions.
    let (by_second, by_third) = (
        rows_stored(second_port) - before.0,
        rows_stored(third_port) - before.1,
    );
    assert!(
        by_second > 0 && by_third > 0,
        "rows stored by the two consumers: {by_second}, {by_third}"
    );
    second.terminate("audit consumer stopped");
    third.terminate("audit consumer stopped");
}

#[test]
fn cluster_up_runs_the_whole_pipeline_into_postgres() {
    let broker = Broker::start();
    let cluster = PipelineCluster::start("cli_cluster", &broker, "cluster-key");
    let (up, http_port, url) = (cluster.up, cluster.http_port, cluster.url.clone());
    let (code, body) = http(
        http_port,
        "POST",
        "/v1/locks/order%3A12345/acquire",
        "cluster-key",
        r#"{"owner": "billing", "ttl_ms": 60000}"#,
    );
    assert_eq!(code, 200, "{body}");
    let audit = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"))
            .args(["--json", "audit", "history", "order:12345"])
            .env("LOCKPLANE_POSTGRES_URL", &url)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer: serde_json::Value = serde_json::from_slice(&audit().stdout).unwrap_or_default();
        if answer["holds"].as_array().is_some_and(|h| !h.is_empty()) {
            let hold = &answer["holds"][0];
            assert_eq!(
                (hold["owner"].as_str(), hold["tenant"].as_str()),
                (Some("billing"), Some("dev"))
            );
            assert_eq!(hold["ended_at"], serde_json::Value::Null);
            break;
        }
        assert!(Instant::now() < deadline, "no row yet: {answer}");
        std::thread::sleep(Duration::from_millis(200));
    }
    up.terminate("all stopped");
}

#[test]
fn audit_archive_exports_and_drops_old_days() {
    use lockplane_audit_consumer::rows::{DAY_MS, Rows};
    let database = Database::create("cli_archive");
    let url = database.url();
    let now = i64::try_from(testkit::wall::unix_ms()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = lockplane_audit_consumer::connect(&url).await.unwrap();
        let mut rows = Rows::default();
        for (index, age) in [(1, 9 * DAY_MS), (2, 9 * DAY_MS), (3, 60_000)] {
            let mut event = AuditEvent {
                schema_version: 1,
                group_id: 1,
                log_index: index,
                timestamp_ms: u64::try_from(now - age).unwrap(),
                key: "old-key".into(),
                ..AuditEvent::default()
            };
            event.set_event_type(EventType::Acquired);
            rows.push(&event).unwrap();
        }
        lockplane_audit_consumer::schema::Partitions::default()
            .ensure(&pool, &rows.days())
            .await
            .unwrap();
        lockplane_audit_consumer::store::store(&pool, &rows, &[])
            .await
            .unwrap();
        pool.close().await;
    });
    let dir = TempDir::new("cli-archive");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockplane"))
        .args(["--json", "audit", "archive", "--keep", "7d", "--dir"])
        .arg(&dir.0)
        .env("LOCKPLANE_POSTGRES_URL", &url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let archived = answer["archived"].as_array().unwrap();
    assert_eq!(archived.len(), 1, "{answer}");
    assert_eq!(archived[0]["rows"], 2);
    assert!(std::path::Path::new(archived[0]["file"].as_str().unwrap()).exists());
    assert_eq!(row_counts(&url), (1, 1));
}

#[test]
fn a_leader_killed_after_commits_it_could_not_publish_loses_no_audit_row() {
    let mut broker = Broker::start();
    let cluster = PipelineCluster::start("cli_leader_kill", &broker, "kill-key");
    let (up, http_port, url) = (&cluster.up, cluster.http_port, cluster.url.clone());
    let ports = node_metrics_ports(&cluster.dir.0);
    let backlog = |port: u16| total(&scrape(port), "lockplane_audit_backlog_events");
    let group_backlog = |port: u16| {
        sample(
            &scrape(port),
            r#"lockplane_audit_backlog_events{group="1"}"#,
        )
        .unwrap_or(0.0)
    };

    // 40 cycles published; then the broker goes away, so that the next 40 commit at the
    // groups' leaders and stay in their outboxes, unpublished (the nodes' metrics show
    // the backlog). Group 1's leader is killed with SIGKILL there, before any publish;
    // the broker returns and 40 more cycles run.
    let mut seen: Vec<(String, u64, bool)> = Vec::new();
    let cycles = |from: usize, seen: &mut Vec<(String, u64, bool)>| {
        for i in from..from + 40 {
            let key = format!("job-{i}");
            if let Some((token, released)) = cycle(http_port, "kill-key", &key, i) {
                seen.push((key, token, released));
            }
        }
    };
    cycles(0, &mut seen);
    broker.stop();
    cycles(40, &mut seen);
    let leader = leader_of(&ports, 1);
    let unpublished = group_backlog(ports[&leader]);
    assert!(
        unpublished > 0.0,
        "node {leader} leads group 1 with nothing unpublished"
    );
    let pid = node_pid(up, leader);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    broker.resume();
    cycles(80, &mut seen);
    assert!(seen.len() > 100, "{} of 120 acquired", seen.len());

    until_every_hold_is_rows(&url, &seen);
    // The survivors published everything: their backlog is back to 0.
    for (id, port) in ports.iter().filter(|(id, _)| **id != leader) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while backlog(*port) > 0.0 {
            assert!(Instant::now() < deadline, "node {id} keeps a backlog");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    cluster.up.terminate("all stopped");
}

/// The process id of node `id` of `cluster up` (a child of `up`).
fn node_pid(up: &Process, id: u64) -> u32 {
    let pattern = format!("lockplane node --id {id} ");
    let found = std::process::Command::new("pgrep")
        .args(["-P", &up.child.id().to_string(), "-f", &pattern])
        .output()
        .unwrap();
    let pids: Vec<u32> = String::from_utf8_lossy(&found.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 1, "processes of node {id}: {pids:?}");
    pids[0]
}

/// Acquires and releases `key` through the gateway on `http_port` (retrying 503s with the
/// same request): the token and whether the release was answered 200.
fn cycle(http_port: u16, api_key: &str, key: &str, attempt: usize) -> Option<(u64, bool)> {
    let call = |path: &str, body: &str| -> Option<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, answer) = http(http_port, "POST", path, api_key, body);
            match status {
                200 => return serde_json::from_str(&answer).ok(),
                // Held, or (a retried release) already released.
                404 | 409 => return None,
                _ => {
                    assert!(Instant::now() < deadline, "{path}: {status} {answer}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    };
    let acquire = format!(r#"{{"owner":"w","ttl_ms":60000,"request_id":"a-{attempt}"}}"#);
    let granted = call(&format!("/v1/locks/{key}/acquire"), &acquire)?;
    let token = granted["fencing_token"].as_u64()?;
    let release = format!(r#"{{"owner":"w","fencing_token":{token}}}"#);
    let released = call(&format!("/v1/locks/{key}/release"), &release).is_some();
    Some((token, released))
}

/// Waits (90 s at most) until every hold the clients saw, `(key, token, released)`, is an
/// `ACQUIRED` row and, if released, a later `RELEASED` row; and no row is stored twice.
fn until_every_hold_is_rows(url: &str, seen: &[(String, u64, bool)]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows: Vec<(String, String, i64, i64)> = runtime.block_on(async {
            use sqlx::Connection as _;
            let Ok(mut db) = sqlx::PgConnection::connect(url).await else {
                return Vec::new();
            };
            sqlx::query_as(
                "SELECT resource_id, event_type, fencing_token, log_index FROM lock_audit
                 WHERE event_type IN ('ACQUIRED', 'RELEASED') AND resource_id LIKE 'job-%'",
            )
            .fetch_all(&mut db)
            .await
            .unwrap_or_default()
        });
        // (key, token, event type) → log index
        let at: std::collections::HashMap<(&str, i64, &str), i64> = rows
            .iter()
            .map(|(key, kind, token, index)| ((key.as_str(), *token, kind.as_str()), *index))
            .collect();
        let missing: Vec<&(String, u64, bool)> = seen
            .iter()
            .filter(|(key, token, released)| {
                let token = i64::try_from(*token).unwrap();
                let acquired = at.get(&(key.as_str(), token, "ACQUIRED"));
                let release = at.get(&(key.as_str(), token, "RELEASED"));
                match (acquired, release) {
                    (Some(a), Some(r)) => a >= r,
                    (Some(_), None) => *released,
                    (None, _) => true,
                }
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} holds without their rows: {:?}",
            missing.len(),
            seen.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (rows, distinct) = row_counts(url);
    assert_eq!(rows, distinct, "a row stored twice");
}

#[test]
fn the_broker_down_for_60_s_mid_load_loses_no_audit_row() {
    let mut broker = Broker::start();
    let cluster = PipelineCluster::start("cli_broker_down", &broker, "down-key");
    let (up, http_port, url) = (cluster.up, cluster.http_port, cluster.url.clone());
    // Cycles for 70 s; the broker is away from the 5th second to the 65th. Locks are
    // served throughout.
    let start = Instant::now();
    let mut seen: Vec<(String, u64, bool)> = Vec::new();
    let mut down_at = None;
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(70) {
        if down_at.is_none() && start.elapsed() >= Duration::from_secs(5) {
            broker.stop();
            down_at = Some(Instant::now());
        }
        if let Some(at) = down_at
            && !broker.running()
            && at.elapsed() >= Duration::from_secs(60)
        {
            broker.resume();
        }
        let key = format!("job-{i}");
        if let Some((token, released)) = cycle(http_port, "down-key", &key, i) {
            seen.push((key, token, released));
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(down_at.is_some_and(|at| at.elapsed() >= Duration::from_secs(60)));
    broker.resume();
    assert!(seen.len() > 500, "{} cycles", seen.len());
    until_every_hold_is_rows(&url, &seen);
    up.terminate("all stopped");
}

/// `cluster up` (3 nodes, 2 groups, a gateway with tenant `dev` keyed `api_key`)
/// publishing to `broker` and running an audit consumer into a database of its own.
struct PipelineCluster {
    up: Process,
    http_port: u16,
    url: String,
    _database: Database,
    dir: TempDir,
}

impl PipelineCluster {
    fn start(name: &str, broker: &Broker, api_key: &str) -> Self {
        let dir = TempDir::new(name);
        let http_port = free_ports(1)[0];
        let database = Database::create(name);
        let url = database.url();
        let up = Process::start(
            cluster_up(&dir, http_port, api_key)
                .args(["--kafka", &broker.address()])
                .env("LOCKPLANE_POSTGRES_URL", &url),
        );
        up.wait_for("gateway serving");
        Self {
            up,
            http_port,
            url,
            _database: database,
            dir,
        }
    }
}
