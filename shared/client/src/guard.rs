//! [`LockGuard`]: a held lock that renews itself at about a third of its TTL (with jitter),
//! reports when it can no longer be trusted, and is released when dropped.
//!
//! When to stop trusting it: see `lease`.

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{AcquireOptions, Client, Grant};
use crate::error::ClientError;
use crate::lease;

impl Client {
    /// Acquires `key` and returns a guard that renews the lease in the background until it
    /// is released or dropped, and tells when the lock can no longer be trusted.
    pub async fn acquire(
        &self,
        key: &str,
        options: AcquireOptions,
    ) -> Result<LockGuard, ClientError> {
        let grant = self.try_acquire(key, &options).await?;
        Ok(LockGuard::start(self.clone(), grant))
    }
}

/// A held lock. Dropping it releases the lock: the drop blocks its thread until the
/// release is answered, at most [`crate::DROP_WAIT`] (see `releaser`), so the release is
/// not lost when the runtime or the process ends right after. In async code, prefer
/// [`LockGuard::release`], which does not block.
pub struct LockGuard {
    client: Client,
    grant: Grant,
    lost: watch::Receiver<bool>,
    renewer: JoinHandle<()>,
    released: bool,
}

impl LockGuard {
    pub(crate) fn start(client: Client, grant: Grant) -> Self {
        let (lost_tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(renew(
            client.clone(),
            grant.clone(),
            Instant::now(),
            lost_tx,
        ));
        Self {
            client,
            grant,
            lost,
            renewer,
            released: false,
        }
    }

    /// The fencing token: present it to every resource the lock protects.
    pub fn fencing_token(&self) -> u64 {
        self.grant.fencing_token
    }

    /// The grant.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// True once the lock can no longer be trusted.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Completes when the lock can no longer be trusted (a renew was refused, or none was
    /// acknowledged in time). Stop using the token then.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Stops renewing and releases the lock.
    pub async fn release(mut self) -> Result<(), ClientError> {
        self.released = true;
        self.renewer.abort();
        let (key, owner, token) = (&self.grant.key, &self.grant.owner, self.grant.fencing_token);
        self.client.release(key, owner, token).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released {
            return;
        }
        let grant = &self.grant;
        self.client
            .release_from_drop(&grant.key, &grant.owner, grant.fencing_token);
    }
}

/// Renews until refused or until trust runs out; then marks the lock lost.
async fn renew(client: Client, grant: Grant, granted_at: Instant, lost: watch::Sender<bool>) {
    let ttl = grant.ttl;
    lease::keep(ttl, granted_at, lost, |left| {
        let (client, grant) = (&client, &grant);
        async move {
            client
                .renew_within(&grant.key, &grant.owner, grant.fencing_token, ttl, left)
                .await
                .map(|_| ())
        }
    })
    .await;
}
