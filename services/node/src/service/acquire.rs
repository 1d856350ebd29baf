//! `Acquire`: a grant at once, or a place in the key's FIFO queue held until the grant (or
//! the end of the wait) is applied. A caller that goes away leaves the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lock_core::{Acquire, Command, LockError, LockKey, Millis, Reply, WaitEndReason, WaitId};
use lockplane_proto::error_status;
use lockplane_proto::lock::{AcquireReply, AcquireRequest, ErrorCode, ErrorDetail};

use super::{commit, convert, unexpected};
use crate::group::LockGroup;
use crate::raft::WaitOutcome;

/// How long the proposal that takes a gone caller out of the queue may take.
const CANCEL_DEADLINE: Duration = Duration::from_secs(5);

/// What a waiting call keeps back of its deadline (at most half of it) to settle the wait
/// in the log if the deadline comes first, so that the answer states what happened.
const SETTLE_RESERVE: Duration = Duration::from_secs(1);

/// Serves one acquire within `deadline`.
pub async fn acquire(
    group: Arc<LockGroup>,
    request: AcquireRequest,
    deadline: Duration,
) -> Result<AcquireReply, tonic::Status> {
    let started = Instant::now();
    let key = convert::key(request.key)?;
    let command = Command::Acquire(Acquire {
        key: key.clone(),
        owner: request.owner,
        ttl_ms: request.ttl_ms,
        wait_ms: request.wait_ms,
        session: convert::session(request.session),
        request_id: request.request_id,
        lock_delay_ms: request.lock_delay_ms,
        tenant_quota: request.tenant_quota,
    });
    match commit(&group, command, deadline).await? {
        Reply::Granted(grant) => Ok(AcquireReply {
            fencing_token: grant.token.0,
            ttl_ms: grant.ttl_ms,
            session: grant.session.map(|s| s.0),
            waited: false,
        }),
        Reply::Queued {
            wait,
            deadline: until,
            ..
        } => {
            let remaining = deadline.saturating_sub(started.elapsed());
            let queued = QueuedWait {
                group,
                key,
                wait,
                until,
                settled: false,
            };
            queued.wait_for_turn(remaining).await
        }
        other => Err(unexpected("acquire", &other)),
    }
}

/// A wait whose caller is still blocked. Dropped before its outcome (the caller went away),
/// it abandons the wait, so that the wait cannot hold the line or be granted to no one —
/// unless a later call by the same waiter renewed it, which then holds the place. (If the
/// node is shutting down, the wait's own deadline ends it instead.)
struct QueuedWait {
    group: Arc<LockGroup>,
    key: LockKey,
    wait: WaitId,
    /// The wait's deadline as this call knows it (leader time).
    until: Millis,
    /// True once the outcome is known, or this call's abandon was applied; until then a
    /// drop (again) abandons the wait.
    settled: bool,
}

impl QueuedWait {
    fn abandon(&self) -> Command {
        Command::AbandonWait {
            key: self.key.clone(),
            wait: self.wait,
            deadline: self.until,
        }
    }

    /// Blocks until the wait is granted or ends, or until `remaining` (less a reserve)
    /// runs out; then settles the wait in the log and answers what that decided: `408`
    /// only when the wait was really cancelled.
    async fn wait_for_turn(mut self, remaining: Duration) -> Result<AcquireReply, tonic::Status> {
        let group = Arc::clone(&self.group);
        let mut outcome = group.state_machine().waits().watch(self.wait);
        let settle = SETTLE_RESERVE.min(remaining / 2);
        let waited = tokio::select! {
            waited = tokio::time::timeout(remaining - settle, &mut outcome) => waited,
            unfit = group.quorum().lost() => {
                return Err(unavailable(&format!(
                    "this node stopped acting as the group's leader while the caller was \
                     queued ({}); a new leader keeps the wait: retry with the same request_id",
                    unfit.describe()
                )));
            }
        };
        if let Ok(delivered) = waited {
            self.settled = true;
            return match delivered {
                Ok(done) => answer(done),
                Err(_) => Err(unavailable(
                    "the lock group stopped while the caller was queued",
                )),
            };
        }
        let settled = group.propose(self.abandon(), settle).await;
        self.settled = settled.is_ok();
        match settled {
            Ok(Ok(Reply::WaitCancelled)) => Err(error_status(ErrorDetail::new(
                ErrorCode::WaitTimedOut,
                "request deadline passed while queued; the wait was cancelled",
            ))),
            Ok(Ok(Reply::WaitRenewed { .. })) => Err(error_status(ErrorDetail::new(
                ErrorCode::WaitRenewed,
                "request deadline passed while queued; the wait goes on for a later acquire \
                 by the same owner (retry with the same request_id to follow it)",
            ))),
            Ok(Err(LockError::WaitNotFound)) => match outcome.try_recv() {
                Ok(done) => answer(done),
                Err(_) => Err(unavailable(
                    "request deadline passed while queued; the wait's outcome is not known here",
                )),
            },
            Ok(Ok(other)) => Err(unexpected("abandon-wait", &other)),
            Ok(Err(refused)) => Err(convert::lock_error(refused, group.now_ms())),
            Err(failed) => Err(convert::propose_error(failed)),
        }
    }
}

impl Drop for QueuedWait {
    fn drop(&mut self) {
        self.group.state_machine().waits().forget(self.wait);
        if self.settled {
            return;
        }
        let (group, command) = (Arc::clone(&self.group), self.abandon());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = group.propose(command, CANCEL_DEADLINE).await;
            });
        }
    }
}

/// The answer to a caller whose wait was decided.
fn answer(outcome: WaitOutcome) -> Result<AcquireReply, tonic::Status> {
    match outcome {
        WaitOutcome::Granted {
            token,
            ttl_ms,
            session,
        } => Ok(AcquireReply {
            fencing_token: token.0,
            ttl_ms,
            session: session.map(|s| s.0),
            waited: true,
        }),
        WaitOutcome::Ended(reason) => {
            let (code, message) = match reason {
                WaitEndReason::TimedOut => (ErrorCode::WaitTimedOut, "wait timed out"),
                WaitEndReason::Cancelled => (ErrorCode::WaitEnded, "wait was cancelled"),
                WaitEndReason::SessionEnded => (ErrorCode::WaitEnded, "the wait's session ended"),
            };
            Err(error_status(ErrorDetail::new(code, message)))
        }
    }
}

/// A retryable refusal: the outcome is not known, and retrying with the same request id
/// is safe.
fn unavailable(message: &str) -> tonic::Status {
    let mut detail = ErrorDetail::new(ErrorCode::Unavailable, message);
    detail.retry_after_ms = Some(convert::RETRY_AFTER_MS);
    error_status(detail)
}
