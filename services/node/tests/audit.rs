//! The audit outbox against a real Kafka-protocol broker (tansu, from `LOCKPLANE_TEST_TANSU`;
//! each test starts its own on a free port): every applied change of every group becomes
//! one event on the topic, and (through the audit consumer, into a PostgreSQL database of
//! the test's own) one row, across a leader crash, a broker outage, snapshots that cover
//! unpublished events, and a restart of the whole cluster.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use lock_core::{Command, FencingToken, Limits, LockKey, LockMachine, Reply, TenantId};
use lockplane_audit_consumer::{ConsumerConfig, ConsumerStats};
use lockplane_node::audit::{AuditConfig, NoTenants, Origin, to_event};
use lockplane_node::host::NodeConfig;
use lockplane_node::raft::{GroupMachine, Request};
use lockplane_proto::audit::{AuditEvent, EventType};
use openraft::{EntryPayload, SnapshotPolicy};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use shard_map::ShardMap;
use testkit::broker::Broker;
use testkit::postgres::Database;
use testkit::rng::Rng;
use tokio::time::Instant;

use common::cluster::Cluster;
use common::runtime;

const GROUPS: u32 = 2;
const PARTITIONS: i32 = 3;

fn no_snapshots(config: &mut NodeConfig) {
    config.raft.snapshot_policy = SnapshotPolicy::Never;
}

fn small_snapshots(config: &mut NodeConfig) {
    config.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(30);
    config.raft.max_in_snapshot_log_to_keep = 0;
}

fn audit_config(broker: &Broker, topic: &str) -> AuditConfig {
    let mut audit = AuditConfig::new(broker.address());
    audit.topic = topic.to_string();
    audit.partitions = PARTITIONS;
    audit
}

/// An event's identity: group, log index, position in the entry.
type Identity = (u32, u64, u32);

fn identity(event: &AuditEvent) -> Identity {
    (event.group_id, event.log_index, event.position)
}

/// What the client saw commit: grants and releases by `(group, token)`, and how many
/// commands were refused.
#[derive(Default)]
struct Seen {
    granted: BTreeSet<(u32, u64)>,
    released: BTreeSet<(u32, u64)>,
    refused: usize,
}

/// `ops` random acquires, renews and releases (some with stale tokens, some of held keys)
/// over a few keys of every group, proposed at the groups' leaders.
async fn workload(cluster: &Cluster, rng: &mut Rng, ops: usize, seen: &mut Seen) {
    let mut held: BTreeMap<(u32, u64), (String, FencingToken)> = BTreeMap::new();
    for _ in 0..ops {
        let group = 1 + u32::try_from(rng.below(u64::from(GROUPS))).unwrap();
        let k = rng.below(4);
        let key = LockKey::new(TenantId(1 + k % 2), format!("key-{k}"));
        let owner = format!("owner-{}", rng.below(3));
        let command = match (held.get(&(group, k)), rng.below(4)) {
            (Some((holder, token)), 0) => Command::Renew {
                key,
                owner: holder.clone(),
                token: *token,
                ttl_ms: 60_000,
            },
            (Some((holder, token)), 1 | 2) => Command::Release {
                key,
                owner: holder.clone(),
                token: *token,
            },
            (Some((holder, token)), _) => Command::Release {
                key,
                owner: holder.clone(),
                token: FencingToken(token.0 - 1),
            },
            (None, _) => Command::Acquire(lock_core::Acquire::new(key, owner.clone(), 60_000)),
        };
        let release = matches!(command, Command::Release { .. });
        match cluster.propose(group, command).await {
            Ok(Reply::Granted(grant)) if seen.granted.insert((group, grant.token.0)) => {
                held.insert((group, k), (owner, grant.token));
            }
            Ok(Reply::Released) if release => {
                if let Some((_, token)) = held.remove(&(group, k)) {
                    seen.released.insert((group, token.0));
                }
            }
            Err(_) => seen.refused += 1,
            _ => {}
        }
    }
}

/// Waits until every group's leader has seen the broker confirm all of its outbox.
async fn until_published(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut backlog = 0;
        for group in 0..=GROUPS {
            let leader = cluster.leader(group).await;
            let node = cluster.node(leader);
            backlog += if group == 0 {
                node.meta().state_machine().outbox(|o| o.backlog())
            } else {
                node.group(group)
                    .unwrap()
                    .state_machine()
                    .outbox(|o| o.backlog())
            };
        }
        if backlog == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{backlog} audit events still unpublished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every message of `topic`, in each partition's order: read until each partition's end
/// as the broker reports it now.
fn consume(broker: &Broker, topic: &str) -> BTreeMap<i32, Vec<(String, AuditEvent)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", format!("{topic}-check"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for partition in 0..PARTITIONS {
        partitions
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap();
        ends.insert(partition, high);
    }
    consumer.assign(&partitions).unwrap();
    let mut read: BTreeMap<i32, Vec<(String, AuditEvent)>> = BTreeMap::new();
    let mut next: BTreeMap<i32, i64> = ends.keys().map(|p| (*p, 0)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while next.iter().any(|(p, at)| *at < ends[p]) {
        assert!(
            std::time::Instant::now() < deadline,
            "read {next:?} of {ends:?} in {topic}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
                let event = AuditEvent::decode(message.payload().unwrap()).unwrap();
                read.entry(message.partition())
                    .or_default()
                    .push((key, event));
                next.insert(message.partition(), message.offset() + 1);
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
    }
    read
}

/// The events of `topic` by identity, after checking that copies of one event are the same
/// event and that each key's events first appear in log order.
fn distinct_events(broker: &Broker, topic: &str) -> BTreeMap<Identity, AuditEvent> {
    let mut events: BTreeMap<Identity, AuditEvent> = BTreeMap::new();
    for (partition, read) in consume(broker, topic) {
        // By group too: the test uses one key name in both groups, where a real key
        // lives in one.
        let mut newest: BTreeMap<(u32, String), Identity> = BTreeMap::new();
        for (key, event) in read {
            let id = identity(&event);
            match events.get(&id) {
                Some(first) => {
                    let mut again = event.clone();
                    again.timestamp_ms = first.timestamp_ms;
                    assert_eq!(&again, first, "two different events as {id:?}");
                }
                None => {
                    let key = (event.group_id, key);
                    if let Some(before) = newest.get(&key) {
                        assert!(
                            *before < id,
                            "key {key:?} in partition {partition}: {id:?} first seen after {before:?}"
                        );
                    }
                    newest.insert(key, id);
                    events.insert(id, event);
                }
            }
        }
    }
    events
}

/// The events a node's own log says group `group` produced, through what its leader
/// applied: every entry applied again on a fresh machine.
async fn derived_from_log(cluster: &Cluster, group: u32) -> BTreeMap<Identity, AuditEvent> {
    let leader = cluster.node(cluster.leader(group).await);
    let applied = if group == 0 {
        leader.meta().state_machine().last_applied()
    } else {
        leader.group(group).unwrap().state_machine().last_applied()
    }
    .map_or(0, |id| id.index);
    let entries = leader.log().group(group).read(|log| {
        let first = log.first_index().unwrap();
        assert!(first <= 1, "the log is whole (no snapshots), from {first}");
        log.entries(first..=applied)
    });
    let mut lock = LockMachine::new(Limits::default());
    let mut meta = ShardMap::default();
    let origin = Origin {
        group,
        region: "local",
        now_ms: 0,
    };
    let mut derived = BTreeMap::new();
    for entry in entries {
        let EntryPayload::Normal(request) = entry.payload else {
            continue;
        };
        if matches!(request, Request::Published { .. }) {
            continue;
        }
        let (index, term) = (entry.log_id.index, entry.log_id.leader_id.term);
        let mut recorded = Vec::new();
        if group == 0 {
            GroupMachine::apply(
                &mut meta,
                index,
                term,
                request,
                &mut Vec::new(),
                &mut recorded,
            );
        } else {
            GroupMachine::apply(
                &mut lock,
                index,
                term,
                request,
                &mut Vec::new(),
                &mut recorded,
            );
        }
        for event in &recorded {
            let (_, event) = to_event(event, &origin, &NoTenants);
            derived.insert(identity(&event), event);
        }
    }
    derived
}

#[test]
fn every_applied_change_is_published_once_across_a_leader_crash() {
    let broker = Broker::start();
    runtime().block_on(async {
        let topic = "audit-once";
        let audit = audit_config(&broker, topic);
        let mut cluster =
            Cluster::start_audited("audit-once", 3, GROUPS, no_snapshots, audit).await;
        let mut rng = Rng::new(7);
        let mut seen = Seen::default();
        workload(&cluster, &mut rng, 150, &mut seen).await;
        let crashed = cluster.leader(1).await;
        cluster.crash(crashed).await;
        workload(&cluster, &mut rng, 150, &mut seen).await;
        cluster.restart(crashed).await;
        workload(&cluster, &mut rng, 50, &mut seen).await;
        until_published(&cluster).await;

        let events = distinct_events(&broker, topic);
        let mut every_derived = BTreeMap::new();
        for group in 0..=GROUPS {
            let derived = derived_from_log(&cluster, group).await;
            every_derived.extend(derived.clone());
            let published: BTreeMap<_, _> = events
                .iter()
                .filter(|(id, _)| id.0 == group)
                .map(|(id, e)| {
                    let mut e = e.clone();
                    if group == 0 {
                        e.timestamp_ms = 0;
                    }
                    (*id, e)
                })
                .collect();
            assert!(!derived.is_empty(), "group {group} applied changes");
            let missing: Vec<_> = derived
                .keys()
                .filter(|id| !published.contains_key(id))
                .collect();
            let extra: Vec<_> = published
                .keys()
                .filter(|id| !derived.contains_key(id))
                .collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "group {group}: missing {missing:?}, not applied {extra:?}"
            );
            assert_eq!(
                published, derived,
                "group {group}: events differ from the log"
            );
        }
        let rejected = events
            .values()
            .filter(|e| e.event_type() == EventType::Rejected)
            .count();
        assert!(
            rejected > 0,
            "the workload had refusals, and they are recorded"
        );
        cluster.stop().await;
        rows_are_the_log(&broker, topic, &every_derived).await;
    });
}

/// A row as read back: its identity, then the fields compared.
type StoredRow = (
    i32,
    i64,
    i32,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
);

/// A row as the test compares it: type, key, owner, token, tenant id.
type RowFields = (String, Option<String>, Option<String>, Option<i64>, i64);

fn fields_of(event: &AuditEvent) -> RowFields {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let token = i64::try_from(event.fencing_token).unwrap();
    (
        event.event_type().as_str_name().to_string(),
        text(&event.key),
        text(&event.owner),
        (token != 0).then_some(token),
        i64::try_from(event.tenant_id).unwrap(),
    )
}

/// Runs the audit consumer over `topic` into a database of its own, and checks that its
/// rows are exactly the events the nodes' logs produced: one row per identity, with the
/// same type, key, owner, token and tenant.
async fn rows_are_the_log(broker: &Broker, topic: &str, derived: &BTreeMap<Identity, AuditEvent>) {
    let database = Database::create("node_audit_rows");
    let config = ConsumerConfig::new(&broker.address(), topic, &database.url());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn(lockplane_audit_consumer::run(
        config,
        Arc::new(ConsumerStats::default()),
        async move {
            let _ = stopped.await;
        },
    ));
    let pool = sqlx::PgPool::connect(&database.url()).await.unwrap();
    let want = i64::try_from(derived.len()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM lock_audit")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        if stored >= want {
            break;
        }
        assert!(Instant::now() < deadline, "{stored} of {want} rows stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows: Vec<StoredRow> = sqlx::query_as(
        "SELECT group_id, log_index, position, event_type, resource_id, owner_id,
                    fencing_token, tenant_id FROM lock_audit",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut stored: BTreeMap<Identity, RowFields> = BTreeMap::new();
    for (group, index, position, kind, key, owner, token, tenant) in rows {
        let id = (
            u32::try_from(group).unwrap(),
            u64::try_from(index).unwrap(),
            u32::try_from(position).unwrap(),
        );
        let again = stored.insert(id, (kind, key, owner, token, tenant));
        assert!(again.is_none(), "{id:?} stored twice");
    }
    let expected: BTreeMap<Identity, RowFields> =
        derived.iter().map(|(id, e)| (*id, fields_of(e))).collect();
    let missing: Vec<_> = expected
        .keys()
        .filter(|id| !stored.contains_key(id))
        .collect();
    let extra: Vec<_> = stored
        .keys()
        .filter(|id| !expected.contains_key(id))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "rows missing {missing:?}; rows not in the log {extra:?}"
    );
    assert_eq!(stored, expected, "rows differ from the log");
    let _ = stop.send(());
    consumer.await.unwrap().unwrap();
    pool.close().await;
}

#[test]
fn unpublished_events_survive_a_broker_outage_snapshots_and_a_whole_cluster_restart() {
    let mut broker = Broker::start();
    runtime().block_on(async {
        let topic = "audit-outage";
        let audit = audit_config(&broker, topic);
        let mut cluster =
            Cluster::start_audited("audit-outage", 3, GROUPS, small_snapshots, audit).await;
        let mut rng = Rng::new(11);
        let mut seen = Seen::default();
        workload(&cluster, &mut rng, 40, &mut seen).await;
        broker.stop();
        // Many snapshots, each covering events the broker never confirmed, and a log
        // purged behind them; then every node restarts from its snapshot and log.
        workload(&cluster, &mut rng, 200, &mut seen).await;
        let leader = cluster.leader(1).await;
        cluster.crash(leader).await;
        workload(&cluster, &mut rng, 60, &mut seen).await;
        cluster.restart(leader).await;
        for id in cluster.running() {
            cluster.crash(id).await;
        }
        for id in 1..=3 {
            cluster.restart(id).await;
        }
        broker.resume();
        workload(&cluster, &mut rng, 20, &mut seen).await;
        until_published(&cluster).await;

        let events = distinct_events(&broker, topic);
        let of_type = |kind: EventType| -> BTreeSet<(u32, u64)> {
            events
                .values()
                .filter(|e| e.event_type() == kind && e.group_id > 0)
                .map(|e| (e.group_id, e.fencing_token))
                .collect()
        };
        let acquired = of_type(EventType::Acquired);
        let missing: Vec<_> = seen.granted.difference(&acquired).collect();
        assert!(
            missing.is_empty(),
            "grants without an ACQUIRED event: {missing:?}"
        );
        let released = of_type(EventType::Released);
        let missing: Vec<_> = seen.released.difference(&released).collect();
        assert!(
            missing.is_empty(),
            "releases without a RELEASED event: {missing:?}"
        );
        // Every refusal the clients saw is an event (a retried proposal may add more).
        let rejected = events
            .values()
            .filter(|e| e.event_type() == EventType::Rejected)
            .count();
        assert!(
            rejected >= seen.refused && seen.refused > 0,
            "{rejected} REJECTED events for {} refusals",
            seen.refused
        );
        assert!(
            events
                .values()
                .any(|e| e.event_type() == EventType::ClusterInitialized),
            "the meta group's changes are published too"
        );
        cluster.stop().await;
    });
}
