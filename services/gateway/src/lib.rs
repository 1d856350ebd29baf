//! # lockplane-gateway
//!
//! The stateless REST front of Lockplane (`docs/api.md`): authenticates the tenant, validates
//! input, maps `(tenant, key)` to its lock group with the shard map's consistent-hash ring,
//! and sends the command to that group's leader over gRPC, following leader hints and
//! retrying unavailable groups within the request's deadline. Errors are problem+json.
//!
//! Modules:
//! - where requests go and how: [`cluster`] (shard map, ring, tenants, leaders), [`caller`]
//!   (channels, leader hints, retries, suspects), [`rpc`] (the unary RPCs as types),
//!   [`keepalives`] (session keepalives folded per group);
//! - who may ask: [`auth`] (API key → tenant), [`ratelimit`] (per-tenant token buckets);
//! - the routes: [`locks`], [`sessions`], [`stream`], [`ops`] (health, readiness,
//!   `/metrics`), with what they share in [`request`] (extractors, ids, budgets);
//! - what they answer: [`model`] (bodies), [`responses`] and [`problem`] (errors),
//!   [`openapi`] (the document at `/v1/openapi.json`), [`metrics`] (the counters);
//! - [`cache`]: status reads served from Redis, kept fresh by the groups' change feeds;
//! - [`state`] (what handlers share), [`tls`] (HTTPS).
//!
//! What it must never do: keep state that matters (every decision is a group's), or answer
//! a lock request from anything but the group that holds the key.

pub mod auth;
pub mod cache;
pub mod caller;
pub mod cluster;
pub mod keepalives;
pub mod locks;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod ratelimit;
pub mod request;
pub mod responses;
pub mod rpc;
pub mod sessions;
pub mod state;
pub mod stream;
pub mod tls;

use std::future::Future;

use axum::Router;
use axum::routing::{delete, get, post};
use lockplane_proto::lock::ErrorCode;

pub use state::AppState;

use crate::problem::Problem;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 << 10;

/// Every route of the REST API v1.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/locks", get(locks::list))
        .route("/v1/locks/{key}", get(locks::status))
        .route("/v1/locks/{key}/acquire", post(locks::acquire))
        .route("/v1/locks/{key}/renew", post(locks::renew))
        .route("/v1/locks/{key}/release", post(locks::release))
        .route("/v1/sessions", post(sessions::create))
        .route("/v1/sessions/{id}/keepalive", post(sessions::keepalive))
        .route("/v1/sessions/{id}", delete(sessions::close))
        .route("/v1/sessions/{id}/stream", get(stream::stream))
        .route("/v1/openapi.json", get(openapi::document))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::measure,
        ))
        .route("/healthz", get(ops::health))
        .route("/readyz", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .fallback(no_route)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `404` for a path no route serves; under `/v1/locks/`, one that looks like a key with a
/// raw `/` in it says how to send such a key.
async fn no_route(uri: axum::http::Uri) -> Problem {
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/v1/locks/") {
        let segments = rest.split('/').filter(|s| !s.is_empty()).count();
        if segments > 1 {
            let key = rest.trim_end_matches("/acquire").trim_end_matches("/renew");
            let key = key.trim_end_matches("/release");
            let encoded = key.replace('/', "%2F");
            return Problem::new(
                ErrorCode::NotFound,
                format!(
                    "no route {path}: a key is one path segment, so a key containing `/` must \
                     be percent-encoded (`{key}` is sent as `{encoded}`, e.g. \
                     /v1/locks/{encoded}/acquire)"
                ),
            );
        }
    }
    Problem::new(ErrorCode::NotFound, format!("no route {path}"))
}

/// How long in-flight requests (blocking acquires included) may take to finish once
/// shutdown begins; then they are dropped, which cancels their waits at the nodes.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves the API on `listener` (over HTTPS when `tls` is given) until `shutdown`
/// completes, then lets in-flight requests finish for at most [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(config) => serve_on(tls::TlsListener::new(listener, config)?, state, shutdown).await,
        None => serve_on(listener, state, shutdown).await,
    }
}

async fn serve_on<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
    let stop = std::sync::Arc::clone(&stopping);
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown.await;
        stop.notify_one();
    });
    let server = std::future::IntoFuture::into_future(server);
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => served,
        () = async {
            stopping.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
}
