//! The common Redis lock recipe, done right: one Lua script `INCR`s the key's token counter
//! and `SET key owner:token NX PX ttl`, so tokens only rise; release deletes the key only if
//! it still holds the caller's `owner:token`. Redis cannot queue a waiter, so a blocking
//! acquire retries with jittered backoff (1–4 ms) until its deadline.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::Endpoints;
use crate::resp::{Connection, Reply};

const ACQUIRE: &str = "local t = redis.call('INCR', KEYS[2]) \
    if redis.call('SET', KEYS[1], ARGV[1] .. ':' .. t, 'NX', 'PX', ARGV[2]) then return t end \
    return -1";

const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) end return 0";

/// One connection, with both scripts loaded.
pub struct Conn {
    redis: Connection,
    acquire_sha: Vec<u8>,
    release_sha: Vec<u8>,
    jitter: u64,
}

async fn load(redis: &mut Connection, script: &str) -> anyhow::Result<Vec<u8>> {
    match redis.call(&[b"SCRIPT", b"LOAD", script.as_bytes()]).await? {
        Reply::Bulk(Some(sha)) => Ok(sha),
        other => bail!("SCRIPT LOAD answered {other:?}"),
    }
}

impl Conn {
    pub async fn connect(at: &Endpoints, seed: u64) -> anyhow::Result<Self> {
        let mut redis = Connection::connect(&at.redis_addr).await?;
        let acquire_sha = load(&mut redis, ACQUIRE).await?;
        let release_sha = load(&mut redis, RELEASE).await?;
        Ok(Self {
            redis,
            acquire_sha,
            release_sha,
            jitter: seed | 1,
        })
    }

    async fn try_once(
        &mut self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> anyhow::Result<Option<u64>> {
        let counter = format!("{{{key}}}:token");
        let ttl_ms = ttl.as_millis().to_string();
        let reply = self
            .redis
            .call(&[
                b"EVALSHA",
                &self.acquire_sha,
                b"2",
                key.as_bytes(),
                counter.as_bytes(),
                owner.as_bytes(),
                ttl_ms.as_bytes(),
            ])
            .await?;
        match reply {
            Reply::Integer(token) if token > 0 => Ok(Some(token as u64)),
            Reply::Integer(_) => Ok(None),
            other => bail!("acquire script answered {other:?}"),
        }
    }

    /// A pause of 1–4 ms (xorshift), so retrying clients do not move in step.
    fn backoff(&mut self) -> Duration {
        Duration::from_micros(1_000 + crate::stats::xorshift(&mut self.jitter) % 3_000)
    }

    pub async fn acquire(
        &mut self,
        key: &str,
        owner: &str,
        ttl: Duration,
        wait: Duration,
    ) -> anyhow::Result<Option<u64>> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(token) = self.try_once(key, owner, ttl).await? {
                return Ok(Some(token));
            }
            let pause = self.backoff();
            if Instant::now() + pause > deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
        }
    }

    pub async fn is_held(&mut self, key: &str) -> anyhow::Result<bool> {
        match self.redis.call(&[b"EXISTS", key.as_bytes()]).await? {
            Reply::Integer(n) => Ok(n > 0),
            other => bail!("EXISTS answered {other:?}"),
        }
    }

    pub async fn release(&mut self, key: &str, owner: &str, token: u64) -> anyhow::Result<bool> {
        let holder = format!("{owner}:{token}");
        let reply = self
            .redis
            .call(&[
                b"EVALSHA",
                &self.release_sha,
                b"1",
                key.as_bytes(),
                holder.as_bytes(),
            ])
            .await?;
        Ok(reply == Reply::Integer(1))
    }

    /// A session is a key that lives for `ttl` unless refreshed.
    pub async fn open_session(&mut self, name: &str, ttl: Duration) -> anyhow::Result<String> {
        let ttl_ms = ttl.as_millis().to_string();
        let reply = self
            .redis
            .call(&[b"SET", name.as_bytes(), b"1", b"PX", ttl_ms.as_bytes()])
            .await?;
        match reply {
            Reply::Status(_) => Ok(name.to_string()),
            other => bail!("SET answered {other:?}"),
        }
    }

    /// `PEXPIRE`s the session's key: false once it has expired.
    pub async fn keepalive(&mut self, session: &str, ttl: Duration) -> anyhow::Result<bool> {
        let ttl_ms = ttl.as_millis().to_string();
        let reply = self
            .redis
            .call(&[b"PEXPIRE", session.as_bytes(), ttl_ms.as_bytes()])
            .await?;
        Ok(reply == Reply::Integer(1))
    }
}
