//! The gateway's view of the cluster: the shard map (from the meta group), the ring that
//! maps a key to its lock group, the tenants' API-key hashes, one HTTP/2 channel per node,
//! and the last known leader of each group. [`Backend::call`] sends a request to a group's leader, follows `NOT_LEADER`
//! hints and retries `UNAVAILABLE` with jittered backoff, all within the request's deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use lockplane_proto::Dialer;
use lockplane_proto::RpcError;
use lockplane_proto::admin::admin_service_client::AdminServiceClient;
use lockplane_proto::admin::{GetShardMapRequest, ShardMap};
use lockplane_proto::follow::at_leader;
use lockplane_proto::lock::lock_service_client::LockServiceClient;
use lockplane_proto::lock::{ErrorCode, ErrorDetail};
use shard_map::{GroupId, KeyHash, ShardRing, TenantId};
use tonic::transport::Channel;

use crate::keepalives::KeepAlives;

/// How long one node may keep a shard-map read retrying before the next node is asked, so
/// that a seed that is down does not hold the gateway for the whole patience.
const PER_NODE_PATIENCE: Duration = Duration::from_secs(1);

/// Longest pause between retries of an unavailable group.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// How long a node that failed a call without saying why (no answer in time, a broken
/// connection, or cut off from its group) is asked last by every call, and leader hints
/// naming it are not followed, unless it answers meanwhile: a paused or cut-off leader
/// stays named as leader by its followers until they elect another, and each call that
/// went back to it would wait for the connection to be found dead again.
const SUSPECT_FOR: Duration = Duration::from_secs(5);

/// What the gateway derives from one shard map.
struct Known {
    map: ShardMap,
    ring: Arc<ShardRing>,
    tenants: HashMap<KeyHash, TenantId>,
    /// Each group's share of the tenants that have a quota of held locks.
    quota_shares: HashMap<TenantId, u64>,
    /// When the read that returned this map started.
    asked_at: Instant,
}

/// The cluster as this gateway knows it.
pub struct Backend {
    seeds: Vec<String>,
    dialer: Dialer,
    known: RwLock<Option<Known>>,
    channels: Mutex<HashMap<String, Channel>>,
    leaders: Mutex<HashMap<GroupId, String>>,
    /// Nodes that failed recently (see [`SUSPECT_FOR`]), with when they stop being suspect.
    suspects: Mutex<HashMap<String, Instant>>,
    /// One re-read of the shard map at a time for unknown keys; callers that waited use
    /// the result of the read that ran meanwhile.
    miss_refresh: tokio::sync::Mutex<()>,
    /// Session keepalives waiting to be folded into one call per group.
    keepalives: KeepAlives,
}

impl Backend {
    /// A backend that first asks `seeds` (node addresses) for the shard map and reaches
    /// nodes through `dialer` (plain, or mutual TLS with the gateway's cluster
    /// certificate).
    pub fn new(seeds: Vec<String>, dialer: Dialer) -> Self {
        Self {
            seeds,
            dialer,
            known: RwLock::new(None),
            channels: Mutex::default(),
            leaders: Mutex::default(),
            suspects: Mutex::default(),
            miss_refresh: tokio::sync::Mutex::new(()),
            keepalives: KeepAlives::default(),
        }
    }

    /// The keepalive folding queues (and their counters, for `/metrics`).
    pub fn keepalives(&self) -> &KeepAlives {
        &self.keepalives
    }

    /// Reads the shard map from the meta group's leader, asking the seeds and known nodes in
    /// turn (each for at most [`PER_NODE_PATIENCE`]) until `patience` runs out.
    pub async fn refresh(&self, patience: Duration) -> Result<(), RpcError> {
        let asked_at = Instant::now();
        let mut candidates = self.seeds.clone();
        if let Some(known) = self
            .known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            candidates.extend(known.map.nodes.iter().map(|n| n.addr.clone()));
        }
        let give_up = Instant::now() + patience;
        let mut last = None;
        loop {
            for addr in &candidates {
                let left = give_up.saturating_duration_since(Instant::now());
                let patience = left.min(PER_NODE_PATIENCE);
                let got = at_leader(&self.dialer, addr, patience, |channel| async move {
                    AdminServiceClient::new(channel)
                        .get_shard_map(GetShardMapRequest {})
                        .await
                })
                .await;
                match got {
                    Ok(map) if map.shards > 0 => {
                        self.learn(map, asked_at);
                        return Ok(());
                    }
                    Ok(_) => {
                        last = Some(RpcError::new(ErrorDetail::new(
                            ErrorCode::NotInitialized,
                            "the cluster has no shard map yet",
                        )));
                    }
                    Err(e) => last = Some(e),
                }
            }
            if Instant::now() >= give_up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last.unwrap_or_else(|| {
            RpcError::new(ErrorDetail::new(ErrorCode::Unavailable, "no node to ask"))
        }))
    }

    /// Takes in a newer shard map (an older one, by version, is ignored).
    fn learn(&self, map: ShardMap, asked_at: Instant) {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        if known.as_ref().is_some_and(|k| k.map.version > map.version) {
            return;
        }
        let ring = match known.as_ref() {
            Some(k) if k.ring.shards() == map.shards => Arc::clone(&k.ring),
            _ => Arc::new(ShardRing::new(map.shards)),
        };
        let tenants = map
            .tenants
            .iter()
            .flat_map(|t| {
                t.key_hashes
                    .iter()
                    .filter_map(|h| KeyHash::try_from(h.as_slice()).ok())
                    .map(move |h| (h, t.id))
            })
            .collect();
        let quota_shares = map
            .tenants
            .iter()
            .filter_map(|t| Some((t.id, shard_map::quota_share(t.max_locks?, map.shards))))
            .collect();
        *known = Some(Known {
            map,
            ring,
            tenants,
            quota_shares,
            asked_at,
        });
    }

    /// Re-reads the shard map every `every`, so new tenants, keys and nodes are seen.
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let backend = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let _ = backend.refresh(every).await;
            }
        })
    }

    /// The tenant the API key acts as. An unknown key makes the gateway re-read the shard
    /// map unless a read that started after this call already has, so a key created before
    /// the request always works; concurrent misses share one read at a time.
    pub async fn tenant_of(&self, api_key: &str) -> Option<TenantId> {
        let shown_at = Instant::now();
        let hash = shard_map::key_hash(api_key);
        if let Some(tenant) = self.cached_tenant(&hash) {
            return Some(tenant);
        }
        let _one_at_a_time = self.miss_refresh.lock().await;
        let fresh = self
            .known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|k| k.asked_at >= shown_at);
        if !fresh {
            let _ = self.refresh(Duration::from_secs(2)).await;
        }
        self.cached_tenant(&hash)
    }

    /// The tenant the API key hashed `hash` acts as in the shard map this gateway has now
    /// (no re-read: a revoked key is gone after the next periodic one).
    pub fn cached_tenant(&self, hash: &KeyHash) -> Option<TenantId> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.as_ref()?.tenants.get(hash).copied()
    }

    /// The most locks `tenant` may hold in each lock group (its share of its quota), or
    /// `None` when it has no quota.
    pub fn quota_share(&self, tenant: TenantId) -> Option<u64> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.as_ref()?.quota_shares.get(&tenant).copied()
    }

    /// The version (meta log index) of the shard map in use; 0 before the first.
    pub fn shard_map_version(&self) -> u64 {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known.as_ref().map_or(0, |k| k.map.version)
    }

    /// True once a shard map is known.
    pub fn is_ready(&self) -> bool {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The lock groups, `1..=shards` (empty before the first shard map).
    pub fn groups(&self) -> Vec<GroupId> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        known
            .as_ref()
            .map_or_else(Vec::new, |k| (1..=k.map.shards).collect())
    }

    /// The lock group holding `name` of `tenant`.
    pub fn group_of(&self, tenant: u64, name: &str) -> Result<GroupId, RpcError> {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        match known.as_ref() {
            Some(k) => Ok(k.ring.group_of(tenant, name)),
            None => Err(RpcError::new(ErrorDetail::new(
                ErrorCode::NotInitialized,
                "the gateway has no shard map yet",
            ))),
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, RpcError> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let made = self.dialer.channel(addr)?;
        channels.insert(addr.to_string(), made.clone());
        Ok(made)
    }

    /// Where a request for `group` may go, best first: its last known leader, then its
    /// voters (every node when the map places it nowhere).
    fn candidates(&self, group: GroupId) -> Vec<String> {
        let mut all = Vec::new();
        if let Some(addr) = self
            .leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&group)
        {
            all.push(addr.clone());
        }
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        let Some(map) = known.as_ref().map(|k| &k.map) else {
            return all;
        };
        let voters: Vec<&str> = map
            .placement
            .iter()
            .find(|p| p.group == group)
            .map(|p| {
                p.voters
                    .iter()
                    .filter_map(|v| map.nodes.iter().find(|n| n.id == *v))
                    .map(|n| n.addr.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let others: Vec<&str> = if voters.is_empty() {
            map.nodes.iter().map(|n| n.addr.as_str()).collect()
        } else {
            voters
        };
        for addr in others {
            if !all.iter().any(|a| a == addr) {
                all.push(addr.to_string());
            }
        }
        all
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

    fn remember_leader(&self, group: GroupId, addr: &str) {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group, addr.to_string());
    }

    fn forget_leader(&self, group: GroupId) {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&group);
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

    /// [`Backend::call`] for a request whose repeat may be refused because the first
    /// attempt took effect (see [`Repeat::Unrepeatable`]).
    pub async fn call_as<T, F, Fut>(
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
                None => match next_to_ask(self.candidates(group), &mut failed, &self.suspects()) {
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
                    self.remember_leader(group, &addr);
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
            self.forget_leader(group);
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

/// Whether a request may be sent again after an attempt whose outcome is unknown, with
/// its answer meaning the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// A repeat answers as the first attempt would have (reads; acquires, which carry a
    /// request id the node deduplicates by).
    Idempotent,
    /// A repeat may be refused because the first attempt took effect (a release or renewal
    /// that was applied leaves the caller no longer the holder with that lease): a refusal
    /// after an unknown attempt is itself unknown, and is answered `UNAVAILABLE`.
    Unrepeatable,
}

impl Backend {
    /// [`Backend::call`] for one unary RPC: `message` goes to `rpc` in a request that gives
    /// up with the time left before `deadline`.
    pub async fn send<M, T, F, Fut>(
        &self,
        group: GroupId,
        deadline: Instant,
        message: M,
        rpc: F,
    ) -> Result<T, RpcError>
    where
        M: Clone,
        F: FnMut(LockServiceClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.send_as(group, deadline, Repeat::Idempotent, message, rpc)
            .await
    }

    /// [`Backend::send`] with the given [`Repeat`].
    pub async fn send_as<M, T, F, Fut>(
        &self,
        group: GroupId,
        deadline: Instant,
        repeat: Repeat,
        message: M,
        mut rpc: F,
    ) -> Result<T, RpcError>
    where
        M: Clone,
        F: FnMut(LockServiceClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_as(group, deadline, repeat, |client, left| {
            rpc(client, with_timeout(message.clone(), left))
        })
        .await
    }
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
