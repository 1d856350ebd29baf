//! Conversions between `lock-core` values and the `lockplane.lock.v1` messages, and the
//! mapping of every domain error to its [`ErrorCode`].

use std::time::Duration;

use lock_core::{
    Field, Holder, LockError, LockKey, LockStatus, LostReason, Millis, SessionId, TenantId,
    WaitEndReason,
};
use lockplane_proto::lock::{self as pb, ErrorCode, ErrorDetail};
use lockplane_proto::{error_status, human};

use crate::group::ProposeError;

/// The `lock-core` key of a request, or `INVALID_ARGUMENT` when it names none.
pub fn key(key: Option<pb::Key>) -> Result<LockKey, tonic::Status> {
    let key = key.ok_or_else(|| invalid(Field::Key, "key is required"))?;
    Ok(LockKey::new(TenantId(key.tenant), key.name))
}

/// A session id from the wire; 0 is not a session.
pub fn session(id: Option<u64>) -> Option<SessionId> {
    id.filter(|&id| id != 0).map(SessionId)
}

/// The wire form of a holder.
pub fn holder(holder: Holder) -> pb::Holder {
    pb::Holder {
        owner: holder.owner,
        fencing_token: holder.token.0,
        session: holder.session.map(|s| s.0),
    }
}

/// The wire form of a key's status.
pub fn status(status: LockStatus) -> pb::LockStatus {
    pb::LockStatus {
        name: status.key.name.to_string(),
        holder: status.holder.map(holder),
        ttl_remaining_ms: status.ttl_remaining_ms,
        waiters: status.waiters,
    }
}

/// The wire form of why a lock was lost.
pub fn lost_reason(reason: LostReason) -> pb::LostReason {
    match reason {
        LostReason::Expired => pb::LostReason::Expired,
        LostReason::SessionExpired => pb::LostReason::SessionExpired,
        LostReason::SessionClosed => pb::LostReason::SessionClosed,
    }
}

/// The wire form of why a wait ended.
pub fn wait_end_reason(reason: WaitEndReason) -> pb::WaitEndReason {
    match reason {
        WaitEndReason::TimedOut => pb::WaitEndReason::TimedOut,
        WaitEndReason::Cancelled => pb::WaitEndReason::Cancelled,
        WaitEndReason::SessionEnded => pb::WaitEndReason::SessionEnded,
    }
}

/// `INVALID_ARGUMENT` naming `field`.
pub fn invalid(field: Field, message: &str) -> tonic::Status {
    let mut detail = ErrorDetail::new(ErrorCode::InvalidArgument, message);
    detail.field = Some(field.to_string());
    error_status(detail)
}

/// The status answering a command rejected when this node's clock read `now_ms`: the row
/// of the error-code table for each `lock-core` error.
pub fn lock_error(error: LockError, now_ms: Millis) -> tonic::Status {
    error_status(error_detail(error, now_ms))
}

/// The error detail of a command rejected when this node's clock read `now_ms` (also
/// carried per item of a batched reply).
pub fn error_detail(error: LockError, now_ms: Millis) -> ErrorDetail {
    let message = error.to_string();
    let mut detail = ErrorDetail::new(ErrorCode::Internal, message);
    let code = match error {
        LockError::Invalid { field, .. } => {
            detail.field = Some(field.to_string());
            ErrorCode::InvalidArgument
        }
        LockError::Held { holder: h } => {
            detail.holder = Some(holder(h));
            ErrorCode::Held
        }
        LockError::LockDelayed { until_ms } => {
            let left = until_ms.saturating_sub(now_ms);
            detail.message = format!(
                "the lock is in its lock-delay after an expiry until {} (in {})",
                human::instant(until_ms),
                human::duration(Duration::from_millis(left))
            );
            detail.retry_after_ms = Some(left.max(1));
            ErrorCode::LockDelayed
        }
        LockError::NotHeld => ErrorCode::NotHeld,
        LockError::NotHolder => ErrorCode::NotHolder,
        LockError::TooManyWaiters { .. } => ErrorCode::TooManyWaiters,
        LockError::TooManyLocksInSession { .. } => ErrorCode::TooManyLocksInSession,
        LockError::TenantQuota { .. } => ErrorCode::QuotaExceeded,
        LockError::SessionNotFound(_) => ErrorCode::SessionNotFound,
        LockError::SessionConflict(_) => ErrorCode::SessionConflict,
        LockError::WaitNotFound => ErrorCode::WaitNotFound,
        LockError::RequestIdReused => ErrorCode::RequestIdReused,
        LockError::IndexNotIncreasing { .. } => ErrorCode::Internal,
    };
    detail.code = code as i32;
    detail
}

/// How long a caller should wait before retrying on a group without a leader or quorum.
pub(crate) const RETRY_AFTER_MS: u64 = 100;

/// The status answering a proposal or read that did not reach the state machine.
pub fn propose_error(error: ProposeError) -> tonic::Status {
    let message = error.to_string();
    match error {
        ProposeError::NotLeader {
            leader,
            leader_addr,
            ..
        } => {
            let mut detail = ErrorDetail::new(ErrorCode::NotLeader, message);
            detail.leader_id = leader;
            detail.leader_addr = leader_addr;
            if leader.is_none() {
                detail.retry_after_ms = Some(RETRY_AFTER_MS);
            }
            error_status(detail)
        }
        ProposeError::Unavailable { .. } => {
            let mut detail = ErrorDetail::new(ErrorCode::Unavailable, message);
            detail.retry_after_ms = Some(RETRY_AFTER_MS);
            error_status(detail)
        }
    }
}

/// The status of a request for a group this node does not host.
pub fn unknown_group(group: u32) -> tonic::Status {
    error_status(ErrorDetail::new(
        ErrorCode::UnknownGroup,
        format!("group {group} is not hosted on this node"),
    ))
}
