//! The gateway's view of the cluster: the shard map (read from the meta group and re-read
//! periodically), the ring that maps a key to its lock group, the tenants' API-key hashes
//! and quota shares, and the last known leader of each group. It answers "where does this
//! go"; [`crate::caller::Caller`] does the sending.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use lockplane_proto::Dialer;
use lockplane_proto::RpcError;
use lockplane_proto::admin::admin_service_client::AdminServiceClient;
use lockplane_proto::admin::{GetShardMapRequest, ShardMap};
use lockplane_proto::follow::at_leader;
use lockplane_proto::lock::{ErrorCode, ErrorDetail};
use shard_map::{GroupId, KeyHash, ShardRing, TenantId};

/// How long one node may keep a shard-map read retrying before the next node is asked, so
/// that a seed that is down does not hold the gateway for the whole patience.
const PER_NODE_PATIENCE: Duration = Duration::from_secs(1);

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
pub struct ClusterView {
    seeds: Vec<String>,
    dialer: Dialer,
    known: RwLock<Option<Known>>,
    leaders: Mutex<HashMap<GroupId, String>>,
    /// One re-read of the shard map at a time for unknown keys; callers that waited use
    /// the result of the read that ran meanwhile.
    miss_refresh: tokio::sync::Mutex<()>,
}

impl ClusterView {
    /// A view that first asks `seeds` (node addresses) for the shard map and reaches nodes
    /// through `dialer` (plain, or mutual TLS with the gateway's cluster certificate).
    pub fn new(seeds: Vec<String>, dialer: Dialer) -> Self {
        Self {
            seeds,
            dialer,
            known: RwLock::new(None),
            leaders: Mutex::default(),
            miss_refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// How this gateway reaches nodes.
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
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
        let view = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let _ = view.refresh(every).await;
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

    /// Where a request for `group` may go, best first: its last known leader, then its
    /// voters (every node when the map places it nowhere).
    pub(crate) fn candidates(&self, group: GroupId) -> Vec<String> {
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

    /// Records that `addr` answered as `group`'s leader.
    pub(crate) fn remember_leader(&self, group: GroupId, addr: &str) {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group, addr.to_string());
    }

    /// Forgets `group`'s leader: it refused or failed.
    pub(crate) fn forget_leader(&self, group: GroupId) {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&group);
    }
}
