//! What the status cache counts for `/metrics`: hits, misses, fallbacks to the leader,
//! updates applied from the change feed, writes refused as older than the entry, feed
//! restarts, and the latency of Redis commands. Relaxed atomic adds only.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the Redis latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// The cache's counters.
#[derive(Default)]
pub struct CacheStats {
    hits: AtomicU64,
    local_hits: AtomicU64,
    misses: AtomicU64,
    fallbacks: AtomicU64,
    updates: AtomicU64,
    stale_refused: AtomicU64,
    feed_restarts: AtomicU64,
    feed_gaps: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_sum_micros: AtomicU64,
    latency_count: AtomicU64,
    /// Redis's `used_memory`, summed over the servers that answered; 0 until known.
    redis_used_memory: AtomicU64,
}

/// One counted event of the cache.
#[derive(Clone, Copy, Debug)]
pub enum CacheEvent {
    /// A status read answered from the cache (Redis, or the gateway's copy of it).
    Hit,
    /// A hit answered from the gateway's own copy, without asking Redis.
    LocalHit,
    /// A status read found no entry and went to the leader (then filled the entry).
    Miss,
    /// A status read went to the leader because Redis failed, was slow, or is resting.
    Fallback,
    /// An entry updated from the change feed (a newer version written).
    Updated,
    /// A write refused because the entry holds a newer version.
    StaleRefused,
    /// A group's change feed opened again after it broke.
    FeedRestarted,
    /// A reopened feed whose leader could not replay the changes since the last version
    /// received (they reach the cache by expiry).
    FeedGap,
}

impl CacheStats {
    fn counter(&self, event: CacheEvent) -> &AtomicU64 {
        match event {
            CacheEvent::Hit => &self.hits,
            CacheEvent::LocalHit => &self.local_hits,
            CacheEvent::Miss => &self.misses,
            CacheEvent::Fallback => &self.fallbacks,
            CacheEvent::Updated => &self.updates,
            CacheEvent::StaleRefused => &self.stale_refused,
            CacheEvent::FeedRestarted => &self.feed_restarts,
            CacheEvent::FeedGap => &self.feed_gaps,
        }
    }

    /// Counts `event`.
    pub fn count(&self, event: CacheEvent) {
        self.counter(event).fetch_add(1, Ordering::Relaxed);
    }

    /// How many of `event` so far.
    pub fn total(&self, event: CacheEvent) -> u64 {
        self.counter(event).load(Ordering::Relaxed)
    }

    /// Records how long one Redis command took.
    pub fn redis_took(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records what Redis last said it uses (`INFO memory`'s `used_memory`, summed).
    pub fn set_redis_used_memory(&self, bytes: u64) {
        self.redis_used_memory.store(bytes, Ordering::Relaxed);
    }

    /// Appends the Prometheus text of the counters to `out`.
    pub fn render(&self, out: &mut String) {
        for (name, help, event) in [
            (
                "hits",
                "Status reads answered from the cache (Redis, or the gateway's copy of it).",
                CacheEvent::Hit,
            ),
            (
                "local_hits",
                "Cache hits answered from the gateway's own copy of Redis's entries, without asking Redis.",
                CacheEvent::LocalHit,
            ),
            (
                "misses",
                "Status reads that found no entry, read the leader and filled it.",
                CacheEvent::Miss,
            ),
            (
                "fallbacks",
                "Status reads that went to the leader because Redis failed, was slow or was being left alone.",
                CacheEvent::Fallback,
            ),
            (
                "updates",
                "Entries updated from the groups' change feeds (invalidations applied).",
                CacheEvent::Updated,
            ),
            (
                "stale_writes_refused",
                "Fills and updates refused because the entry holds a newer version.",
                CacheEvent::StaleRefused,
            ),
            (
                "feed_restarts",
                "Change feeds opened again after they broke (a leader change, a node restart).",
                CacheEvent::FeedRestarted,
            ),
            (
                "feed_gaps",
                "Reopened change feeds whose leader could not replay the changes since the last version received (they reach the cache by expiry).",
                CacheEvent::FeedGap,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP lockplane_gateway_cache_{name}_total {help}\n\
                 # TYPE lockplane_gateway_cache_{name}_total counter\n\
                 lockplane_gateway_cache_{name}_total {}",
                self.total(event)
            );
        }
        out.push_str("# HELP lockplane_gateway_redis_duration_seconds Time of one Redis command of the status cache.\n");
        out.push_str("# TYPE lockplane_gateway_redis_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "lockplane_gateway_redis_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "lockplane_gateway_redis_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             lockplane_gateway_redis_duration_seconds_sum {sum}\n\
             lockplane_gateway_redis_duration_seconds_count {count}"
        );
        let memory = self.redis_used_memory.load(Ordering::Relaxed);
        if memory > 0 {
            let _ = writeln!(
                out,
                "# HELP lockplane_gateway_redis_used_memory_bytes Memory Redis reports in use \
                 (used_memory, summed over a cluster's masters), read every 10 s.\n\
                 # TYPE lockplane_gateway_redis_used_memory_bytes gauge\n\
                 lockplane_gateway_redis_used_memory_bytes {memory}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_latency_are_rendered() {
        let stats = CacheStats::default();
        stats.count(CacheEvent::Hit);
        stats.count(CacheEvent::Hit);
        stats.count(CacheEvent::StaleRefused);
        stats.redis_took(Duration::from_micros(300));
        stats.redis_took(Duration::from_millis(20));
        let mut text = String::new();
        stats.render(&mut text);
        for line in [
            "lockplane_gateway_cache_hits_total 2",
            "lockplane_gateway_cache_misses_total 0",
            "lockplane_gateway_cache_stale_writes_refused_total 1",
            r#"lockplane_gateway_redis_duration_seconds_bucket{le="0.0005"} 1"#,
            r#"lockplane_gateway_redis_duration_seconds_bucket{le="0.025"} 2"#,
            "lockplane_gateway_redis_duration_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
