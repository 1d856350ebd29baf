//! Who is calling: `Authorization: Bearer <api-key>` names a tenant. Every key and session
//! the request touches is scoped by that tenant, so a tenant can neither see nor touch
//! another's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use lockplane_proto::lock::ErrorCode;

use crate::problem::Problem;
use crate::state::AppState;

/// The API keys this gateway accepts, and their tenants. (Issue 4 moves them, hashed, into
/// the meta group; today they come from the gateway's configuration.)
#[derive(Debug, Default, Clone)]
pub struct ApiKeys {
    tenants: Arc<HashMap<String, u64>>,
}

impl ApiKeys {
    /// Accepts each `(key, tenant)`.
    pub fn new(keys: impl IntoIterator<Item = (String, u64)>) -> Self {
        Self {
            tenants: Arc::new(keys.into_iter().collect()),
        }
    }

    fn tenant(&self, key: &str) -> Option<u64> {
        self.tenants.get(key).copied()
    }
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
        let key = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                Problem::new(
                    ErrorCode::Unauthenticated,
                    "Authorization must be `Bearer <api-key>`",
                )
            })?;
        state
            .keys
            .tenant(key)
            .map(Tenant)
            .ok_or_else(|| Problem::new(ErrorCode::Unauthenticated, "unknown API key"))
    }
}
