//! Who is calling: `Authorization: Bearer <api-key>` names a tenant. The meta group keeps
//! only the SHA-256 of each key; the gateway hashes what it is shown and looks the hash up
//! in the shard map. Every key and session the request touches is scoped by that tenant,
//! so a tenant can neither see nor touch another's. Each request also takes a token from
//! the tenant's rate limit (`ratelimit`).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use lockplane_proto::lock::ErrorCode;

use crate::problem::Problem;
use crate::state::AppState;

/// The API key of an `Authorization: Bearer <key>` header.
fn bearer(header: &axum::http::HeaderValue) -> Option<&str> {
    header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// The hash of the API key a request presents, to check later that it still acts as its
/// tenant (a long-lived stream outliving a revocation).
pub fn key_hash_of(headers: &axum::http::HeaderMap) -> Option<shard_map::KeyHash> {
    headers
        .get(AUTHORIZATION)
        .and_then(bearer)
        .map(shard_map::key_hash)
}

/// The authenticated tenant of a request.
#[derive(Debug, Clone, Copy)]
pub struct Tenant(pub u64);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            Problem::new(
                ErrorCode::Unauthenticated,
                "missing Authorization: Bearer <api-key>",
            )
        })?;
        let key = bearer(header).ok_or_else(|| {
            Problem::new(
                ErrorCode::Unauthenticated,
                "Authorization must be `Bearer <api-key>`",
            )
        })?;
        let tenant = state
            .cluster
            .tenant_of(key)
            .await
            .ok_or_else(|| Problem::new(ErrorCode::Unauthenticated, "unknown API key"))?;
        state
            .limiter
            .take(tenant, std::time::Instant::now())
            .map_err(|wait| {
                Problem::new(
                    ErrorCode::RateLimited,
                    "the tenant's request rate is over its limit",
                )
                .retry_after(wait.as_secs().saturating_add(1))
            })?;
        Ok(Tenant(tenant))
    }
}
