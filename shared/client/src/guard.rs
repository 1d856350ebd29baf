//! [`LockGuard`]: a held lock that renews itself at about a third of its TTL (with jitter),
//! reports when it can no longer be trusted, and is released when dropped.
//!
//! Trust rule (DESIGN.md §2): the lock is trusted until `send time of the last acknowledged
//! renew + ttl - margin`. A renew that is refused (`not holder`, `not held`) ends trust at
//! once; one that fails to arrive does not extend it.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{Client, Grant};
use crate::error::ClientError;

/// A held lock. Dropping it releases the lock (in the background).
pub struct LockGuard {
    client: Client,
    grant: Grant,
    lost: watch::Receiver<bool>,
    renewer: JoinHandle<()>,
    released: bool,
}

/// How long before the lease's end the guard stops trusting it: a tenth of the TTL, at
/// least 50 ms (clock drift, a slow network).
fn margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(50))
}

/// A pause of about a third of the TTL, varied by up to ±10% so that many clients do not
/// renew in step.
fn renew_pause(ttl: Duration) -> Duration {
    let third = ttl / 3;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| u64::from(t.subsec_nanos()));
    let spread = (third.as_nanos() as u64 / 5).max(1);
    third - third / 10 + Duration::from_nanos(nanos % spread)
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
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let grant = self.grant.clone();
            runtime.spawn(async move {
                let _ = client
                    .release(&grant.key, &grant.owner, grant.fencing_token)
                    .await;
            });
        }
    }
}

/// Renews until refused or until trust runs out; then marks the lock lost.
async fn renew(client: Client, grant: Grant, granted_at: Instant, lost: watch::Sender<bool>) {
    let ttl = grant.ttl;
    let mut trusted_until = granted_at + ttl - margin(ttl);
    loop {
        let pause = renew_pause(ttl);
        let wake = (Instant::now() + pause).min(trusted_until);
        tokio::time::sleep_until(wake).await;
        if Instant::now() >= trusted_until {
            break;
        }
        let sent = Instant::now();
        let left = trusted_until.saturating_duration_since(sent);
        match client
            .renew_within(&grant.key, &grant.owner, grant.fencing_token, ttl, left)
            .await
        {
            Ok(_) => trusted_until = sent + ttl - margin(ttl),
            Err(e) if e.is_retryable() => {}
            Err(_) => break,
        }
    }
    let _ = lost.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_come_at_about_a_third_of_the_ttl() {
        let ttl = Duration::from_secs(30);
        for _ in 0..100 {
            let pause = renew_pause(ttl);
            assert!(
                pause >= Duration::from_secs(9) && pause <= Duration::from_secs(11),
                "{pause:?}"
            );
        }
        assert_eq!(margin(Duration::from_secs(30)), Duration::from_secs(3));
        assert_eq!(
            margin(Duration::from_millis(100)),
            Duration::from_millis(50)
        );
    }
}
