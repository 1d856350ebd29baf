//! The status cache: `GET /v1/locks/{key}` answered from Redis, cache-aside, with every
//! entry versioned by the log index of the state it shows (decision 0025).
//!
//! - A read ([`StatusCache::lookup`]) that finds an entry answers from it; one that finds
//!   none reads the group leader and fills the entry ([`StatusCache::store`]).
//! - Every change a group applies reaches the cache through the group's change feed
//!   ([`feed`]): the leader streams each changed key's new status, and the gateway writes
//!   it. A write older than the entry is refused by the write script ([`entry`]).
//! - Every entry expires no later than the lease it shows and `max_staleness` after the
//!   status it shows was read, which bounds what a lost update can cost.
//! - Redis failing or slow never fails a read: it goes to the leader ([`link`]).
//! - What Redis answered or accepted lately is also kept in the gateway ([`local`]), so
//!   most hits cost no Redis round trip; it takes only states Redis confirmed, serves them
//!   no longer than Redis would, and keeps a floor per key below which nothing is shown.
//! - Redis's memory is read every 10 s for `/metrics` ([`memory`]).

pub mod entry;
pub mod feed;
pub mod link;
pub mod local;
pub mod memory;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockplane_proto::lock as pb;
use redis::Script;

use entry::{CachedStatus, READ_SCRIPT, WRITE_SCRIPT, redis_key};
use link::{REDIS_TIMEOUT, RedisLink, RedisTarget};
use local::{DEFAULT_LOCAL_ENTRIES, LocalTier};
use stats::{CacheEvent, CacheStats};

/// Most feed writes in flight at once (per group): enough to keep Redis busy, few enough
/// that a large batch does not time out status reads queued behind it.
const WRITES_AT_ONCE: usize = 32;

/// The default bound on how long an entry may outlive the state it shows.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(5);

/// How the cache is set up.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Prepended to every Redis key (tests give each run its own).
    pub prefix: String,
    /// The longest an entry lives after the status it shows was read.
    pub max_staleness: Duration,
    /// How many entries the gateway keeps in its own memory (0: none, every lookup asks
    /// Redis).
    pub local_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            prefix: "lockplane:status:".to_string(),
            max_staleness: DEFAULT_MAX_STALENESS,
            local_entries: DEFAULT_LOCAL_ENTRIES,
        }
    }
}

/// What a cache lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// An entry: the status (lease left as of now) and its version.
    Hit(pb::LockStatus, u64),
    /// No entry: read the leader, then fill.
    Miss,
    /// Redis could not be asked (down, slow, resting, not connected yet): read the leader.
    Unavailable,
}

/// Where a write comes from, for what it counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A miss's leader read.
    Fill,
    /// A group's change feed.
    Feed,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The entry now shows this version.
    Stored,
    /// The entry holds a newer version; nothing changed.
    Refused,
    /// The entry held this version already (the same state): its serving time restarts.
    Current,
    /// Not written: the status is too old to cache (its lease or the staleness bound ran
    /// out while it travelled), or Redis could not be asked.
    Skipped,
}

/// The cache.
pub struct StatusCache {
    link: Arc<RedisLink>,
    local: LocalTier,
    config: CacheConfig,
    read_script: Script,
    write_script: Script,
    stats: CacheStats,
}

impl StatusCache {
    /// A cache in `target` (connected in the background).
    pub fn new(target: RedisTarget, config: CacheConfig) -> Arc<Self> {
        Arc::new(Self {
            link: RedisLink::new(target),
            local: LocalTier::new(config.local_entries, config.max_staleness),
            config,
            read_script: Script::new(READ_SCRIPT),
            write_script: Script::new(WRITE_SCRIPT),
            stats: CacheStats::default(),
        })
    }

    /// Starts connecting to Redis now rather than at the first read.
    pub fn connect(&self) {
        let _ = self.link.conn();
    }

    /// What the cache has counted.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The entry of `name` of `tenant`: the gateway's own copy if it has one, else Redis's
    /// if Redis answers in time.
    pub async fn lookup(&self, tenant: u64, name: &str) -> Lookup {
        if let Some(hit) = self.local.get(tenant, name, Instant::now()) {
            self.stats.count(CacheEvent::Hit);
            self.stats.count(CacheEvent::LocalHit);
            return Lookup::Hit(
                hit.status.to_status(name.to_string(), hit.lease_left_ms),
                hit.status.version,
            );
        }
        let Some(mut conn) = self.link.conn() else {
            self.stats.count(CacheEvent::Fallback);
            return Lookup::Unavailable;
        };
        let key = redis_key(&self.config.prefix, tenant, name);
        let started = Instant::now();
        let invocation = self.read_script.key(key);
        let asked = tokio::time::timeout(
            REDIS_TIMEOUT,
            invocation.invoke_async::<Option<(String, i64, i64)>>(&mut conn),
        )
        .await;
        self.stats.redis_took(started.elapsed());
        let found = match asked {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "status cache: read failed");
                return self.fall_back();
            }
            Err(_) => return self.fall_back(),
        };
        let Some((payload, age_ms, left_ms)) = found else {
            self.stats.count(CacheEvent::Miss);
            return Lookup::Miss;
        };
        let Ok(cached) = serde_json::from_str::<CachedStatus>(&payload) else {
            self.stats.count(CacheEvent::Miss);
            return Lookup::Miss;
        };
        if cached.version < self.local.floor(tenant, name, Instant::now()) {
            // Older than a state this gateway already showed: ask the leader.
            self.stats.count(CacheEvent::Miss);
            return Lookup::Miss;
        }
        // Redis's times count from when the script ran, which was after `started`: taken
        // from `started`, the copy ends no later than the entry, and its lease no later.
        let aged = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0))
            .min(self.config.max_staleness);
        let shown_at = started.checked_sub(aged).unwrap_or(started);
        self.local
            .put(tenant, name, cached.clone(), shown_at, started + left);
        let lease_left = cached
            .ttl_remaining_ms
            .map(|t| t.saturating_sub(started.elapsed().saturating_add(aged).as_millis() as u64));
        self.stats.count(CacheEvent::Hit);
        Lookup::Hit(
            cached.to_status(name.to_string(), lease_left),
            cached.version,
        )
    }

    /// Tells the cache that `version` of `name` of `tenant` was just shown from the leader
    /// (Redis could not be asked): this gateway shows nothing older from now on.
    pub fn shown_from_leader(&self, tenant: u64, name: &str, version: u64) {
        self.local.raise_floor(tenant, name, version);
    }

    fn fall_back(&self) -> Lookup {
        self.link.failed();
        self.stats.count(CacheEvent::Fallback);
        Lookup::Unavailable
    }

    /// Writes `status` of `name` of `tenant`, as of log index `version` and read at
    /// `read_at`, unless the entry is newer. It is served until the lease it shows or
    /// `max_staleness` ends, whichever is first, counted from `read_at`; its version is
    /// kept `max_staleness` longer. The gateway keeps its own copy of what Redis confirmed;
    /// a version Redis did not take raises the key's floor in the gateway, so no older copy
    /// or entry is shown after it. A failed or slow write from the feed does not put Redis
    /// aside for readers (they find out for themselves).
    pub async fn store(
        &self,
        tenant: u64,
        status: &pb::LockStatus,
        version: u64,
        read_at: Instant,
        source: Source,
    ) -> Written {
        let bound = status
            .ttl_remaining_ms
            .map_or(self.config.max_staleness, Duration::from_millis)
            .min(self.config.max_staleness);
        let cached = CachedStatus::of(status, version);
        let ttl = bound.saturating_sub(read_at.elapsed());
        let written = self.write(tenant, &status.name, &cached, ttl, source).await;
        match written {
            Written::Stored | Written::Current => {
                self.local
                    .put(tenant, &status.name, cached, read_at, read_at + bound);
            }
            // Redis holds a newer version than this one.
            Written::Refused => self.local.raise_floor(tenant, &status.name, version + 1),
            // Redis may or may not hold this version; nothing older is shown from now on.
            Written::Skipped => self.local.raise_floor(tenant, &status.name, version),
        }
        match (written, source) {
            (Written::Stored, Source::Feed) => self.stats.count(CacheEvent::Updated),
            (Written::Refused, _) => self.stats.count(CacheEvent::StaleRefused),
            _ => {}
        }
        written
    }

    /// Runs the write script for `cached` of `name` of `tenant`, to be served for `ttl`.
    async fn write(
        &self,
        tenant: u64,
        name: &str,
        cached: &CachedStatus,
        ttl: Duration,
        source: Source,
    ) -> Written {
        let ttl_ms = ttl.as_millis() as u64;
        if ttl_ms == 0 {
            return Written::Skipped;
        }
        let Some(mut conn) = self.link.conn() else {
            return Written::Skipped;
        };
        let Ok(payload) = serde_json::to_string(cached) else {
            return Written::Skipped;
        };
        let key = redis_key(&self.config.prefix, tenant, name);
        let started = Instant::now();
        let mut invocation = self.write_script.key(key);
        invocation
            .arg(cached.version)
            .arg(payload)
            .arg(ttl_ms)
            .arg(self.config.max_staleness.as_millis() as u64);
        let asked =
            tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<i64>(&mut conn)).await;
        self.stats.redis_took(started.elapsed());
        match asked {
            Ok(Ok(1)) => Written::Stored,
            Ok(Ok(0)) => Written::Refused,
            Ok(Ok(_)) => Written::Current,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "status cache: write failed");
                if source == Source::Fill {
                    self.link.failed();
                }
                Written::Skipped
            }
            Err(_) => {
                if source == Source::Fill {
                    self.link.failed();
                }
                Written::Skipped
            }
        }
    }

    /// Writes `changes` (each a tenant, a status and the version and time it was read at)
    /// from a change feed, at most [`WRITES_AT_ONCE`] at a time.
    pub async fn apply(self: &Arc<Self>, changes: Vec<feed::Change>) {
        let mut writes = tokio::task::JoinSet::new();
        for change in changes {
            if writes.len() >= WRITES_AT_ONCE {
                writes.join_next().await;
            }
            let cache = Arc::clone(self);
            writes.spawn(async move {
                cache
                    .store(
                        change.tenant,
                        &change.status,
                        change.version,
                        change.received_at,
                        Source::Feed,
                    )
                    .await
            });
        }
        while writes.join_next().await.is_some() {}
    }
}
