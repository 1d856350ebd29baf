//! The consumer loop: a batch of messages from the consumer group's partitions, its rows
//! into PostgreSQL (retried until stored), then its offsets, and never the other way
//! round. A crash between the two repeats the batch, whose rows are already there.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use sqlx::migrate::MigrateError;
use sqlx::postgres::PgPoolOptions;

use crate::rows::{Rows, Unreadable, decode};
use crate::schema::{MIGRATOR, Partitions};
use crate::stats::ConsumerStats;
use crate::store::{Stored, UnreadableMessage, store};

/// Where the consumer reads and writes.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The audit topic.
    pub topic: String,
    /// The consumer group: consumers of one group share the partitions.
    pub group: String,
    /// The PostgreSQL URL.
    pub postgres: String,
    /// Most messages stored in one transaction.
    pub batch_max: usize,
    /// Longest a batch waits to fill after its first message.
    pub batch_wait: Duration,
    /// Where hourly retention puts the partitions older than `keep`; `None`: no
    /// retention in this consumer.
    pub archive_dir: Option<std::path::PathBuf>,
    /// How long rows stay in PostgreSQL.
    pub keep: Duration,
}

impl ConsumerConfig {
    /// Reading `topic` from `brokers` into `postgres`, in group `lockplane-audit`, batches of
    /// up to 1,000 messages or 100 ms.
    pub fn new(brokers: &str, topic: &str, postgres: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            group: "lockplane-audit".to_string(),
            postgres: postgres.to_string(),
            batch_max: 1_000,
            batch_wait: Duration::from_millis(100),
            archive_dir: None,
            keep: crate::retention::DEFAULT_KEEP,
        }
    }
}

/// Why the consumer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The Kafka client could not be made (a bad setting).
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// PostgreSQL refused: a URL that is not one, bad credentials, no such database.
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    /// The database's schema does not match this consumer's migrations.
    #[error("the audit database's schema does not match this consumer: {0}")]
    Schema(String),
}

/// First and longest pause between attempts to reach PostgreSQL.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How often the lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Checks that `url` is a PostgreSQL URL, without connecting (nor repeating it: it may
/// hold a password).
pub fn check_postgres_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(
            "not a PostgreSQL URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)".to_string(),
        );
    }
    url.parse::<sqlx::postgres::PgConnectOptions>()
        .map(|_| ())
        .map_err(|e| {
            format!("not a PostgreSQL URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE): {e}")
        })
}

/// The database pool, with the schema migrated; waits for PostgreSQL to answer, and fails
/// at once when it answers no (a wrong password or database, a migration that does not
/// match the one applied).
pub async fn connect(url: &str) -> Result<PgPool, ConsumerError> {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(url)?;
    let mut pause = RETRY_FIRST;
    loop {
        match MIGRATOR.run(&pool).await {
            Ok(()) => return Ok(pool),
            Err(MigrateError::Execute(e)) if permanent_connect_error(&e) => {
                return Err(ConsumerError::Postgres(e));
            }
            Err(e @ (MigrateError::VersionMismatch(_) | MigrateError::VersionMissing(_))) => {
                return Err(ConsumerError::Schema(e.to_string()));
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?pause, "cannot migrate the audit database");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

/// PostgreSQL said no for good: bad credentials or no such database.
fn permanent_connect_error(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e)
        if matches!(e.code().as_deref(), Some("28000" | "28P01" | "3D000")))
}

/// PostgreSQL refused the data itself (class 22, data exception; class 23, integrity),
/// not the connection: storing the same rows again would fail again.
fn refused_data(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e)
        if e.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Consumes until `stop` completes (the batch in hand is finished first).
pub async fn run(
    config: ConsumerConfig,
    stats: Arc<ConsumerStats>,
    stop: impl Future<Output = ()>,
) -> Result<(), ConsumerError> {
    let mut stop = pin!(stop);
    let pool = tokio::select! {
        pool = connect(&config.postgres) => pool?,
        () = &mut stop => return Ok(()),
    };
    let mut partitions = Partitions::default();
    let consumer: Arc<StreamConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group)
            .set("client.id", "lockplane-audit-consumer")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // A consumer that dies (kill -9) gives its partitions up within 10 s.
            .set("session.timeout.ms", "10000")
            .create()?,
    );
    consumer.subscribe(&[config.topic.as_str()])?;
    let _retention = config
        .archive_dir
        .clone()
        .map(|dir| AbortOnDrop(tokio::spawn(keep_archiving(pool.clone(), dir, config.keep))));
    // Ends with this function, however it ends (a caller may drop it mid-batch).
    let _lag = AbortOnDrop(tokio::spawn(measure_lag(
        Arc::clone(&consumer),
        config.topic.clone(),
        Arc::clone(&stats),
    )));
    let mut ahead_made_at: Option<i64> = None;
    loop {
        let first = tokio::select! {
            message = consumer.recv() => message.map(|m| m.detach()),
            () = &mut stop => break,
        };
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + config.batch_wait;
        while batch.len() < config.batch_max {
            match tokio::time::timeout_at(until, consumer.recv()).await {
                Ok(message) => batch.push(message.map(|m| m.detach())),
                Err(_) => break,
            }
        }
        let messages: Vec<OwnedMessage> = batch
            .into_iter()
            .filter_map(|m| {
                m.inspect_err(|e| tracing::warn!(error = %e, "kafka consumer error"))
                    .ok()
            })
            .collect();
        if messages.is_empty() {
            // Only errors (the broker away): pause rather than spin.
            tokio::time::sleep(RETRY_FIRST).await;
            continue;
        }
        // Tomorrow's partitions exist before tomorrow (checked hourly).
        if ahead_made_at.is_none_or(|at| now_ms() - at > 3_600_000)
            && partitions.ensure_ahead(&pool, now_ms()).await.is_ok()
        {
            ahead_made_at = Some(now_ms());
        }
        // Stopping while PostgreSQL is away leaves the offsets uncommitted: the batch is
        // read again by the next consumer, and rows already stored are skipped.
        tokio::select! {
            () = store_batch(&pool, &mut partitions, &messages, &stats) => {}
            () = &mut stop => break,
        }
        commit(&consumer, &messages, &stats);
    }
    Ok(())
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A message that is not a row, as stored.
fn unreadable_message(message: &OwnedMessage, error: &Unreadable) -> UnreadableMessage {
    UnreadableMessage {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        error: error.to_string(),
        payload: message.payload().map(<[u8]>::to_vec),
    }
}

/// Stores the rows and unreadable messages of `messages`, retrying until PostgreSQL takes
/// them. When PostgreSQL refuses the data itself, the batch is stored message by message,
/// and a message it still refuses is kept as unreadable: one bad event never stops the
/// trail.
async fn store_batch(
    pool: &PgPool,
    partitions: &mut Partitions,
    messages: &[OwnedMessage],
    stats: &ConsumerStats,
) {
    let mut rows = Rows::default();
    let mut unreadable = Vec::new();
    for message in messages {
        let read =
            decode(message.payload().unwrap_or_default()).and_then(|event| rows.push(&event));
        if let Err(error) = read {
            unreadable.push(unreadable_message(message, &error));
        }
    }
    let copies = (messages.len() - rows.len() - unreadable.len()) as u64;
    match store_retrying(pool, partitions, &rows, &unreadable, stats).await {
        Ok(stored) => {
            stats.rows.fetch_add(stored.rows, Ordering::Relaxed);
            stats
                .duplicates
                .fetch_add(stored.duplicates + copies, Ordering::Relaxed);
            stats
                .unreadable
                .fetch_add(unreadable.len() as u64, Ordering::Relaxed);
        }
        Err(error) => {
            tracing::warn!(%error, "PostgreSQL refused a batch's data; storing it one by one");
            stats.duplicates.fetch_add(copies, Ordering::Relaxed);
            let mut seen = std::collections::HashSet::new();
            for message in messages {
                let Ok(event) = decode(message.payload().unwrap_or_default()) else {
                    continue;
                };
                if !seen.insert((event.group_id, event.log_index, event.position)) {
                    continue;
                }
                let mut one = Rows::default();
                if one.push(&event).is_err() {
                    continue;
                }
                match store_retrying(pool, partitions, &one, &[], stats).await {
                    Ok(stored) => {
                        stats.rows.fetch_add(stored.rows, Ordering::Relaxed);
                        stats
                            .duplicates
                            .fetch_add(stored.duplicates, Ordering::Relaxed);
                    }
                    Err(refused) => unreadable.push(unreadable_message(
                        message,
                        &Unreadable::Refused(refused.to_string()),
                    )),
                }
            }
            let stored =
                store_retrying(pool, partitions, &Rows::default(), &unreadable, stats).await;
            if let Err(error) = stored {
                tracing::error!(%error, "PostgreSQL refused the unreadable messages too");
            }
            stats
                .unreadable
                .fetch_add(unreadable.len() as u64, Ordering::Relaxed);
        }
    }
}

/// Stores `rows` and `unreadable`, retrying while PostgreSQL is away; `Err` only when it
/// refuses the data itself.
async fn store_retrying(
    pool: &PgPool,
    partitions: &mut Partitions,
    rows: &Rows,
    unreadable: &[UnreadableMessage],
    stats: &ConsumerStats,
) -> Result<Stored, sqlx::Error> {
    let mut pause = RETRY_FIRST;
    loop {
        let stored = match partitions.ensure(pool, &rows.days()).await {
            Ok(()) => store(pool, rows, unreadable).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(stored) => return Ok(stored),
            Err(error) if refused_data(&error) => return Err(error),
            Err(error) => {
                stats.store_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, retry_in = ?pause, rows = rows.len(),
                    "PostgreSQL did not store a batch of audit rows; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Commits the offsets after `messages`. A refused commit is only counted: the next
/// batch's commit covers it, and a redelivered batch finds its rows stored.
fn commit(consumer: &StreamConsumer, messages: &[OwnedMessage], stats: &ConsumerStats) {
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for message in messages {
        let entry = next
            .entry((message.topic().to_string(), message.partition()))
            .or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        if offsets
            .add_partition_offset(&topic, partition, Offset::Offset(offset))
            .is_err()
        {
            continue;
        }
    }
    // Asynchronous: the offsets go with the next request, no thread waits. One lost in a
    // crash only means the batch is read again, and its rows are skipped.
    if let Err(error) = consumer.commit(&offsets, CommitMode::Async) {
        stats.commit_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, "the broker did not take the audit consumer's offsets");
    }
}

/// How often a consumer looks for partitions to archive.
const ARCHIVE_EVERY: Duration = Duration::from_secs(3_600);

/// Archives old partitions now and then hourly (one consumer of a group at a time).
async fn keep_archiving(pool: PgPool, dir: std::path::PathBuf, keep: Duration) {
    loop {
        if let Err(error) = crate::retention::archive(&pool, &dir, keep, now_ms()).await {
            tracing::warn!(%error, "audit retention failed; trying again in an hour");
        }
        tokio::time::sleep(ARCHIVE_EVERY).await;
    }
}

/// Every few seconds, how far each assigned partition's end is ahead of this consumer.
async fn measure_lag(consumer: Arc<StreamConsumer>, topic: String, stats: Arc<ConsumerStats>) {
    loop {
        tokio::time::sleep(LAG_EVERY).await;
        let consumer = Arc::clone(&consumer);
        let topic = topic.clone();
        let before = stats.lag();
        let measured = tokio::task::spawn_blocking(move || {
            let assigned = consumer.assignment().ok()?;
            let assigned = assigned.elements_for_topic(&topic);
            // What is stored is what was committed (after the rows); a partition with
            // nothing committed yet counts from its first message.
            let committed = consumer.committed(Duration::from_secs(2)).ok();
            let mut lag = BTreeMap::new();
            for element in &assigned {
                let partition = element.partition();
                let Ok((low, high)) =
                    consumer.fetch_watermarks(&topic, partition, Duration::from_secs(2))
                else {
                    // Not answered in time: the last figure stands.
                    if let Some(behind) = before.get(&partition) {
                        lag.insert(partition, *behind);
                    }
                    continue;
                };
                let stored_to = committed
                    .as_ref()
                    .and_then(|c| c.find_partition(&topic, partition))
                    .and_then(|p| p.offset().to_raw())
                    .filter(|o| *o >= 0)
                    .unwrap_or(low);
                lag.insert(partition, (high - stored_to).max(0));
            }
            Some((assigned.len(), lag))
        })
        .await;
        if let Ok(Some((assigned, lag))) = measured {
            stats.set_lag(assigned, lag);
        }
    }
}
