//! The one error-code table: every [`ErrorCode`] with its gRPC code, HTTP status, stable
//! problem `type` and retry class, and the conversion of an [`ErrorDetail`] to and from a
//! gRPC status (the detail travels in `grpc-status-details-bin`).
//!
//! Servers build failures with [`error_status`]; clients turn any `tonic::Status` into an
//! [`RpcError`], which separates what may be retried (elsewhere or later) from definite
//! rejections.

use prost::Message;
use tonic::Code;

use crate::lock::{ErrorCode, ErrorDetail};

/// One row of the table.
struct Row {
    grpc: Code,
    http: u16,
    problem_type: &'static str,
    retryable: bool,
}

const fn row(grpc: Code, http: u16, problem_type: &'static str, retryable: bool) -> Row {
    Row {
        grpc,
        http,
        problem_type,
        retryable,
    }
}

fn table(code: ErrorCode) -> Row {
    use ErrorCode as E;
    match code {
        E::Internal => row(Code::Internal, 500, "/problems/internal", false),
        E::InvalidArgument => row(
            Code::InvalidArgument,
            400,
            "/problems/invalid-argument",
            false,
        ),
        E::Held => row(Code::FailedPrecondition, 409, "/problems/held", false),
        E::LockDelayed => row(
            Code::FailedPrecondition,
            409,
            "/problems/lock-delayed",
            false,
        ),
        E::NotHeld => row(Code::NotFound, 404, "/problems/not-held", false),
        E::NotHolder => row(Code::FailedPrecondition, 409, "/problems/not-holder", false),
        E::TooManyWaiters => row(
            Code::ResourceExhausted,
            429,
            "/problems/too-many-waiters",
            false,
        ),
        E::TooManyLocksInSession => row(
            Code::ResourceExhausted,
            429,
            "/problems/too-many-locks-in-session",
            false,
        ),
        E::SessionNotFound => row(Code::NotFound, 404, "/problems/session-not-found", false),
        E::SessionConflict => row(
            Code::AlreadyExists,
            409,
            "/problems/session-conflict",
            false,
        ),
        E::WaitNotFound => row(Code::NotFound, 404, "/problems/wait-not-found", false),
        E::RequestIdReused => row(
            Code::AlreadyExists,
            409,
            "/problems/request-id-reused",
            false,
        ),
        E::WaitTimedOut => row(
            Code::DeadlineExceeded,
            408,
            "/problems/wait-timed-out",
            false,
        ),
        E::WaitEnded => row(Code::Aborted, 409, "/problems/wait-ended", false),
        E::NotLeader => row(Code::Unavailable, 503, "/problems/not-leader", true),
        E::Unavailable => row(Code::Unavailable, 503, "/problems/unavailable", true),
        E::UnknownGroup => row(Code::Unavailable, 503, "/problems/unknown-group", true),
        E::NotInitialized => row(Code::Unavailable, 503, "/problems/not-initialized", true),
        E::AlreadyInitialized => row(
            Code::AlreadyExists,
            409,
            "/problems/already-initialized",
            false,
        ),
        E::NodeInUse => row(
            Code::FailedPrecondition,
            409,
            "/problems/node-in-use",
            false,
        ),
        E::UnknownNode => row(Code::NotFound, 404, "/problems/unknown-node", false),
        E::Unauthenticated => row(
            Code::Unauthenticated,
            401,
            "/problems/unauthenticated",
            false,
        ),
        E::NotFound => row(Code::NotFound, 404, "/problems/not-found", false),
        E::KeyInUse => row(Code::AlreadyExists, 409, "/problems/key-in-use", false),
        E::TooManyKeys => row(
            Code::ResourceExhausted,
            429,
            "/problems/too-many-keys",
            false,
        ),
        E::RateLimited => row(Code::ResourceExhausted, 429, "/problems/rate-limited", true),
        E::QuotaExceeded => row(
            Code::ResourceExhausted,
            429,
            "/problems/quota-exceeded",
            false,
        ),
        E::WaitRenewed => row(Code::Unavailable, 503, "/problems/wait-renewed", false),
        E::PermissionDenied => row(
            Code::PermissionDenied,
            403,
            "/problems/permission-denied",
            false,
        ),
    }
}

impl ErrorCode {
    /// The gRPC status code this error travels with.
    pub fn grpc_code(self) -> Code {
        table(self).grpc
    }

    /// The HTTP status the gateway answers with.
    pub fn http_status(self) -> u16 {
        table(self).http
    }

    /// The stable problem+json `type` (a relative URI reference).
    pub fn problem_type(self) -> &'static str {
        table(self).problem_type
    }

    /// True when the same request may succeed if sent again, at the leader or later.
    pub fn is_retryable(self) -> bool {
        table(self).retryable
    }
}

impl ErrorDetail {
    /// A detail with just a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code as i32,
            message: message.into(),
            ..Self::default()
        }
    }

    /// The code, `Internal` when the number is unknown to this build.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::try_from(self.code).unwrap_or(ErrorCode::Internal)
    }
}

/// The gRPC status carrying `detail`, with the code from the table.
pub fn error_status(detail: ErrorDetail) -> tonic::Status {
    let code = detail.error_code().grpc_code();
    let message = detail.message.clone();
    tonic::Status::with_details(code, message, detail.encode_to_vec().into())
}

/// A failed call, as a client sees it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RpcError {
    /// Worth sending again: to the leader named in the detail, or after a pause.
    #[error("retryable: {}", .0.message)]
    Retryable(Box<ErrorDetail>),
    /// A definite answer: sending the same request again gets the same one.
    #[error("rejected: {}", .0.message)]
    Rejected(Box<ErrorDetail>),
}

impl RpcError {
    /// The error carrying `detail`, classed by its code.
    pub fn new(detail: ErrorDetail) -> Self {
        if detail.error_code().is_retryable() {
            RpcError::Retryable(Box::new(detail))
        } else {
            RpcError::Rejected(Box::new(detail))
        }
    }

    /// The detail, whichever the class.
    pub fn detail(&self) -> &ErrorDetail {
        match self {
            RpcError::Retryable(d) | RpcError::Rejected(d) => d,
        }
    }

    /// The code, whichever the class.
    pub fn code(&self) -> ErrorCode {
        self.detail().error_code()
    }
}

impl From<tonic::Status> for RpcError {
    /// Reads the detail a Lockplane server attached; a status without one (the transport
    /// failed, a deadline passed, a proxy answered) is classed by its gRPC code. A bare
    /// `INTERNAL` is the transport's too (tonic reports an HTTP/2 stream or connection reset
    /// — a node stopping mid-call — as `INTERNAL: h2 protocol error`), so it is retryable:
    /// the outcome is unknown, and every Lockplane write can be retried safely (acquires by
    /// `request_id`, renew and release by `(owner, token)`).
    fn from(status: tonic::Status) -> Self {
        let detail = ErrorDetail::decode(status.details()).ok().filter(|d| {
            ErrorCode::try_from(d.code).is_ok() && (d.code != 0 || !d.message.is_empty())
        });
        let detail = detail.unwrap_or_else(|| {
            let code = match status.code() {
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Unknown
                | Code::Internal
                | Code::Aborted => ErrorCode::Unavailable,
                Code::InvalidArgument => ErrorCode::InvalidArgument,
                _ => ErrorCode::Internal,
            };
            ErrorDetail::new(code, status.message())
        });
        RpcError::new(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ErrorCode; 29] = [
        ErrorCode::Internal,
        ErrorCode::InvalidArgument,
        ErrorCode::Held,
        ErrorCode::LockDelayed,
        ErrorCode::NotHeld,
        ErrorCode::NotHolder,
        ErrorCode::TooManyWaiters,
        ErrorCode::TooManyLocksInSession,
        ErrorCode::SessionNotFound,
        ErrorCode::SessionConflict,
        ErrorCode::WaitNotFound,
        ErrorCode::RequestIdReused,
        ErrorCode::WaitTimedOut,
        ErrorCode::NotLeader,
        ErrorCode::Unavailable,
        ErrorCode::UnknownGroup,
        ErrorCode::WaitEnded,
        ErrorCode::NotInitialized,
        ErrorCode::AlreadyInitialized,
        ErrorCode::NodeInUse,
        ErrorCode::UnknownNode,
        ErrorCode::Unauthenticated,
        ErrorCode::NotFound,
        ErrorCode::KeyInUse,
        ErrorCode::TooManyKeys,
        ErrorCode::RateLimited,
        ErrorCode::QuotaExceeded,
        ErrorCode::WaitRenewed,
        ErrorCode::PermissionDenied,
    ];

    #[test]
    fn every_code_has_a_distinct_problem_type() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ALL {
            let problem_type = code.problem_type();
            assert!(problem_type.starts_with("/problems/"), "{problem_type}");
            assert!(seen.insert(problem_type), "{problem_type} used twice");
        }
    }

    #[test]
    fn a_status_round_trips_its_detail_and_class() {
        for code in ALL {
            let mut detail = ErrorDetail::new(code, format!("{code:?} happened"));
            detail.leader_addr = Some("127.0.0.1:1".into());
            let status = error_status(detail.clone());
            assert_eq!(status.code(), code.grpc_code());
            let error = RpcError::from(status);
            assert_eq!(error.detail(), &detail);
            assert_eq!(matches!(error, RpcError::Retryable(_)), code.is_retryable());
        }
    }

    #[test]
    fn a_bare_status_is_classed_by_its_grpc_code() {
        let error = RpcError::from(tonic::Status::unavailable("connection refused"));
        assert_eq!(error.code(), ErrorCode::Unavailable);
        assert!(matches!(error, RpcError::Retryable(_)));
        let reset = tonic::Status::internal("h2 protocol error: http2 error");
        assert!(matches!(RpcError::from(reset), RpcError::Retryable(_)));
        let error = RpcError::from(tonic::Status::permission_denied("no"));
        assert_eq!(error.code(), ErrorCode::Internal);
        assert!(matches!(error, RpcError::Rejected(_)));
    }
}
