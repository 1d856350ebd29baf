//! The status-cache flags shared by `gateway`, `dev` and `cluster up`: where Redis is, how
//! stale an entry may get, and the prefix of its keys. A malformed URL stops start-up.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use lockplane_gateway::cache::link::RedisTarget;
use lockplane_gateway::cache::{CacheConfig, StatusCache};

use crate::failure::usage;
use crate::input::parse_duration;

/// Bounds of `--cache-max-staleness`.
const STALENESS_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(3_600));

/// Flags of the Redis status cache.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Serve status reads (`consistency=cached`, the default) from Redis:
    /// `redis://HOST:PORT[/DB]`, `rediss://…` (TLS), or `redis-cluster://HOST:PORT,HOST:PORT…`
    /// for a Redis Cluster. Without it, every status read goes to the group leader.
    #[arg(long, env = "LOCKPLANE_REDIS_URL", value_name = "URL")]
    redis: Option<String>,
    /// Longest a cached status may outlive the state it shows (10ms..=1h).
    #[arg(long, default_value = "5s", value_parser = parse_staleness, value_name = "DURATION")]
    cache_max_staleness: Duration,
    /// Prefix of the cache's Redis keys, to share one Redis between clusters.
    #[arg(
        long,
        env = "LOCKPLANE_CACHE_PREFIX",
        default_value = "lockplane:status:"
    )]
    cache_prefix: String,
}

fn parse_staleness(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    let (low, high) = STALENESS_BOUNDS;
    if d < low || d > high {
        return Err(format!("{text:?} is outside 10ms..=1h"));
    }
    Ok(d)
}

impl CacheArgs {
    /// The cache these flags describe, if `--redis` is given.
    pub fn cache(&self) -> anyhow::Result<Option<Arc<StatusCache>>> {
        let Some(url) = &self.redis else {
            return Ok(None);
        };
        let target = match RedisTarget::parse(url.trim()) {
            Ok(target) => target,
            Err(e) => usage!("--redis: {e}"),
        };
        let config = CacheConfig {
            prefix: self.cache_prefix.clone(),
            max_staleness: self.cache_max_staleness,
        };
        Ok(Some(StatusCache::new(target, config)))
    }

    /// Fails as start-up would if the flags are wrong (a malformed URL).
    pub fn check(&self) -> anyhow::Result<()> {
        self.cache().map(|_| ())
    }

    /// Passes the same settings to a child process (`cluster up`'s gateway): the URL,
    /// which may hold a password, in its environment (`LOCKPLANE_REDIS_URL`), not on its
    /// command line where any process listing shows it.
    pub fn pass_to(&self, child: &mut std::process::Command) {
        let Some(url) = &self.redis else {
            child.env_remove("LOCKPLANE_REDIS_URL");
            return;
        };
        child
            .env("LOCKPLANE_REDIS_URL", url)
            .arg("--cache-max-staleness")
            .arg(format!("{}ms", self.cache_max_staleness.as_millis()))
            .arg("--cache-prefix")
            .arg(&self.cache_prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_is_bounded() {
        assert_eq!(parse_staleness("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_staleness("1ms").unwrap_err().contains("10ms..=1h"));
        assert!(parse_staleness("2h").unwrap_err().contains("10ms..=1h"));
        assert!(parse_staleness("soon").is_err());
    }
}
