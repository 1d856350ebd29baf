//! One group's publisher: while this replica leads the group, sends the outbox's events to
//! the broker in order, and once they are confirmed proposes a `Published` entry so that
//! every replica drops them and a later leader resumes after them.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::{Raft, ServerState};
use prost::Message;
use rdkafka::error::KafkaError;
use shard_map::ShardMap;

use super::AuditStats;
use super::event::{Origin, Tenants, to_event};
use super::producer::Producer;
use crate::quorum::QuorumWatch;
use crate::raft::{EventPosition, GroupMachine, Recorded, Request, StateMachine, TypeConfig};

/// Most events sent before waiting for the broker's confirmations. With the producer's
/// 200 ms linger, one group publishes up to about 25,000 events a second.
const BATCH: usize = 5_000;

/// How often, at most, a leader proposes how far the broker confirmed (a new leader
/// publishes again at most this much).
const CONFIRM_EVERY: Duration = Duration::from_millis(200);

/// How long a `Published` entry may take to commit.
const CONFIRM_DEADLINE: Duration = Duration::from_secs(1);

/// First and longest pause after the broker failed a batch.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What every group's publisher on a node shares.
pub struct Publishing {
    /// The producer.
    pub producer: Producer,
    /// This node's region, stamped on every event.
    pub region: String,
    /// The meta group's state, for tenant names.
    pub shard_map: StateMachine<ShardMap>,
    /// Counters for metrics and tests.
    pub stats: Arc<AuditStats>,
    /// Seconds from sending a batch to the broker's last confirmation of it.
    pub batch_seconds: prometheus::Histogram,
}

/// One group's publisher, for as long as the group runs.
pub struct Publisher<M: GroupMachine> {
    /// The group.
    pub group: u32,
    /// Its Raft (leadership, `Published` proposals).
    pub raft: Raft<TypeConfig>,
    /// Its state machine (the outbox).
    pub state: StateMachine<M>,
    /// Whether this replica, while it leads, still hears from a quorum.
    pub quorum: Arc<QuorumWatch>,
    /// What the node's publishers share.
    pub shared: Arc<Publishing>,
}

impl<M: GroupMachine> Publisher<M> {
    /// Publishes while this replica leads; waits otherwise.
    pub async fn run(self) {
        let mut metrics = self.raft.server_metrics();
        let mut cut_off = self.quorum.subscribe();
        loop {
            if metrics.has_changed().is_err() {
                return; // the group's Raft stopped
            }
            let leading =
                metrics.borrow().state == ServerState::Leader && cut_off.borrow().is_none();
            if leading {
                self.lead().await;
                continue;
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                _ = cut_off.changed() => {}
            }
        }
    }

    /// Whether this replica still leads without being cut off.
    fn leading(&self) -> bool {
        self.raft.server_metrics().borrow().state == ServerState::Leader
            && self.quorum.subscribe().borrow().is_none()
    }

    /// Publishes from the replicated cursor until this replica stops leading.
    async fn lead(&self) {
        let mut recorded = self.state.watch_recorded();
        let mut sent = self.state.outbox(|o| o.published());
        let mut proposed = sent;
        let mut proposed_at: Option<Instant> = None;
        let mut retry = RETRY_FIRST;
        while self.leading() {
            let batch = self.state.outbox(|o| o.after(sent, BATCH));
            if let Some(last) = batch.last() {
                let started = Instant::now();
                match self.until_not_leading(self.send(&batch)).await {
                    None => return,
                    Some(Ok(())) => {
                        self.shared
                            .batch_seconds
                            .observe(started.elapsed().as_secs_f64());
                        sent = Some(last.position());
                        retry = RETRY_FIRST;
                    }
                    Some(Err(error)) => {
                        self.shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(group = self.group, %error, retry_in = ?retry,
                            "the broker did not take audit events; sending them again");
                        if self
                            .until_not_leading(tokio::time::sleep(retry))
                            .await
                            .is_none()
                        {
                            return;
                        }
                        retry = (retry * 2).min(RETRY_MAX);
                        continue;
                    }
                }
            }
            if sent > proposed && proposed_at.is_none_or(|at| at.elapsed() >= CONFIRM_EVERY) {
                // A cursor that did not commit is proposed again once the pause is over.
                if let Some(through) = sent
                    && self.propose(through).await
                {
                    proposed = sent;
                }
                proposed_at = Some(Instant::now());
            }
            if !batch.is_empty() {
                continue;
            }
            // Caught up: wait for new events, or for the next confirmation to be due.
            let confirm_due = (sent > proposed).then(|| {
                CONFIRM_EVERY.saturating_sub(proposed_at.map_or(Duration::ZERO, |at| at.elapsed()))
            });
            let waited = self
                .until_not_leading(async {
                    match confirm_due {
                        Some(pause) => {
                            let _ = tokio::time::timeout(pause, recorded.changed()).await;
                        }
                        None => {
                            let _ = recorded.changed().await;
                        }
                    }
                })
                .await;
            if waited.is_none() {
                return;
            }
        }
    }

    /// Runs `work` unless this replica stops leading first (`None`). Wakes only when the
    /// replica's role or leader changes, not on every entry.
    async fn until_not_leading<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let mut metrics = self.raft.server_metrics();
        let mut cut_off = self.quorum.subscribe();
        let mut work = pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Some(done),
                changed = metrics.changed() => if changed.is_err() { return None },
                _ = cut_off.changed() => {}
            }
            if !self.leading() {
                return None;
            }
        }
    }

    /// Sends `batch` and waits until the broker confirmed every event of it.
    async fn send(&self, batch: &[Arc<Recorded>]) -> Result<(), KafkaError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let origin = Origin {
            group: self.group,
            region: &self.shared.region,
            now_ms,
        };
        let tenants = MapTenants(&self.shared.shard_map);
        let mut deliveries = Vec::with_capacity(batch.len());
        for recorded in batch {
            let (key, event) = to_event(recorded, &origin, &tenants);
            deliveries.push(self.shared.producer.send(&key, &event.encode_to_vec())?);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(error),
                Err(_) => return Err(KafkaError::Canceled),
            }
        }
        self.shared
            .stats
            .published
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Proposes that the broker confirmed every event through `through`; whether it
    /// committed.
    async fn propose(&self, through: EventPosition) -> bool {
        let request = Request::Published { through };
        let written = tokio::time::timeout(CONFIRM_DEADLINE, self.raft.client_write(request)).await;
        let committed = matches!(written, Ok(Ok(_)));
        if !committed {
            tracing::debug!(
                group = self.group,
                ?through,
                "audit cursor not recorded; again later"
            );
        }
        committed
    }
}

/// Tenant names and ids from the node's replica of the shard map.
struct MapTenants<'a>(&'a StateMachine<ShardMap>);

impl Tenants for MapTenants<'_> {
    fn name(&self, id: u64) -> Option<String> {
        self.0
            .read(|map| map.tenants.get(&id).map(|t| t.name.clone()))
    }

    fn id(&self, name: &str) -> Option<u64> {
        self.0.read(|map| map.tenant_named(name))
    }
}
