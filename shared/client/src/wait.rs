//! Waits longer than one call may hold (the server's per-call limit, 5 minutes), down to
//! waiting forever, without ever losing the place in the queue.
//!
//! The client waits in a chain of calls that share one `request_id`. Some time before a
//! call's wait ends (at `step − overlap`), it sends the next call: the server renews the
//! queued wait to end `step` later and keeps its place, and the older call, once its own
//! deadline passes, answers `503 /problems/wait-renewed` ("decided nothing"). A grant
//! reaches whichever calls are open. The newest call's answer decides; older calls'
//! answers are superseded, except a grant, which is always the caller's. Should a renewal
//! arrive after the older call's wait was already over (the cluster stalled for longer than
//! the overlap), the wait starts again at the back of the queue. Dropping the future drops
//! every open call, and the server takes the wait out of the queue.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{AcquireOptions, Client, Grant};
use crate::error::ClientError;

/// How long before a call's wait ends its renewal is sent: a quarter of the step, at most
/// 10 s.
fn overlap(step: Duration) -> Duration {
    (step / 4).min(Duration::from_secs(10))
}

/// The pause before replacing a newest call that failed with an unknown outcome.
fn retry_pause(error: &ClientError) -> Duration {
    match error {
        ClientError::Unavailable { retry_after, .. } => (*retry_after).min(Duration::from_secs(5)),
        _ => Duration::from_millis(200),
    }
}

impl Client {
    /// Acquires `key` waiting up to `options.wait` (`Duration::MAX`: for ever) in steps of
    /// `options.wait_step`.
    pub(crate) async fn acquire_in_steps(
        &self,
        key: &str,
        options: &AcquireOptions,
    ) -> Result<Grant, ClientError> {
        in_steps(self, key, options).await
    }
}

/// [`Client::acquire_in_steps`].
async fn in_steps(
    client: &Client,
    key: &str,
    options: &AcquireOptions,
) -> Result<Grant, ClientError> {
    let mut options = options.clone();
    options
        .request_id
        .get_or_insert_with(|| format!("sdk-{:016x}{:016x}", random_u64(1), random_u64(2)));
    let chain = Chain {
        client: client.clone(),
        key: key.to_string(),
        step: options
            .wait_step
            .clamp(Duration::from_secs(1), crate::client::MAX_CALL_WAIT),
        give_up: Instant::now().checked_add(options.wait),
        options,
    };
    let mut calls = JoinSet::new();
    let mut newest = 0u64;
    let mut renew_at = chain.start(&mut calls, newest, Duration::ZERO);
    loop {
        tokio::select! {
            joined = calls.join_next() => {
                let Some(joined) = joined else {
                    return Err(ClientError::Transport(format!("the wait for {key} lost its calls")));
                };
                let (call, answer) = joined.map_err(|e| ClientError::Transport(e.to_string()))?;
                match answer {
                    Ok(grant) => return Ok(grant),
                    Err(_) if call != newest => {}
                    Err(error) if is_unknown(&error) && chain.time_left() => {
                        newest += 1;
                        renew_at = chain.start(&mut calls, newest, retry_pause(&error));
                    }
                    Err(error) => return Err(error),
                }
            }
            () = sleep_until(renew_at) => {
                newest += 1;
                renew_at = chain.start(&mut calls, newest, Duration::ZERO);
            }
        }
    }
}

/// One long wait: the calls it is made of share the key, the options and the request id.
struct Chain {
    client: Client,
    key: String,
    options: AcquireOptions,
    step: Duration,
    /// When the whole wait ends; `None` for ever.
    give_up: Option<Instant>,
}

/// The open calls of a chain, each answering with its number.
type Calls = JoinSet<(u64, Result<Grant, ClientError>)>;

impl Chain {
    /// Starts call number `call` after `pause`, waiting one step or what is left; when the
    /// call after it is due (`None` when this call's wait reaches the end of the whole wait).
    fn start(&self, calls: &mut Calls, call: u64, pause: Duration) -> Option<Instant> {
        let begins = Instant::now() + pause;
        let left = self
            .give_up
            .map_or(Duration::MAX, |end| end.saturating_duration_since(begins));
        let wait = self.step.min(left);
        let (client, key, options) = (self.client.clone(), self.key.clone(), self.options.clone());
        calls.spawn(async move {
            tokio::time::sleep_until(begins).await;
            (call, client.acquire_once(&key, &options, wait).await)
        });
        (wait < left).then(|| begins + self.step - overlap(self.step))
    }

    fn time_left(&self) -> bool {
        self.give_up.is_none_or(|end| Instant::now() < end)
    }
}

/// True for an answer that decided nothing: retrying with the same request id is safe.
fn is_unknown(error: &ClientError) -> bool {
    error.is_retryable() || matches!(error, ClientError::WaitRenewed(_))
}

/// 64 bits from the operating system's randomness (through std's randomly keyed hasher).
fn random_u64(salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(salt);
    hasher.finish()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_overlap_the_end_of_each_step() {
        assert_eq!(
            overlap(Duration::from_secs(30)),
            Duration::from_millis(7_500)
        );
        assert_eq!(overlap(Duration::from_secs(300)), Duration::from_secs(10));
        assert_eq!(overlap(Duration::from_secs(4)), Duration::from_secs(1));
    }
}
