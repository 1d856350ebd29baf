//! The systems a workload can run against, behind one interface: connect one client, take
//! a lock (at once, or waiting up to a deadline), give it back. Each returns the fencing
//! token of a grant so the workloads can check the order of grants.

mod etcd;
mod lockplane;
mod redis;

use std::time::Duration;

use clap::ValueEnum;

/// Which system to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Lockplane's REST gateway (the Rust SDK).
    Lockplane,
    /// One Redis: `INCR` + `SET NX PX` in a Lua script, compare-and-delete release.
    Redis,
    /// etcd v3: a lease per client, the v3lock `Lock` / `Unlock`; the token is the revision.
    Etcd,
}

/// Where the targets are.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The gateway's base URL.
    pub lockplane_url: String,
    /// The tenant's API key.
    pub lockplane_key: String,
    /// Redis `host:port`.
    pub redis_addr: String,
    /// etcd client endpoints (`http://host:port`).
    pub etcd_endpoints: Vec<String>,
}

/// One client's connection to a target.
pub enum Conn {
    /// Through the gateway.
    Lockplane(lockplane::Conn),
    /// To Redis.
    Redis(redis::Conn),
    /// To etcd (boxed: its client is large).
    Etcd(Box<etcd::Conn>),
}

impl Conn {
    /// A new client of `kind`; `seed` varies its retry jitter.
    pub async fn connect(kind: Kind, at: &Endpoints, seed: u64) -> anyhow::Result<Self> {
        Ok(match kind {
            Kind::Lockplane => Conn::Lockplane(lockplane::Conn::new(at)),
            Kind::Redis => Conn::Redis(redis::Conn::connect(at, seed).await?),
            Kind::Etcd => Conn::Etcd(Box::new(etcd::Conn::connect(at).await?)),
        })
    }

    /// Takes `key` for `owner` with lease `ttl`, waiting up to `wait` (zero: once, at
    /// once). The grant's fencing token, or `None` when it was not granted in time.
    pub async fn acquire(
        &mut self,
        key: &str,
        owner: &str,
        ttl: Duration,
        wait: Duration,
    ) -> anyhow::Result<Option<u64>> {
        match self {
            Conn::Lockplane(c) => c.acquire(key, owner, ttl, wait).await,
            Conn::Redis(c) => c.acquire(key, owner, ttl, wait).await,
            Conn::Etcd(c) => c.acquire(key, owner, ttl, wait).await,
        }
    }

    /// Whether `key` is held: read at the leader after confirming leadership when
    /// `linearizable`, else the cheapest read the system offers (Lockplane `cached`, an etcd
    /// serializable read; Redis has one kind).
    pub async fn is_held(
        &mut self,
        key: &str,
        linearizable: bool,
    ) -> anyhow::Result<(bool, Option<u64>)> {
        match self {
            Conn::Lockplane(c) => c.is_held(key, linearizable).await,
            Conn::Redis(c) => c.is_held(key).await.map(|held| (held, None)),
            Conn::Etcd(c) => c.is_held(key, linearizable).await.map(|held| (held, None)),
        }
    }

    /// The fencing token of `key`'s holder (`None`: free) by the cheapest read, and the
    /// version of the state it shows. Lockplane only: the others' reads do not say which
    /// grant they show.
    pub async fn holder_token(&mut self, key: &str) -> anyhow::Result<(Option<u64>, u64)> {
        match self {
            Conn::Lockplane(c) => c.holder_token(key).await,
            Conn::Redis(_) | Conn::Etcd(_) => {
                anyhow::bail!("only Lockplane's reads say which grant they show")
            }
        }
    }

    /// Gives `key` back; false when the caller no longer held it.
    pub async fn release(&mut self, key: &str, owner: &str, token: u64) -> anyhow::Result<bool> {
        match self {
            Conn::Lockplane(c) => c.release(key, owner, token).await,
            Conn::Redis(c) => c.release(key, owner, token).await,
            Conn::Etcd(c) => c.release(key, owner, token).await,
        }
    }

    /// Opens a session (a lease many locks can share) that ends `ttl` after its last
    /// keepalive; `name` names it where the system lets the client choose (Redis). Its id.
    pub async fn open_session(&mut self, name: &str, ttl: Duration) -> anyhow::Result<String> {
        match self {
            Conn::Lockplane(c) => c.open_session(ttl).await,
            Conn::Redis(c) => c.open_session(name, ttl).await,
            Conn::Etcd(c) => c.open_session(ttl).await,
        }
    }

    /// Keeps a session this client opened alive for another `ttl`; false when it had
    /// already ended.
    pub async fn keepalive(&mut self, session: &str, ttl: Duration) -> anyhow::Result<bool> {
        match self {
            Conn::Lockplane(c) => c.keepalive(session).await,
            Conn::Redis(c) => c.keepalive(session, ttl).await,
            Conn::Etcd(c) => c.keepalive(session).await,
        }
    }
}
