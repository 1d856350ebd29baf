//! The OpenAPI 3.1 document of the REST API, generated from the handlers' `#[utoipa::path]`
//! annotations and the typed bodies (`model`), served at `/v1/openapi.json`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
        crate::ops::health,
        crate::ops::ready,
        crate::ops::metrics,
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
