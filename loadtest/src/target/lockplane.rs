//! Lockplane through its REST gateway, with the Rust SDK: a blocking acquire waits in the
//! key's FIFO queue at the group's leader.

use std::time::Duration;

use lockplane_client::{AcquireOptions, Client, ClientError};

use super::Endpoints;

/// One SDK client (its own connection pool).
pub struct Conn {
    client: Client,
}

impl Conn {
    pub fn new(at: &Endpoints) -> Self {
        Self {
            client: Client::new(&at.lockplane_url, &at.lockplane_key),
        }
    }

    pub async fn acquire(
        &mut self,
        key: &str,
        owner: &str,
        ttl: Duration,
        wait: Duration,
    ) -> anyhow::Result<Option<u64>> {
        let options = AcquireOptions::new(owner, ttl).wait(wait);
        match self.client.try_acquire(key, &options).await {
            Ok(grant) => Ok(Some(grant.fencing_token)),
            Err(ClientError::Held(_) | ClientError::WaitTimedOut) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `key` is held, by a `cached` (or `linearizable`) read, and the version it
    /// shows.
    pub async fn is_held(
        &mut self,
        key: &str,
        linearizable: bool,
    ) -> anyhow::Result<(bool, Option<u64>)> {
        let status = self.client.status(key, linearizable).await?;
        Ok((status.held, Some(status.version)))
    }

    /// The holder's token (`None`: free) by a `cached` read, and the version it shows.
    pub async fn holder_token(&mut self, key: &str) -> anyhow::Result<(Option<u64>, u64)> {
        let status = self.client.status(key, false).await?;
        Ok((status.fencing_token.filter(|_| status.held), status.version))
    }

    pub async fn release(&mut self, key: &str, owner: &str, token: u64) -> anyhow::Result<bool> {
        match self.client.release(key, owner, token).await {
            Ok(()) => Ok(true),
            Err(ClientError::NotHolder(_) | ClientError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn open_session(&mut self, ttl: Duration) -> anyhow::Result<String> {
        Ok(self.client.create_session(ttl).await?)
    }

    pub async fn keepalive(&mut self, session: &str) -> anyhow::Result<bool> {
        match self.client.keepalive(session).await {
            Ok(_) => Ok(true),
            Err(ClientError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
