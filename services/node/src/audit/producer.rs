//! The node's Kafka producer for the audit topic: idempotent, `acks=all`, retrying for as
//! long as the broker is away (the outbox holds the events meanwhile).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::AuditConfig;

/// Sends audit events to the configured topic.
pub struct Producer {
    inner: FutureProducer,
    topic: String,
}

/// How long the topic check at start-up may take before the node goes on without it (the
/// publishers retry until the topic exists).
const TOPIC_CHECK: Duration = Duration::from_secs(10);

impl Producer {
    /// A producer for `config`'s brokers. Fails only on a bad setting (librdkafka connects
    /// lazily).
    pub fn new(config: &AuditConfig) -> Result<Self, KafkaError> {
        let inner = client_config(&config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Never give up on a message: while the broker is away the outbox keeps the
            // events, and delivery resumes when it returns.
            .set("message.timeout.ms", "0")
            // Fewer, larger produce requests: at W1's rate a 5 ms linger cost the broker
            // (on the same two cores) a third of the throughput, 200 ms a tenth
            // (docs/benchmarks.md).
            .set("linger.ms", "200")
            // Room for every group's batch at once (BATCH events each).
            .set("queue.buffering.max.messages", "500000")
            .create()?;
        Ok(Self {
            inner,
            topic: config.topic.clone(),
        })
    }

    /// Queues one message; its future resolves when the broker confirmed it (or failed).
    /// `Err` when librdkafka's queue is full: wait and send again.
    pub fn send(&self, key: &str, payload: &[u8]) -> Result<DeliveryFuture, KafkaError> {
        let record = FutureRecord::to(&self.topic).key(key).payload(payload);
        self.inner.send_result(record).map_err(|(error, _)| error)
    }
}

/// Creates `config.topic` with `config.partitions` partitions unless it exists (brokers
/// such as tansu do not create topics on first use).
pub async fn ensure_topic(config: &AuditConfig) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = client_config(&config.brokers).create()?;
    let topic = NewTopic::new(
        &config.topic,
        config.partitions,
        TopicReplication::Fixed(config.replication),
    );
    let options = AdminOptions::new().operation_timeout(Some(TOPIC_CHECK));
    let results = admin.create_topics([&topic], &options).await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::warn!(%topic, ?code, "cannot create the audit topic");
                });
            }
        }
    }
    Ok(())
}

fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "lockplane-node");
    config
}
