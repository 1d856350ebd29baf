//! etcd v3 as its lock recipe is used: one lease per client (as `concurrency.Session`
//! keeps one), and the v3lock service's `Lock` (which blocks until the caller's key is the
//! oldest under the lock's prefix) and `Unlock`. The fencing token is the revision etcd
//! answers the `Lock` with.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use etcd_client::{Client, GetOptions, LeaseKeepAliveStream, LeaseKeeper, LockOptions};

use super::Endpoints;

/// The lease every lock of a client rides on; long enough for any run (no keepalives).
const LEASE_TTL_S: i64 = 3_600;

/// One client: its connection, its lease, the owner keys of the locks it holds (by
/// token), which `Unlock` needs, and the keep-alive streams of the sessions (leases) it
/// opened.
pub struct Conn {
    client: Client,
    lease: i64,
    held: HashMap<u64, Vec<u8>>,
    sessions: HashMap<i64, (LeaseKeeper, LeaseKeepAliveStream)>,
}

impl Conn {
    pub async fn connect(at: &Endpoints) -> anyhow::Result<Self> {
        let mut client = Client::connect(&at.etcd_endpoints, None)
            .await
            .with_context(|| format!("cannot connect to etcd at {:?}", at.etcd_endpoints))?;
        let lease = client.lease_grant(LEASE_TTL_S, None).await?.id();
        Ok(Self {
            client,
            lease,
            held: HashMap::new(),
            sessions: HashMap::new(),
        })
    }

    /// `Lock` under a deadline of `wait` (at least a second: etcd has no try-lock; an
    /// uncontended lock answers at once). The owner is the lease; `owner` is not sent.
    pub async fn acquire(
        &mut self,
        key: &str,
        _owner: &str,
        _ttl: Duration,
        wait: Duration,
    ) -> anyhow::Result<Option<u64>> {
        let options = LockOptions::new().with_lease(self.lease);
        let lock = self.client.lock(key, Some(options));
        match tokio::time::timeout(wait.max(Duration::from_secs(1)), lock).await {
            Ok(Ok(response)) => {
                let token = response.header().map_or(0, |h| h.revision()).max(0) as u64;
                self.held.insert(token, response.key().to_vec());
                Ok(Some(token))
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Ok(None),
        }
    }

    /// Whether any owner key exists under the lock's prefix (`name/`, as v3lock makes
    /// them): a count-only range read, serializable unless `linearizable`.
    pub async fn is_held(&mut self, key: &str, linearizable: bool) -> anyhow::Result<bool> {
        let mut options = GetOptions::new().with_prefix().with_count_only();
        if !linearizable {
            options = options.with_serializable();
        }
        let found = self.client.get(format!("{key}/"), Some(options)).await?;
        Ok(found.count() > 0)
    }

    /// `Unlock` of the owner key the `Lock` of `token` returned; false if this client holds
    /// no such lock.
    pub async fn release(&mut self, _key: &str, _owner: &str, token: u64) -> anyhow::Result<bool> {
        let Some(owner_key) = self.held.remove(&token) else {
            return Ok(false);
        };
        self.client.unlock(owner_key).await?;
        Ok(true)
    }

    /// A session is a lease (etcd's `concurrency.Session`), with its own keep-alive stream.
    pub async fn open_session(&mut self, ttl: Duration) -> anyhow::Result<String> {
        let seconds = ttl.as_secs().max(1) as i64;
        let lease = self.client.lease_grant(seconds, None).await?.id();
        let stream = self.client.lease_keep_alive(lease).await?;
        self.sessions.insert(lease, stream);
        Ok(lease.to_string())
    }

    /// One keep-alive on the lease's stream: false once the lease has expired (TTL 0).
    pub async fn keepalive(&mut self, session: &str) -> anyhow::Result<bool> {
        let lease: i64 = session.parse().context("not a lease id")?;
        let Some((keeper, stream)) = self.sessions.get_mut(&lease) else {
            anyhow::bail!("lease {lease} was not opened by this client");
        };
        keeper.keep_alive().await?;
        match stream.message().await? {
            Some(reply) => Ok(reply.ttl() > 0),
            None => anyhow::bail!("etcd closed the keep-alive stream of lease {lease}"),
        }
    }
}
