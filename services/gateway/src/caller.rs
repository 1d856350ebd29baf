//! Sends requests to a lock group's leader: one HTTP/2 channel per node, leader hints
//! followed, retryable failures retried with jittered backoff, nodes that failed silently
//! asked last for a while, all within the request's deadline. Where a group is comes from
//! the [`ClusterView`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lockplane_proto::RpcError;
use lockplane_proto::lock::lock_service_client::LockServiceClient;
use lockplane_proto::lock::{ErrorCode, ErrorDetail};
use shard_map::GroupId;
use tonic::transport::Channel;

use crate::cluster::ClusterView;
use crate::rpc::{LockRpc, Repeat};

/// Longest pause between retries of an unavailable group.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// How long a node that failed a call without saying why (no answer in time, a broken
/// connection, or cut off from its group) is asked last by every call, and leader hints
/// naming it are not followed, unless it answers meanwhile: a paused or cut-off leader
/// stays named as leader by its followers until they elect another, and each call that
/// went back to it would wait for the connection to be found dead again.
const SUSPECT_FOR: Duration = Duration::from_secs(5);

/// The caller of lock groups: sends, follows leaders, retries.
pub struct Caller {
    cluster: Arc<ClusterView>,
    channels: Mutex<HashMap<String, Channel>>,
    /// Nodes that failed recently (see [`SUSPECT_FOR`]), with when they stop being suspect.
    suspects: Mutex<HashMap<String, Instant>>,
}

impl Caller {
    /// A caller of the groups `cluster` knows of.
    pub fn new(cluster: Arc<ClusterView>) -> Self {
        Self {
            cluster,
            channels: Mutex::default(),
            suspects: Mutex::default(),
        }
    }

    /// The cluster this caller sends to.
    pub fn cluster(&self) -> &ClusterView {
        &self.cluster
    }

    /// Sends `message` to its group's leader (see [`Caller::call`]), giving up at
    /// `deadline`; whether a repeat after an unknown outcome is safe is the message type's
    /// [`LockRpc::REPEAT`].
    pub async fn send<R: LockRpc>(
        &self,
        deadline: Instant,
        message: R,
    ) -> Result<R::Reply, RpcError> {
        let group = message.group();
        self.call_as(group, deadline, R::REPEAT, |client, left| {
            R::call(client, with_timeout(message.clone(), left))
        })
        .await
    }

    fn channel(&self, addr: &str) -> Result<Channel, RpcError> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let made = self.cluster.dialer().channel(addr)?;
        channels.insert(addr.to_string(), made.clone());
        Ok(made)
    }

    /// Marks `addr` suspect for [`SUSPECT_FOR`].
    fn suspect(&self, addr: &str) {
        self.suspects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(addr.to_string(), Instant::now() + SUSPECT_FOR);
    }

    /// Clears `addr`'s suspicion: it answered.
    fn trust(&self, addr: &str) {
        let mut suspects = self.suspects.lock().unwrap_or_else(PoisonError::into_inner);
        if !suspects.is_empty() {
            suspects.remove(addr);
        }
    }

    /// The nodes suspect now.
    fn suspects(&self) -> Vec<String> {
        let mut suspects = self.suspects.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        suspects.retain(|_, until| *until > now);
        suspects.keys().cloned().collect()
    }

    /// Calls `call` on the leader of `group` with the time left before `deadline`, following
    /// leader hints and retrying retryable failures with jittered backoff until the
    /// deadline. The deadline is a hard bound: a node that does not answer in time (paused,
    /// cut off) is given up on, and the answer is `UNAVAILABLE` (outcome unknown). A node
    /// that failed is skipped for the rest of the call while another is left to ask.
    pub async fn call<T, F, Fut>(
        &self,
        group: GroupId,
        deadline: Instant,
        call: F,
    ) -> Result<T, RpcError>
    where
        F: FnMut(LockServiceClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_as(group, deadline, Repeat::Idempotent, call)
            .await
    }

    /// [`Caller::call`] for a request whose repeat may be refused because the first
    /// attempt took effect (see [`Repeat::Unrepeatable`]).
    async fn call_as<T, F, Fut>(
        &self,
        group: GroupId,
        deadline: Instant,
        repeat: Repeat,
        mut call: F,
    ) -> Result<T, RpcError>
    where
        F: FnMut(LockServiceClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut maybe_applied = false;
        let mut failed: Vec<String> = Vec::new();
        let mut hinted: Option<String> = None;
        let mut backoff = Duration::from_millis(10);
        let mut last: Option<RpcError> = None;
        loop {
            if Instant::now() >= deadline {
                return Err(last.unwrap_or_else(|| {
                    RpcError::new(ErrorDetail::new(
                        ErrorCode::Unavailable,
                        format!("no node of group {group} answered before the deadline"),
                    ))
                }));
            }
            let addr = match hinted.take() {
                Some(addr) => addr,
                None => match next_to_ask(
                    self.cluster.candidates(group),
                    &mut failed,
                    &self.suspects(),
                ) {
                    Some(addr) => addr,
                    None => {
                        return Err(RpcError::new(ErrorDetail::new(
                            ErrorCode::Unavailable,
                            format!("no node is known for group {group}"),
                        )));
                    }
                },
            };
            let client = LockServiceClient::new(self.channel(&addr)?);
            if self.suspects().contains(&addr) {
                let left = deadline.saturating_duration_since(Instant::now());
                if alive(client.clone(), group, left).await {
                    self.trust(&addr);
                } else {
                    self.suspect(&addr);
                    failed.push(addr);
                    let left = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(jitter(backoff).min(left)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                continue;
            }
            // Whether the node said nothing: a broken connection (not the deadline, which
            // is this gateway's own).
            let mut silent = false;
            let failure = match tokio::time::timeout(left, call(client, left)).await {
                Ok(Ok(reply)) => {
                    self.trust(&addr);
                    self.cluster.remember_leader(group, &addr);
                    return Ok(reply.into_inner());
                }
                Ok(Err(status)) => {
                    silent = status.details().is_empty();
                    if !silent {
                        self.trust(&addr);
                    }
                    RpcError::from(status)
                }
                Err(_) => RpcError::new(ErrorDetail::new(
                    ErrorCode::Unavailable,
                    format!(
                        "node {addr} did not answer before the request's deadline; the \
                         outcome is not known"
                    ),
                )),
            };
            let RpcError::Retryable(detail) = &failure else {
                if maybe_applied && repeat == Repeat::Unrepeatable {
                    return Err(RpcError::new(ErrorDetail::new(
                        ErrorCode::Unavailable,
                        format!(
                            "an earlier attempt's outcome is not known, and the repeat was \
                             refused ({}): the earlier attempt may be what took effect",
                            failure.detail().message
                        ),
                    )));
                }
                return Err(failure);
            };
            // Only a node that is not the leader is sure to have done nothing.
            maybe_applied |= detail.code != ErrorCode::NotLeader as i32;
            if silent {
                self.suspect(&addr);
            }
            self.cluster.forget_leader(group);
            let hint = detail.leader_addr.clone();
            let left = deadline.saturating_duration_since(Instant::now());
            failed.push(addr.clone());
            last = Some(failure);
            match hint {
                // Followed at once, but only once per node: a hint back to a node already
                // asked waits for the backoff like any other retry.
                Some(leader)
                    if leader != addr
                        && !failed.contains(&leader)
                        && !self.suspects().contains(&leader) =>
                {
                    hinted = Some(leader);
                }
                _ => {
                    tokio::time::sleep(jitter(backoff).min(left)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Whom to ask next: the first of `candidates` that is neither in `failed` nor suspect;
/// then the suspects not in `failed` (a suspect may lead the group again, or still);
/// once every one has failed, the list starts over, from a trusted node if there is one.
fn next_to_ask(
    candidates: Vec<String>,
    failed: &mut Vec<String>,
    suspects: &[String],
) -> Option<String> {
    let untried = |c: &&String| !failed.contains(c);
    let trusted = |c: &&String| !suspects.contains(c);
    if let Some(next) = candidates.iter().filter(untried).find(trusted) {
        return Some(next.clone());
    }
    if let Some(next) = candidates.iter().find(untried) {
        return Some(next.clone());
    }
    failed.clear();
    candidates
        .iter()
        .find(trusted)
        .or_else(|| candidates.first())
        .cloned()
}

/// A gRPC request that gives up after `left`.
pub(crate) fn with_timeout<T>(message: T, left: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(left);
    request
}

/// How long a suspect node may take to answer a probe before it is passed over again.
const PROBE_PATIENCE: Duration = Duration::from_millis(300);

/// Whether the node behind `client` answers at all (a leader-local read of `group`, which
/// any live node answers at once, with the status or a refusal) within [`PROBE_PATIENCE`]:
/// asked before a suspect is given a real call, which may wait (a blocking acquire) and
/// so cannot be given a short budget itself.
async fn alive(mut client: LockServiceClient<Channel>, group: GroupId, left: Duration) -> bool {
    let patience = PROBE_PATIENCE.min(left);
    let probe = lockplane_proto::lock::GetRequest {
        group,
        key: Some(lockplane_proto::lock::Key {
            tenant: 0,
            name: "probe".to_string(),
        }),
        consistency: lockplane_proto::lock::Consistency::LeaderLocal as i32,
    };
    match tokio::time::timeout(patience, client.get(with_timeout(probe, patience))).await {
        Ok(Ok(_)) => true,
        Ok(Err(status)) => !status.details().is_empty(),
        Err(_) => false,
    }
}

/// A pause between `d / 2` and `d`, so retrying gateways do not move in step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let half = d / 2;
    half + Duration::from_nanos(u64::from(nanos) % (half.as_nanos() as u64).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_failed_node_is_skipped_until_every_node_failed() {
        let mut failed = Vec::new();
        let all = names(&["a", "b", "c"]);
        assert_eq!(
            next_to_ask(all.clone(), &mut failed, &[]).as_deref(),
            Some("a")
        );
        failed.push("a".to_string());
        assert_eq!(
            next_to_ask(all.clone(), &mut failed, &[]).as_deref(),
            Some("b")
        );
        failed.push("b".to_string());
        assert_eq!(
            next_to_ask(all.clone(), &mut failed, &[]).as_deref(),
            Some("c")
        );
        failed.push("c".to_string());
        assert_eq!(
            next_to_ask(all.clone(), &mut failed, &[]).as_deref(),
            Some("a")
        );
        assert!(failed.is_empty());
        assert_eq!(next_to_ask(Vec::new(), &mut failed, &[]), None);
    }

    #[test]
    fn a_suspect_node_is_asked_after_every_trusted_one() {
        let mut failed = Vec::new();
        let all = names(&["a", "b", "c"]);
        let suspects = names(&["a"]);
        assert_eq!(
            next_to_ask(all.clone(), &mut failed, &suspects).as_deref(),
            Some("b")
        );
        failed.push("b".to_string());
        assert_eq!(
            next_to_ask(all.clone(), &mut failed, &suspects).as_deref(),
            Some("c")
        );
        failed.push("c".to_string());
        assert_eq!(
            next_to_ask(all.clone(), &mut failed, &suspects).as_deref(),
            Some("a")
        );
        failed.push("a".to_string());
        // Every node failed: start over from a trusted one.
        assert_eq!(
            next_to_ask(all.clone(), &mut failed, &suspects).as_deref(),
            Some("b")
        );
        assert!(failed.is_empty());
        let everyone = names(&["a", "b", "c"]);
        assert_eq!(
            next_to_ask(all, &mut Vec::new(), &everyone).as_deref(),
            Some("a")
        );
    }
}
