//! The error answers of the routes, typed for the OpenAPI document: each route names the
//! sets it can answer with in its `#[utoipa::path]`.

use utoipa::IntoResponses;

use crate::model::ProblemBody;

/// The errors every API route can answer.
#[derive(IntoResponses)]
pub enum CommonErrors {
    /// A field, a parameter, the key or the body is invalid (`field` names it).
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(#[to_schema] ProblemBody),
    /// Missing or unknown API key.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(#[to_schema] ProblemBody),
    /// The lock is not held, the session does not exist (or is another tenant's), or there
    /// is no such route.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(#[to_schema] ProblemBody),
    /// The tenant's request rate (`Retry-After`), or for an acquire, the key's queue, the
    /// session or the tenant's quota of held locks is at its limit.
    #[response(status = 429, content_type = "application/problem+json")]
    Limited(#[to_schema] ProblemBody),
    /// No leader or quorum in time; retry (an acquire with the same `request_id`) after
    /// `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(#[to_schema] ProblemBody),
}

/// `409`: the caller's view of a lock or session is out of date.
#[derive(IntoResponses)]
pub enum ConflictError {
    /// Held by someone else and `wait_ms` is 0 (`holder`), in its lock-delay, the wait was
    /// cancelled or its session ended, not the holder (stale or foreign `(owner,
    /// fencing_token)`), a `request_id` used for another request, or a session id that
    /// exists with other settings.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(#[to_schema] ProblemBody),
}

/// `408`: a blocking acquire's wait ran out in the queue.
#[derive(IntoResponses)]
pub enum WaitTimedOut {
    /// The wait ran out.
    #[response(status = 408, content_type = "application/problem+json")]
    TimedOut(#[to_schema] ProblemBody),
}
