//! The gateway's own copy of the cache entries Redis lately confirmed to it (the local
//! tier, as a near cache in front of Redis): a hit here costs no Redis round trip.
//!
//! It only ever holds what Redis itself answered or accepted — a read's entry, or a write
//! that Redis stored or found current — so it never shows a version Redis would not, and
//! the order Redis puts on versions holds here too: an older version never replaces a
//! newer one. A write that Redis did not confirm (refused as older, failed, timed out)
//! stops the key's copy from serving, so the next read asks Redis; the copy's version is
//! kept a while longer ([`FLOOR_KEPT`]), so an older confirmation that arrives late cannot
//! bring back an older state. Each copy is served until the same moment its Redis entry
//! stops being served: the end of the lease it shows or the staleness bound, whichever
//! comes first. The size is bounded: a full shard drops copies that stopped serving more
//! than [`FLOOR_KEPT`] ago, and keeps no new key while it has no room (reads of that key
//! ask Redis).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::entry::CachedStatus;

/// Shards of the map, so concurrent reads rarely wait on one lock.
const SHARDS: usize = 16;

/// How long a copy's version is kept after it stops serving: longer than any write's
/// confirmation takes to reach the tier (Redis commands give up after 50 ms).
pub const FLOOR_KEPT: Duration = Duration::from_secs(1);

/// The default number of entries a gateway keeps.
pub const DEFAULT_LOCAL_ENTRIES: usize = 100_000;

/// One entry kept locally.
#[derive(Clone, Debug)]
struct LocalEntry {
    status: CachedStatus,
    /// When `status.ttl_remaining_ms` was the lease left.
    shown_at: Instant,
    /// When it stops being served.
    serve_until: Instant,
}

/// A status found locally: the entry and the lease it shows as of now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalHit {
    /// The entry as Redis confirmed it.
    pub status: CachedStatus,
    /// The lease left now, in milliseconds.
    pub lease_left_ms: Option<u64>,
}

/// One shard: its copies, and until when a full shard is not searched for room again.
#[derive(Default)]
struct Shard {
    copies: HashMap<(u64, Box<str>), LocalEntry>,
    full_until: Option<Instant>,
}

/// How long a full shard that had no room takes no new keys before it looks again (a
/// search costs a pass over the shard).
const FULL_PAUSE: Duration = Duration::from_millis(100);

/// The local tier: at most `capacity` entries (0: none kept, every read asks Redis).
pub struct LocalTier {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl LocalTier {
    /// A tier of at most about `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, tenant: u64, name: &str) -> std::sync::MutexGuard<'_, Shard> {
        let at = self.hasher.hash_one((tenant, name)) as usize % SHARDS;
        // A panic while a shard was held cannot leave a half-made entry behind (every
        // change is one insert or remove), so a poisoned shard is still sound.
        self.shards[at]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry of `name` of `tenant`, if one is kept and still served at `now`.
    pub fn get(&self, tenant: u64, name: &str, now: Instant) -> Option<LocalHit> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(tenant, name);
        let entry = shard.copies.get(&(tenant, Box::from(name)))?;
        if now >= entry.serve_until {
            return None;
        }
        let aged = now.saturating_duration_since(entry.shown_at).as_millis() as u64;
        Some(LocalHit {
            status: entry.status.clone(),
            lease_left_ms: entry
                .status
                .ttl_remaining_ms
                .map(|t| t.saturating_sub(aged)),
        })
    }

    /// Keeps `status` of `name` of `tenant`, whose lease was as shown at `shown_at`, to be
    /// served until `serve_until`, unless a newer version is kept. The same version keeps
    /// the later of the two ends (it is the same state, read again).
    pub fn put(
        &self,
        tenant: u64,
        name: &str,
        status: CachedStatus,
        shown_at: Instant,
        serve_until: Instant,
    ) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(tenant, name);
        let key = (tenant, Box::from(name));
        let entry = LocalEntry {
            status,
            shown_at,
            serve_until,
        };
        if let Some(held) = shard.copies.get_mut(&key) {
            let version = (held.status.version, entry.status.version);
            if version.0 > version.1 || (version.0 == version.1 && held.serve_until >= serve_until)
            {
                return;
            }
            *held = entry;
            return;
        }
        if shard.copies.len() >= self.per_shard && !shard.make_room(self.per_shard, Instant::now())
        {
            return;
        }
        shard.copies.insert(key, entry);
    }

    /// Stops serving the copy of `name` of `tenant` as of `now` (Redis did not confirm its
    /// newer state), keeping its version for [`FLOOR_KEPT`].
    pub fn stop_serving(&self, tenant: u64, name: &str, now: Instant) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(tenant, name);
        if let Some(held) = shard.copies.get_mut(&(tenant, Box::from(name))) {
            held.serve_until = held.serve_until.min(now);
        }
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .copies
                    .len()
            })
            .sum()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    /// Drops the copies of a full shard that stopped serving more than [`FLOOR_KEPT`]
    /// before `now`; whether that left room for one more. A search that finds no room
    /// is not made again for [`FULL_PAUSE`].
    fn make_room(&mut self, per_shard: usize, now: Instant) -> bool {
        if self.full_until.is_some_and(|until| now < until) {
            return false;
        }
        self.copies.retain(|_, e| e.serve_until + FLOOR_KEPT > now);
        let room = self.copies.len() < per_shard;
        self.full_until = (!room).then(|| now + FULL_PAUSE);
        room
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(version: u64, lease: Option<u64>) -> CachedStatus {
        CachedStatus {
            version,
            holder: None,
            ttl_remaining_ms: lease,
            waiters: 0,
        }
    }

    #[test]
    fn an_entry_is_served_until_its_end_with_the_lease_aged() {
        let tier = LocalTier::new(64);
        let t0 = Instant::now();
        tier.put(
            1,
            "a",
            status(5, Some(1_000)),
            t0,
            t0 + Duration::from_millis(800),
        );
        let hit = tier.get(1, "a", t0 + Duration::from_millis(300)).unwrap();
        assert_eq!(hit.status.version, 5);
        assert_eq!(hit.lease_left_ms, Some(700));
        assert!(tier.get(1, "a", t0 + Duration::from_millis(800)).is_none());
        assert!(tier.get(2, "a", t0).is_none(), "another tenant's key");
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let tier = LocalTier::new(64);
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(5);
        tier.put(1, "a", status(9, None), t0, end);
        tier.put(1, "a", status(7, None), t0, end + Duration::from_secs(1));
        assert_eq!(tier.get(1, "a", t0).unwrap().status.version, 9);
        tier.put(1, "a", status(9, None), t0, end + Duration::from_secs(1));
        assert!(
            tier.get(1, "a", end).is_some(),
            "the same version read again"
        );
        // Stopped: not served, but its version still refuses older ones.
        tier.stop_serving(1, "a", t0);
        assert!(tier.get(1, "a", t0).is_none());
        tier.put(1, "a", status(8, None), t0, end);
        assert!(tier.get(1, "a", t0).is_none(), "an older late confirmation");
        tier.put(1, "a", status(9, None), t0, end);
        assert_eq!(tier.get(1, "a", t0).unwrap().status.version, 9);
    }

    #[test]
    fn a_full_tier_drops_only_long_stopped_copies() {
        let tier = LocalTier::new(SHARDS * 4);
        let now = Instant::now();
        let Some(long_ago) = now.checked_sub(FLOOR_KEPT * 3) else {
            return;
        };
        for n in 0..200u64 {
            tier.put(1, &format!("old{n}"), status(n, None), long_ago, long_ago);
        }
        assert!(tier.len() <= SHARDS * 4, "{}", tier.len());
        // Copies that stopped serving long ago make room for live ones.
        let live = now + Duration::from_secs(5);
        for n in 0..200u64 {
            tier.put(1, &format!("new{n}"), status(n, None), now, live);
        }
        assert!(tier.len() <= SHARDS * 4, "{}", tier.len());
        let kept = (0..200u64)
            .filter(|n| tier.get(1, &format!("new{n}"), now).is_some())
            .count();
        assert_eq!(kept, tier.len(), "only live copies are left");
        // A full tier of live copies keeps serving them and takes no new key; a kept key
        // still takes its newer versions.
        let full = tier.len();
        tier.put(1, "late", status(1, None), now, live);
        if tier.get(1, "late", now).is_some() {
            assert!(tier.len() <= SHARDS * 4);
        } else {
            assert_eq!(tier.len(), full);
        }
        let some = (0..200u64)
            .find(|n| tier.get(1, &format!("new{n}"), now).is_some())
            .unwrap();
        tier.put(1, &format!("new{some}"), status(1_000, None), now, live);
        let hit = tier.get(1, &format!("new{some}"), now).unwrap();
        assert_eq!(hit.status.version, 1_000);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let tier = LocalTier::new(0);
        let t0 = Instant::now();
        tier.put(1, "a", status(1, None), t0, t0 + Duration::from_secs(1));
        assert!(tier.is_empty());
        assert!(tier.get(1, "a", t0).is_none());
    }
}
