//! Per-tenant request rate limits: a token bucket per tenant, refilled continuously. Over
//! the limit a request gets `429` with `Retry-After` and never reaches a node. Each gateway
//! limits on its own, so a tenant's cluster-wide budget is the per-gateway rate times the
//! number of gateways.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How fast and how far a tenant may go.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell.
    pub burst: f64,
}

impl Default for Limit {
    /// 5,000 requests/s per tenant per gateway, bursts of 10,000.
    fn default() -> Self {
        Self {
            per_second: 5_000.0,
            burst: 10_000.0,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every tenant's bucket.
pub struct RateLimiter {
    limit: Limit,
    buckets: Mutex<HashMap<u64, Bucket>>,
}

impl RateLimiter {
    /// A limiter giving every tenant `limit`.
    pub fn new(limit: Limit) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// Takes one request from `tenant`'s bucket at `now`, or says how long until one is
    /// available.
    pub fn take(&self, tenant: u64, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(tenant).or_insert(Bucket {
            tokens: self.limit.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.limit.per_second).min(self.limit.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - bucket.tokens;
        Err(Duration::from_secs_f64(
            missing / self.limit.per_second.max(f64::MIN_POSITIVE),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_tenant() {
        let limiter = RateLimiter::new(Limit {
            per_second: 10.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(1, t0).is_ok());
        }
        let wait = limiter.take(1, t0).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
        assert!(
            limiter.take(2, t0).is_ok(),
            "another tenant has its own bucket"
        );
        assert!(limiter.take(1, t0 + Duration::from_millis(100)).is_ok());
        assert!(limiter.take(1, t0 + Duration::from_millis(100)).is_err());
        for _ in 0..3 {
            assert!(limiter.take(1, t0 + Duration::from_secs(60)).is_ok());
        }
        assert!(
            limiter.take(1, t0 + Duration::from_secs(60)).is_err(),
            "a long quiet spell refills only up to the burst"
        );
    }
}
