//! HTTP errors as `application/problem+json` (RFC 9457): `{type, title, status, detail}`
//! plus the extension members a client needs (`holder`, `field`). Codes, statuses and
//! types come from the one error-code table in `lockplane-proto`; internal details are
//! logged by the nodes, not returned.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lockplane_proto::RpcError;
use lockplane_proto::lock::{ErrorCode, ErrorDetail};
use serde_json::{Value, json};

/// One failed request.
#[derive(Debug, Clone)]
pub struct Problem {
    code: ErrorCode,
    detail: String,
    extra: serde_json::Map<String, Value>,
    retry_after_s: Option<u64>,
}

impl Problem {
    /// A problem of `code` explained by `detail`.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            extra: serde_json::Map::new(),
            retry_after_s: None,
        }
    }

    /// `400` naming the bad field.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, detail).with("field", json!(field))
    }

    /// Adds an extension member.
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.extra.insert(name.to_string(), value);
        self
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// What went wrong, for a human.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Asks the client to retry after `seconds` (`Retry-After`).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds.max(1));
        self
    }
}

impl From<RpcError> for Problem {
    fn from(error: RpcError) -> Self {
        let detail: &ErrorDetail = error.detail();
        let code = error.code();
        let mut problem = Problem::new(code, detail.message.clone());
        if let Some(field) = &detail.field {
            problem = problem.with("field", json!(field));
        }
        if let Some(holder) = &detail.holder {
            problem = problem.with(
                "holder",
                json!({ "owner": holder.owner, "fencing_token": holder.fencing_token }),
            );
        }
        if code.is_retryable() || code.http_status() == 503 {
            let ms = detail.retry_after_ms.unwrap_or(1_000);
            problem = problem.retry_after(ms.div_ceil(1_000));
        }
        problem
    }
}

/// A title per code: short, stable, human.
fn title(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "invalid request",
        ErrorCode::Held => "lock is held",
        ErrorCode::LockDelayed => "lock is in its lock-delay",
        ErrorCode::NotHeld => "lock is not held",
        ErrorCode::NotHolder => "not the holder",
        ErrorCode::TooManyWaiters | ErrorCode::TooManyLocksInSession => "limit reached",
        ErrorCode::SessionNotFound => "session not found",
        ErrorCode::SessionConflict => "session exists with other settings",
        ErrorCode::WaitNotFound => "wait not found",
        ErrorCode::RequestIdReused => "request id reused",
        ErrorCode::WaitTimedOut => "wait timed out",
        ErrorCode::WaitEnded => "wait ended",
        ErrorCode::NotLeader
        | ErrorCode::Unavailable
        | ErrorCode::UnknownGroup
        | ErrorCode::NotInitialized => "service unavailable",
        ErrorCode::Unauthenticated => "unauthenticated",
        ErrorCode::AlreadyInitialized
        | ErrorCode::NodeInUse
        | ErrorCode::UnknownNode
        | ErrorCode::KeyInUse
        | ErrorCode::TooManyKeys => "cluster administration error",
        ErrorCode::NotFound => "not found",
        ErrorCode::RateLimited => "too many requests",
        ErrorCode::QuotaExceeded => "quota of held locks reached",
        ErrorCode::WaitRenewed => "wait continues under a later request",
        ErrorCode::PermissionDenied => "permission denied",
        ErrorCode::Internal => "internal error",
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = serde_json::Map::new();
        body.insert("type".into(), json!(self.code.problem_type()));
        body.insert("title".into(), json!(title(self.code)));
        body.insert("status".into(), json!(status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        body.extend(self.extra);
        let mut response = (status, axum::Json(Value::Object(body))).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
