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

/// The errors of the lock writes (renew, release).
#[derive(IntoResponses)]
pub enum WriteErrors {
    /// A field, the key or the body is invalid (`field` names it).
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(#[to_schema] ProblemBody),
    /// Missing or unknown API key.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(#[to_schema] ProblemBody),
    /// The lock is not held (or no such route).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(#[to_schema] ProblemBody),
    /// Not the holder: a stale or foreign `(owner, fencing_token)`.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(#[to_schema] ProblemBody),
    /// The tenant's request rate is over its limit (`Retry-After`).
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(#[to_schema] ProblemBody),
    /// No leader or quorum in time; retry after `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(#[to_schema] ProblemBody),
}

/// The errors of an acquire.
#[derive(IntoResponses)]
pub enum AcquireErrors {
    /// A field, the key or the body is invalid (`field` names it).
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(#[to_schema] ProblemBody),
    /// Missing or unknown API key.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(#[to_schema] ProblemBody),
    /// The session does not exist (or no such route).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(#[to_schema] ProblemBody),
    /// The wait ran out in the queue.
    #[response(status = 408, content_type = "application/problem+json")]
    WaitTimedOut(#[to_schema] ProblemBody),
    /// Held by someone else and `wait_ms` is 0 (`holder`), in its lock-delay, or the wait
    /// ended (cancelled, session ended), or the `request_id` was used for another request.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(#[to_schema] ProblemBody),
    /// The request rate, the queue, the session or the tenant's quota is at its limit.
    #[response(status = 429, content_type = "application/problem+json")]
    Limited(#[to_schema] ProblemBody),
    /// No leader or quorum in time; retry with the same `request_id` after `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(#[to_schema] ProblemBody),
}

/// The errors of reads and of session calls.
#[derive(IntoResponses)]
pub enum ReadErrors {
    /// A parameter is invalid (`field` names it).
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(#[to_schema] ProblemBody),
    /// Missing or unknown API key.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(#[to_schema] ProblemBody),
    /// No such session (or no such route).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(#[to_schema] ProblemBody),
    /// The session id exists with other settings.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(#[to_schema] ProblemBody),
    /// The tenant's request rate is over its limit (`Retry-After`).
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(#[to_schema] ProblemBody),
    /// No leader or quorum in time; retry after `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(#[to_schema] ProblemBody),
}
