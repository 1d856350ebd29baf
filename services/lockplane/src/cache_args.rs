//! The status-cache flags shared by `gateway`, `dev` and `cluster up`: where Redis is, how
//! stale an entry may get, and the prefix of its keys. A malformed URL stops start-up.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use lockplane_gateway::cache::link::RedisTarget;
use lockplane_gateway::cache::local::DEFAULT_LOCAL_ENTRIES;
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
    /// Entries of the cache the gateway also keeps in its own memory, so most hits cost no
    /// Redis round trip (0: none; every cached read asks Redis).
    #[arg(
        long,
        env = "LOCKPLANE_CACHE_LOCAL_ENTRIES",
        default_value_t = DEFAULT_LOCAL_ENTRIES,
        value_parser = parse_local_entries,
        value_name = "N"
    )]
    cache_local_entries: usize,
}

/// Most entries `--cache-local-entries` may ask for (about 250 MB at the most).
const MOST_LOCAL_ENTRIES: usize = 1_000_000;

fn parse_local_entries(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n <= MOST_LOCAL_ENTRIES => Ok(n),
        _ => Err(format!(
            "{text:?} is not a whole number in 0..={MOST_LOCAL_ENTRIES}"
        )),
    }
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
            local_entries: self.cache_local_entries,
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
            .arg(&self.cache_prefix)
            .arg("--cache-local-entries")
            .arg(self.cache_local_entries.to_string());
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

    #[test]
    fn local_entries_are_bounded() {
        assert_eq!(parse_local_entries("0"), Ok(0));
        assert_eq!(parse_local_entries("100000"), Ok(100_000));
        for bad in ["-1", "2000000", "many"] {
            let e = parse_local_entries(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("0..=1000000"), "{e}");
        }
    }
}
