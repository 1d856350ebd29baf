//! Session keepalives folded per lock group. A keepalive renews its session in every group,
//! so one `KeepAlive` call (one log entry) per group per heartbeat would cost the cluster
//! `groups × sessions / interval` entries a second. Instead, keepalives for a group queue
//! while a call to that group is in flight, and the next call carries all of them as one
//! `KeepAliveMany` (one entry): no timer, no added wait when the group is idle, and under
//! load each group takes one entry per commit round whatever the number of sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use lockplane_proto::RpcError;
use lockplane_proto::lock::{self as pb};
use tokio::sync::oneshot;

use shard_map::GroupId;

use crate::caller::Caller;

/// Most sessions one call carries (the node accepts up to 10,000).
const MAX_PER_CALL: usize = 2_048;

/// A queued keepalive and where its answer goes.
type Waiting = (pb::SessionRef, oneshot::Sender<Result<u64, RpcError>>);

/// One group's queue.
#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// A task is sending this group's calls; it takes what queues until the queue is empty.
    draining: bool,
}

/// The folding queues of every group, and what they have sent.
pub struct KeepAlives {
    caller: Arc<Caller>,
    queues: Mutex<HashMap<GroupId, Queue>>,
    calls: AtomicU64,
    sessions: AtomicU64,
}

impl KeepAlives {
    /// Folding queues that send through `caller`.
    pub fn new(caller: Arc<Caller>) -> Self {
        Self {
            caller,
            queues: Mutex::default(),
            calls: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
        }
    }

    /// `KeepAliveMany` calls sent so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Session keepalives those calls carried.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }
}

impl KeepAlives {
    /// Keeps `session` alive in `group`, in the next call to that group: its TTL there.
    pub async fn keep_alive(
        self: &Arc<Self>,
        group: GroupId,
        tenant: u64,
        session: u64,
        deadline: Instant,
    ) -> Result<u64, RpcError> {
        let (tx, rx) = oneshot::channel();
        let start_draining = {
            let mut queues = self.lock_queues();
            let queue = queues.entry(group).or_default();
            queue.waiting.push((pb::SessionRef { tenant, session }, tx));
            !std::mem::replace(&mut queue.draining, true)
        };
        if start_draining {
            tokio::spawn(drain(Arc::clone(self), group, deadline));
        }
        rx.await.unwrap_or_else(|_| {
            Err(RpcError::new(pb::ErrorDetail::new(
                pb::ErrorCode::Unavailable,
                "the keepalive was dropped before it was sent",
            )))
        })
    }

    fn lock_queues(&self) -> std::sync::MutexGuard<'_, HashMap<GroupId, Queue>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Up to [`MAX_PER_CALL`] of `group`'s queued keepalives; none (and the group marked
    /// idle) when its queue is empty.
    fn next_batch(&self, group: GroupId) -> Vec<Waiting> {
        let mut queues = self.lock_queues();
        let Some(queue) = queues.get_mut(&group) else {
            return Vec::new();
        };
        if queue.waiting.is_empty() {
            queue.draining = false;
            return Vec::new();
        }
        let take = queue.waiting.len().min(MAX_PER_CALL);
        queue.waiting.drain(..take).collect()
    }
}

/// Marks a group's queue idle again, and answers what is left in it with an error, if its
/// drain ends before emptying it (the task was cancelled: the runtime is shutting down).
/// Without it a cancelled drain would leave the group marked busy and later keepalives
/// queued forever.
struct DrainGuard {
    folder: Arc<KeepAlives>,
    group: GroupId,
    finished: bool,
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut queues = self.folder.lock_queues();
        if let Some(queue) = queues.get_mut(&self.group) {
            queue.draining = false;
            queue.waiting.clear();
        }
    }
}

/// Sends `group`'s queued keepalives, a call at a time, until none are left. Each call
/// gets the budget of the keepalive that started the drain, renewed per call.
async fn drain(folder: Arc<KeepAlives>, group: GroupId, first_deadline: Instant) {
    let budget = first_deadline.saturating_duration_since(Instant::now());
    let mut guard = DrainGuard {
        folder: Arc::clone(&folder),
        group,
        finished: false,
    };
    loop {
        let batch = folder.next_batch(group);
        if batch.is_empty() {
            guard.finished = true;
            return;
        }
        let (refs, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        folder.calls.fetch_add(1, Ordering::Relaxed);
        folder
            .sessions
            .fetch_add(refs.len() as u64, Ordering::Relaxed);
        let message = pb::KeepAliveManyRequest {
            group,
            sessions: refs,
        };
        let sent = folder.caller.send(Instant::now() + budget, message).await;
        match sent {
            Ok(reply) => {
                let mut outcomes = reply.sessions.into_iter();
                for answer in answers {
                    let _ = answer.send(outcome(outcomes.next()));
                }
            }
            Err(failed) => {
                for answer in answers {
                    let _ = answer.send(Err(failed.clone()));
                }
            }
        }
    }
}

/// One session's answer in a `KeepAliveMany` reply (missing: the node answered too few).
fn outcome(kept: Option<pb::KeptAlive>) -> Result<u64, RpcError> {
    match kept.and_then(|k| k.outcome) {
        Some(pb::kept_alive::Outcome::TtlMs(ttl_ms)) => Ok(ttl_ms),
        Some(pb::kept_alive::Outcome::Error(detail)) => Err(RpcError::new(detail)),
        None => Err(RpcError::new(pb::ErrorDetail::new(
            pb::ErrorCode::Internal,
            "the node's reply has no outcome for this session",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_ttls_errors_and_gaps() {
        let ttl = pb::KeptAlive {
            outcome: Some(pb::kept_alive::Outcome::TtlMs(5_000)),
        };
        assert_eq!(outcome(Some(ttl)).unwrap(), 5_000);
        let gone = pb::KeptAlive {
            outcome: Some(pb::kept_alive::Outcome::Error(pb::ErrorDetail::new(
                pb::ErrorCode::SessionNotFound,
                "gone",
            ))),
        };
        assert_eq!(
            outcome(Some(gone)).unwrap_err().code(),
            pb::ErrorCode::SessionNotFound
        );
        assert_eq!(outcome(None).unwrap_err().code(), pb::ErrorCode::Internal);
    }

    #[test]
    fn a_batch_takes_at_most_the_cap_and_an_empty_queue_goes_idle() {
        let folder = KeepAlives::new(Arc::new(Caller::new(Arc::new(
            crate::cluster::ClusterView::new(Vec::new(), lockplane_proto::Dialer::default()),
        ))));
        {
            let mut queues = folder.lock_queues();
            let queue = queues.entry(3).or_default();
            queue.draining = true;
            for session in 0..(MAX_PER_CALL as u64 + 5) {
                let (tx, _rx) = oneshot::channel();
                queue
                    .waiting
                    .push((pb::SessionRef { tenant: 1, session }, tx));
            }
        }
        assert_eq!(folder.next_batch(3).len(), MAX_PER_CALL);
        assert_eq!(folder.next_batch(3).len(), 5);
        assert!(folder.lock_queues()[&3].draining);
        assert!(folder.next_batch(3).is_empty());
        assert!(!folder.lock_queues()[&3].draining);
    }
}
