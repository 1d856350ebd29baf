//! The gateway's own copy of the cache entries Redis lately confirmed to it (the local
//! tier, as a near cache in front of Redis): a hit here costs no Redis round trip.
//!
//! - **Only what Redis confirmed.** A copy is made from a read's entry, or from a write
//!   that Redis stored or found current: states Redis held. An older version never
//!   replaces a newer one.
//! - **A floor per key.** Each key also keeps the lowest version the gateway may still
//!   show: the newest it kept, answered from the leader, or tried to write and could not.
//!   A write Redis did not confirm raises the floor and stops a copy below it from
//!   serving; a Redis entry or a late confirmation below the floor is not used. A floor
//!   is kept for the staleness bound after it was last raised, as long as any Redis entry
//!   older than it can still be served.
//! - **Served no longer than the bound.** A copy is served until the lease it shows or the
//!   staleness bound ends, counted from the latest read of the state it shows.
//! - **Bounded size.** A full shard drops the keys whose copy and floor are both over,
//!   and takes no new key while it has no room (reads of that key ask Redis).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::entry::CachedStatus;

/// Shards of the map, so concurrent reads rarely wait on one lock.
const SHARDS: usize = 16;

/// The default number of keys a gateway keeps.
pub const DEFAULT_LOCAL_ENTRIES: usize = 100_000;

/// How long a full shard that had no room takes no new keys before it looks again (a
/// search costs a pass over the shard).
const FULL_PAUSE: Duration = Duration::from_millis(100);

/// A state Redis confirmed, as the gateway keeps it.
#[derive(Clone, Debug)]
struct Copy {
    status: CachedStatus,
    /// When `status.ttl_remaining_ms` was the lease left.
    shown_at: Instant,
    /// When it stops being served.
    serve_until: Instant,
}

/// What the gateway keeps of one key.
#[derive(Clone, Debug)]
struct KeyState {
    /// No version below this may be shown.
    floor: u64,
    /// The copy served, if any (its version is at least `floor` while it serves).
    copy: Option<Copy>,
    /// Until when this must be kept: the copy's end, or the floor's.
    keep_until: Instant,
}

/// A status found locally: the state and the lease it shows as of now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalHit {
    /// The state as Redis confirmed it.
    pub status: CachedStatus,
    /// The lease left now, in milliseconds.
    pub lease_left_ms: Option<u64>,
}

/// One shard: its keys (by tenant, then name, so a lookup needs no allocation), and until
/// when a full shard is not searched for room again.
#[derive(Default)]
struct Shard {
    keys: HashMap<u64, HashMap<Box<str>, KeyState>>,
    len: usize,
    full_until: Option<Instant>,
}

/// The local tier: about `capacity` keys (0: none kept, every read asks Redis).
pub struct LocalTier {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    /// How long a floor outlives its last raise: the staleness bound.
    floor_kept: Duration,
}

impl LocalTier {
    /// A tier of about `capacity` keys, whose floors are kept `floor_kept`.
    pub fn new(capacity: usize, floor_kept: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            floor_kept,
        }
    }

    fn shard(&self, tenant: u64, name: &str) -> MutexGuard<'_, Shard> {
        let hash = crc32c::crc32c_append(crc32c::crc32c(&tenant.to_le_bytes()), name.as_bytes());
        // A panic while a shard was held cannot leave a half-made key behind (each change
        // is one assignment, insert or retain), so a poisoned shard is still sound.
        self.shards[hash as usize % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The copy of `name` of `tenant`, if one is kept and still served at `now`.
    pub fn get(&self, tenant: u64, name: &str, now: Instant) -> Option<LocalHit> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(tenant, name);
        let copy = shard.keys.get(&tenant)?.get(name)?.copy.as_ref()?;
        if now >= copy.serve_until {
            return None;
        }
        let aged = now.saturating_duration_since(copy.shown_at).as_millis() as u64;
        Some(LocalHit {
            status: copy.status.clone(),
            lease_left_ms: copy.status.ttl_remaining_ms.map(|t| t.saturating_sub(aged)),
        })
    }

    /// The lowest version `name` of `tenant` may show now (0: none known).
    pub fn floor(&self, tenant: u64, name: &str, now: Instant) -> u64 {
        if self.per_shard == 0 {
            return 0;
        }
        let shard = self.shard(tenant, name);
        shard
            .keys
            .get(&tenant)
            .and_then(|names| names.get(name))
            .filter(|key| now < key.keep_until)
            .map_or(0, |key| key.floor)
    }

    /// Keeps `status` of `name` of `tenant`, confirmed by Redis, whose lease was as shown
    /// at `shown_at`, to be served until `serve_until` — unless it is below the key's
    /// floor. The same version keeps the later end (the same state, read again).
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
        let version = status.version;
        let copy = Copy {
            status,
            shown_at,
            serve_until,
        };
        let keep_until = serve_until.max(Instant::now() + self.floor_kept);
        let mut shard = self.shard(tenant, name);
        if let Some(key) = shard.keys.get_mut(&tenant).and_then(|n| n.get_mut(name)) {
            if version < key.floor {
                return;
            }
            if let Some(held) = &key.copy
                && (held.status.version > version
                    || (held.status.version == version && held.serve_until >= serve_until))
            {
                return;
            }
            key.floor = version;
            key.copy = Some(copy);
            key.keep_until = key.keep_until.max(keep_until);
            return;
        }
        let key = KeyState {
            floor: version,
            copy: Some(copy),
            keep_until,
        };
        shard.insert(tenant, name, key, self.per_shard);
    }

    /// Raises the floor of `name` of `tenant` to `floor` (a version shown from the leader,
    /// or one Redis did not take), and stops serving a copy below it.
    pub fn raise_floor(&self, tenant: u64, name: &str, floor: u64) {
        if self.per_shard == 0 {
            return;
        }
        let keep_until = Instant::now() + self.floor_kept;
        let mut shard = self.shard(tenant, name);
        if let Some(key) = shard.keys.get_mut(&tenant).and_then(|n| n.get_mut(name)) {
            key.floor = key.floor.max(floor);
            if key
                .copy
                .as_ref()
                .is_some_and(|c| c.status.version < key.floor)
            {
                key.copy = None;
            }
            key.keep_until = key.keep_until.max(keep_until);
            return;
        }
        let key = KeyState {
            floor,
            copy: None,
            keep_until,
        };
        shard.insert(tenant, name, key, self.per_shard);
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len)
            .sum()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    /// Adds a key not yet kept, if there is room or room can be made.
    fn insert(&mut self, tenant: u64, name: &str, key: KeyState, per_shard: usize) {
        if self.len >= per_shard && !self.make_room(per_shard, Instant::now()) {
            return;
        }
        self.keys
            .entry(tenant)
            .or_default()
            .insert(Box::from(name), key);
        self.len += 1;
    }

    /// Drops the keys kept until before `now`; whether that left room for one more. A
    /// search that finds no room is not made again for [`FULL_PAUSE`].
    fn make_room(&mut self, per_shard: usize, now: Instant) -> bool {
        if self.full_until.is_some_and(|until| now < until) {
            return false;
        }
        for names in self.keys.values_mut() {
            names.retain(|_, key| key.keep_until > now);
        }
        self.keys.retain(|_, names| !names.is_empty());
        self.len = self.keys.values().map(HashMap::len).sum();
        let room = self.len < per_shard;
        self.full_until = (!room).then(|| now + FULL_PAUSE);
        room
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(5);

    fn status(version: u64, lease: Option<u64>) -> CachedStatus {
        CachedStatus {
            version,
            holder: None,
            ttl_remaining_ms: lease,
            waiters: 0,
        }
    }

    fn kept(until: Instant, version: u64) -> KeyState {
        KeyState {
            floor: version,
            copy: None,
            keep_until: until,
        }
    }

    #[test]
    fn a_copy_is_served_until_its_end_with_the_lease_aged() {
        let tier = LocalTier::new(64, BOUND);
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
    fn nothing_below_the_floor_is_kept_or_served() {
        let tier = LocalTier::new(64, BOUND);
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
        // A newer version shown from the leader: the copy stops, older confirmations
        // arriving late are refused, the newer state is taken.
        tier.raise_floor(1, "a", 12);
        assert!(tier.get(1, "a", t0).is_none());
        assert_eq!(tier.floor(1, "a", t0), 12);
        tier.put(1, "a", status(9, None), t0, end);
        assert!(tier.get(1, "a", t0).is_none(), "an older late confirmation");
        tier.put(1, "a", status(12, None), t0, end);
        assert_eq!(tier.get(1, "a", t0).unwrap().status.version, 12);
        // A floor below the copy leaves it serving.
        tier.raise_floor(1, "a", 10);
        assert_eq!(tier.get(1, "a", t0).unwrap().status.version, 12);
        // A key with no copy still gets a floor.
        tier.raise_floor(1, "b", 4);
        assert_eq!(tier.floor(1, "b", t0), 4);
        tier.put(1, "b", status(3, None), t0, end);
        assert!(tier.get(1, "b", t0).is_none());
    }

    #[test]
    fn a_full_shard_drops_only_keys_that_are_over_and_pauses_when_none_are() {
        let now = Instant::now();
        let Some(long_ago) = now.checked_sub(Duration::from_secs(10)) else {
            panic!("the clock started less than 10 s ago");
        };
        let mut shard = Shard::default();
        for n in 0..4 {
            shard.insert(1, &format!("old{n}"), kept(long_ago, n), 4);
        }
        assert_eq!(shard.len, 4);
        // Keys that are over make room for live ones.
        let live = now + BOUND;
        for n in 0..4 {
            shard.insert(1, &format!("new{n}"), kept(live, n), 4);
        }
        assert_eq!(shard.len, 4);
        assert!(shard.keys[&1].keys().all(|k| k.starts_with("new")));
        // Full of live keys: a new one is not kept, and the next search waits.
        shard.insert(1, "late", kept(live, 1), 4);
        assert_eq!(shard.len, 4);
        assert!(!shard.keys[&1].contains_key("late"));
        assert!(shard.full_until.is_some_and(|until| until > now));
        shard.keys.get_mut(&1).unwrap().values_mut().for_each(|k| {
            k.keep_until = long_ago;
        });
        shard.insert(1, "later", kept(live, 1), 4);
        assert!(!shard.keys[&1].contains_key("later"), "paused");
        assert!(shard.make_room(4, Instant::now() + FULL_PAUSE));
        assert_eq!(shard.len, 0);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let tier = LocalTier::new(0, BOUND);
        let t0 = Instant::now();
        tier.put(1, "a", status(1, None), t0, t0 + Duration::from_secs(1));
        tier.raise_floor(1, "a", 3);
        assert!(tier.is_empty());
        assert!(tier.get(1, "a", t0).is_none());
        assert_eq!(tier.floor(1, "a", t0), 0);
    }
}
