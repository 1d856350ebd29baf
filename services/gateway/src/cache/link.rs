//! The gateway's connection to Redis, a single server or a Redis Cluster: made in the
//! background (the gateway starts and serves while Redis is down), reconnected by the
//! client library, and put aside for a moment after a failure so that while Redis is down
//! or slow each status read pays at most one short timeout, then goes to the leader.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How long one Redis command may take before the read falls back to the leader.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(50);

/// How long Redis is left alone after a failed or slow command.
const REST_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The URL scheme of a Redis Cluster: `redis-cluster://HOST:PORT,HOST:PORT,…` (any of its
/// masters; the rest are discovered).
pub const CLUSTER_SCHEME: &str = "redis-cluster://";

/// Where the cache lives, as parsed from `--redis`.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server (`redis://` or `rediss://`, with database and credentials as the URL
    /// says).
    Single(redis::Client),
    /// A Redis Cluster.
    Cluster(ClusterClient),
}

impl RedisTarget {
    /// Parses `url`: `redis://…`, `rediss://…`, or `redis-cluster://HOST:PORT,…`.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(nodes) = url.strip_prefix(CLUSTER_SCHEME) {
            let nodes: Vec<String> = nodes
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("redis://{n}"))
                .collect();
            if nodes.is_empty() {
                return Err(format!(
                    "{url:?} names no node: a Redis Cluster is {CLUSTER_SCHEME}HOST:PORT[,HOST:PORT…]"
                ));
            }
            return ClusterClient::builder(nodes)
                .connection_timeout(REDIS_TIMEOUT * 10)
                .response_timeout(REDIS_TIMEOUT)
                .retries(1)
                .build()
                .map(Self::Cluster)
                .map_err(|e| format!("{url:?} is not a Redis Cluster URL: {e}"));
        }
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(format!(
                "{url:?} is not a Redis URL: use redis://HOST:PORT[/DB], rediss://… (TLS) or \
                 {CLUSTER_SCHEME}HOST:PORT,HOST:PORT…"
            ));
        }
        redis::Client::open(url)
            .map(Self::Single)
            .map_err(|e| format!("{url:?} is not a Redis URL: {e}"))
    }
}

/// An open connection of either kind; cheap to clone (both multiplex one socket).
#[derive(Clone)]
pub enum RedisConn {
    /// To one server, reconnecting by itself.
    Single(ConnectionManager),
    /// To a cluster, following its slots.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The link: the connection once made, and whether Redis is being left alone.
pub struct RedisLink {
    target: RedisTarget,
    conn: Mutex<Option<RedisConn>>,
    connecting: AtomicBool,
    resting_until: Mutex<Option<Instant>>,
}

impl RedisLink {
    /// A link to `target`, not connected yet.
    pub fn new(target: RedisTarget) -> Arc<Self> {
        Arc::new(Self {
            target,
            conn: Mutex::new(None),
            connecting: AtomicBool::new(false),
            resting_until: Mutex::new(None),
        })
    }

    /// The connection to use now, or `None` while there is none yet (one is being made in
    /// the background) or Redis is being left alone after a failure.
    pub fn conn(self: &Arc<Self>) -> Option<RedisConn> {
        {
            let mut resting = self
                .resting_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match *resting {
                Some(until) if until > Instant::now() => return None,
                Some(_) => *resting = None,
                None => {}
            }
        }
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if conn.is_none() && !self.connecting.swap(true, Ordering::AcqRel) {
            tokio::spawn(Arc::clone(self).connect());
        }
        conn
    }

    /// Records a failed or slow command: Redis is left alone for a moment.
    pub fn failed(&self) {
        *self
            .resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + REST_AFTER_FAILURE);
    }

    /// Makes the connection; on failure, rests and lets the next caller try again.
    async fn connect(self: Arc<Self>) {
        let made = match &self.target {
            RedisTarget::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT * 10))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map(RedisConn::Single)
            }
            RedisTarget::Cluster(client) => {
                client.get_async_connection().await.map(RedisConn::Cluster)
            }
        };
        match made {
            Ok(conn) => {
                *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
                tracing::info!("status cache: connected to Redis");
            }
            Err(e) => {
                self.failed();
                tracing::warn!(error = %e, "status cache: cannot connect to Redis; reads go to the leaders");
            }
        }
        self.connecting.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_at_start() {
        assert!(matches!(
            RedisTarget::parse("redis://127.0.0.1:6379/0"),
            Ok(RedisTarget::Single(_))
        ));
        assert!(matches!(
            RedisTarget::parse("redis-cluster://127.0.0.1:7001,127.0.0.1:7002"),
            Ok(RedisTarget::Cluster(_))
        ));
        for bad in [
            "localhost:6379",
            "http://127.0.0.1:6379",
            "redis-cluster://",
            "redis://127.0.0.1:notaport",
        ] {
            let error = RedisTarget::parse(bad).err().unwrap_or_default();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }
}
