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

    /// Where to send a request for `group` now: its last known leader, else the `turn`-th
    /// of its voters (rotating through them while none answers).
    fn target(&self, group: GroupId, turn: usize) -> Option<String> {
        if turn == 0 {
            let leaders = self.leaders.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(addr) = leaders.get(&group) {
                return Some(addr.clone());
            }
        }
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        let map = &known.as_ref()?.map;
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
        let all: Vec<&str> = if voters.is_empty() {
            map.nodes.iter().map(|n| n.addr.as_str()).collect()
        } else {
            voters
        };
        (!all.is_empty()).then(|| all[turn % all.len()].to_string())
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
    /// leader hints and retrying retryable failures with jittered backoff until the deadline.
    pub async fn call<T, F, Fut>(
        &self,
        group: GroupId,
        deadline: Instant,
        mut call: F,
    ) -> Result<T, RpcError>
    where
        F: FnMut(LockServiceClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut turn = 0usize;
        let mut hinted: Option<String> = None;
        let mut backoff = Duration::from_millis(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let addr = hinted.take().or_else(|| self.target(group, turn));
            let Some(addr) = addr else {
                return Err(RpcError::new(ErrorDetail::new(
                    ErrorCode::Unavailable,
                    format!("no node is known for group {group}"),
                )));
            };
            let failure = match call(LockServiceClient::new(self.channel(&addr)?), left).await {
                Ok(reply) => {
                    self.remember_leader(group, &addr);
                    return Ok(reply.into_inner());
                }
                Err(status) => RpcError::from(status),
            };
            let RpcError::Retryable(detail) = &failure else {
                return Err(failure);
            };
            self.forget_leader(group);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(failure);
            }
            match &detail.leader_addr {
                Some(leader) if *leader != addr => hinted = Some(leader.clone()),
                _ => {
                    turn += 1;
                    let pause = jitter(backoff).min(left);
                    tokio::time::sleep(pause).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl Backend {
    /// [`Backend::call`] for one unary RPC: `message` goes to `rpc` in a request that gives
    /// up with the time left before `deadline`.
    pub async fn send<M, T, F, Fut>(
        &self,
        group: GroupId,
        deadline: Instant,
        message: M,
        mut rpc: F,
    ) -> Result<T, RpcError>
    where
        M: Clone,
        F: FnMut(LockServiceClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(group, deadline, |client, left| {
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

/// A pause between `d / 2` and `d`, so retrying gateways do not move in step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let half = d / 2;
    half + Duration::from_nanos(u64::from(nanos) % (half.as_nanos() as u64).max(1))
}
