//! Sending a call to whichever node can serve it: start anywhere, follow `NOT_LEADER` hints
//! to the leader, and retry retryable failures with a pause until a deadline.

use std::future::Future;
use std::time::Duration;

use tonic::transport::Channel;

use crate::dial::Dialer;

use crate::error::RpcError;

/// The pause before retrying when no leader is known.
const PAUSE: Duration = Duration::from_millis(100);

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
    loop {
        let failure = match call(dialer.channel(&addr)?).await {
            Ok(reply) => return Ok(reply.into_inner()),
            Err(status) => RpcError::from(status),
        };
        let RpcError::Retryable(detail) = &failure else {
            return Err(failure);
        };
        if tokio::time::Instant::now() >= give_up {
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
