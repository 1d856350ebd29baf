//! The OpenAPI 3.1 document of the REST API, generated from the handlers' `#[utoipa::path]`
//! annotations and the typed bodies (`model`), served at `/v1/openapi.json`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::model::ProblemBody;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lockplane REST API",
        version = "1",
        description = "Distributed locks with fencing tokens, TTL leases, FIFO waiters and sessions. \
            Every error is application/problem+json. The session stream \
            (GET /v1/sessions/{id}/stream) is a WebSocket; see docs/api.md for its messages."
    ),
    paths(
        crate::locks::acquire,
        crate::locks::renew,
        crate::locks::release,
        crate::locks::status,
        crate::locks::list,
        crate::sessions::create,
        crate::sessions::keepalive,
        crate::sessions::close,
        crate::stream::stream,
        crate::health,
        crate::ready,
        crate::metrics::serve,
    ),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    tags(
        (name = "locks", description = "Acquire, renew, release, status, listings"),
        (name = "sessions", description = "One lease shared by many locks and waits"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// Declares the `Authorization: Bearer <api-key>` scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /v1/openapi.json`: built once.
pub async fn document() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    });
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}

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
