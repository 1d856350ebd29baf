//! The operators' routes: liveness, readiness, `/metrics`, and the middleware that
//! measures every API request for it.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lockplane_proto::lock::ErrorCode;

use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::state::AppState;

/// Alive: the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    security(()),
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain"))
)]
pub async fn health() -> &'static str {
    "ok"
}

/// Ready once the gateway knows the shard map.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "No shard map yet", body = crate::model::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<&'static str, Problem> {
    if state.cluster.is_ready() {
        Ok("ready")
    } else {
        Err(Problem::new(ErrorCode::NotInitialized, "no shard map yet").retry_after(1))
    }
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    security(()),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render(
        state.cluster.shard_map_version(),
        (state.keepalives.calls(), state.keepalives.sessions()),
    );
    if let Some(cache) = &state.cache {
        cache.stats().render(&mut text);
    }
    if let Some(more) = &state.more_metrics {
        text.push_str(&telemetry::metrics::off_the_runtime(Arc::clone(more)).await);
    }
    telemetry::metrics::answer(text)
}

/// Middleware that records every request of a matched route.
pub async fn measure(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = Metrics::route_index(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let response = next.run(request).await;
    state.metrics.record(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
