//! Keeping a lease (a lock's or a session's) alive from the client, and deciding when to
//! stop trusting it.
//!
//! Trust rule (the lock contract, `docs/api.md`): a lease is trusted until `send time of the last acknowledged
//! renew + ttl - margin`. A renew that is refused (`not holder`, `not held`, session gone)
//! ends trust at once; one that fails to arrive does not extend it.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::ClientError;

/// How long before the lease's end the client stops trusting it: a tenth of the TTL, at
/// least 50 ms (clock drift, a slow network).
pub(crate) fn margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(50))
}

/// A pause of about a third of the TTL, varied by up to ±10% so that many clients do not
/// renew in step.
pub(crate) fn renew_pause(ttl: Duration) -> Duration {
    let third = ttl / 3;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| u64::from(t.subsec_nanos()));
    let spread = (third.as_nanos() as u64 / 5).max(1);
    third - third / 10 + Duration::from_nanos(nanos % spread)
}

/// Calls `renew` (given the time left before trust runs out) about every third of `ttl`,
/// for a lease granted at `granted_at`, until a renew is refused or none was acknowledged
/// in time; then sets `lost`.
pub(crate) async fn keep<F, Fut>(
    ttl: Duration,
    granted_at: Instant,
    lost: watch::Sender<bool>,
    mut renew: F,
) where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<(), ClientError>>,
{
    let mut trusted_until = granted_at + ttl - margin(ttl);
    loop {
        let pause = renew_pause(ttl);
        let wake = (Instant::now() + pause).min(trusted_until);
        tokio::time::sleep_until(wake).await;
        if Instant::now() >= trusted_until {
            break;
        }
        let sent = Instant::now();
        match renew(trusted_until.saturating_duration_since(sent)).await {
            Ok(()) => trusted_until = sent + ttl - margin(ttl),
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
