//! Sending a call to whichever node can serve it: start anywhere, follow `NOT_LEADER` hints
//! to the leader, and retry retryable failures with a pause until a deadline.

use std::future::Future;
use std::time::Duration;

use tonic::transport::Channel;

use crate::dial::Dialer;

use crate::error::RpcError;

/// The pause before retrying when no leader is known.
const PAUSE: Duration = Duration::from_millis(100);

/// How long calls may keep failing below Lockplane (nothing listens, a TLS mismatch, a
/// proxy) before the caller is told, however long its patience for elections.
const TRANSPORT_PATIENCE: Duration = Duration::from_secs(5);

/// Calls `call` with a channel (from `dialer`) to `first`, then to the leader each
/// `NOT_LEADER` names, retrying retryable failures after a pause until `patience` has
/// passed. Returns the first success or definite rejection, or the last retryable failure.
pub async fn at_leader<T, F, Fut>(
    dialer: &Dialer,
    first: &str,
    patience: Duration,
    mut call: F,
) -> Result<T, RpcError>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let give_up = tokio::time::Instant::now() + patience;
    let mut addr = first.to_string();
    let mut transport_failing_since: Option<tokio::time::Instant> = None;
    loop {
        let status = match call(dialer.channel(&addr)?).await {
            Ok(reply) => return Ok(reply.into_inner()),
            Err(status) => status,
        };
        let bare = status.details().is_empty();
        let failure = RpcError::from(status);
        let RpcError::Retryable(detail) = &failure else {
            return Err(failure);
        };
        let now = tokio::time::Instant::now();
        transport_failing_since = bare.then(|| transport_failing_since.unwrap_or(now));
        let transport_exhausted = transport_failing_since
            .is_some_and(|since| now.duration_since(since) >= TRANSPORT_PATIENCE);
        if now >= give_up || transport_exhausted {
            return Err(failure);
        }
        match &detail.leader_addr {
            Some(leader) if *leader != addr => addr = leader.clone(),
            _ => {
                let pause = detail.retry_after_ms.map_or(PAUSE, Duration::from_millis);
                tokio::time::sleep(pause.min(PAUSE * 10)).await;
            }
        }
    }
}
