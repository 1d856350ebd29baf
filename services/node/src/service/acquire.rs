//! `Acquire`: a grant at once, or a place in the key's FIFO queue held until the grant (or
//! the end of the wait) is applied. A caller that goes away leaves the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lock_core::{Acquire, Command, LockKey, Reply, WaitEndReason, WaitId};
use lockplane_proto::error_status;
use lockplane_proto::lock::{AcquireReply, AcquireRequest, ErrorCode, ErrorDetail};

use super::{commit, convert, unexpected};
use crate::group::LockGroup;
use crate::raft::WaitOutcome;

/// How long the proposal that takes a gone caller out of the queue may take.
const CANCEL_DEADLINE: Duration = Duration::from_secs(5);

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
        Reply::Queued { wait, .. } => {
            let remaining = deadline.saturating_sub(started.elapsed());
            wait_for_turn(group, key, wait, remaining).await
        }
        other => Err(unexpected("acquire", &other)),
    }
}

/// Blocks until the wait is granted or ends, or `remaining` runs out (then, like a caller
/// that disconnects, the wait is cancelled).
async fn wait_for_turn(
    group: Arc<LockGroup>,
    key: LockKey,
    wait: WaitId,
    remaining: Duration,
) -> Result<AcquireReply, tonic::Status> {
    let outcome = group.state_machine().waits().watch(wait);
    let mut queued = QueuedWait {
        group: Some(group),
        key,
        wait,
    };
    let outcome = tokio::time::timeout(remaining, outcome).await;
    match outcome {
        Ok(Ok(WaitOutcome::Granted {
            token,
            ttl_ms,
            session,
        })) => {
            queued.group = None;
            Ok(AcquireReply {
                fencing_token: token.0,
                ttl_ms,
                session: session.map(|s| s.0),
                waited: true,
            })
        }
        Ok(Ok(WaitOutcome::Ended(reason))) => {
            queued.group = None;
            let (code, message) = match reason {
                WaitEndReason::TimedOut => (ErrorCode::WaitTimedOut, "wait timed out"),
                WaitEndReason::Cancelled => (ErrorCode::WaitEnded, "wait was cancelled"),
                WaitEndReason::SessionEnded => (ErrorCode::WaitEnded, "the wait's session ended"),
            };
            Err(error_status(ErrorDetail::new(code, message)))
        }
        Ok(Err(_)) | Err(_) => Err(error_status(ErrorDetail::new(
            ErrorCode::WaitTimedOut,
            "request deadline passed while queued; the wait was cancelled",
        ))),
    }
}

/// A wait whose caller is still blocked; dropping it before the outcome (deadline, caller
/// gone) takes the wait out of the queue so it cannot hold the line or be granted to no one.
/// (If the node is shutting down, the wait's own `wait_ms` ends it instead.)
struct QueuedWait {
    group: Option<Arc<LockGroup>>,
    key: LockKey,
    wait: WaitId,
}

impl Drop for QueuedWait {
    fn drop(&mut self) {
        let Some(group) = self.group.take() else {
            return;
        };
        group.state_machine().waits().forget(self.wait);
        let command = Command::CancelWait {
            key: self.key.clone(),
            wait: self.wait,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = group.propose(command, CANCEL_DEADLINE).await;
            });
        }
    }
}
