//! `/v1/sessions`: one lease shared by many locks and waits. A session is opened under one
//! id in every lock group, so a lock in any group can be bound to it; keepalive and close
//! reach every group (in parallel).

use std::time::Instant;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lockplane_proto::RpcError;
use lockplane_proto::lock::{self as pb};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Tenant;
use crate::model::{SessionKept, SessionOpened};
use crate::problem::Problem;
use crate::request::{COMMIT_BUDGET, body, fresh_id, segment, session_id};
use crate::responses::{CommonErrors, ConflictError};
use crate::state::AppState;

/// `POST /v1/sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// The session's lease, in milliseconds: it ends this long after its last keepalive or
    /// heartbeat.
    #[schema(minimum = 1, maximum = 86_400_000)]
    ttl_ms: u64,
}

/// The `{id}` of the `/v1/sessions/{id}…` routes, as extracted and as documented.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// The session id (a decimal string).
    #[param(pattern = "^[1-9][0-9]{0,18}$")]
    id: String,
}

impl SessionPath {
    /// The session id of a route's path, or the `400` problem naming what is wrong.
    pub(crate) fn parse(path: Result<Path<Self>, PathRejection>) -> Result<u64, Problem> {
        session_id(&segment(path, "session_id")?.id)
    }
}

/// What to do with a session in each lock group.
#[derive(Clone, Copy)]
pub(crate) enum Op {
    Create { ttl_ms: u64 },
    KeepAlive,
    Close,
}

/// Runs `op` for `session` in one lock group; the session's TTL afterwards (0 once closed).
/// Keepalives are folded with other sessions' into one call per group.
async fn in_group(
    state: AppState,
    group: u32,
    tenant: u64,
    session: u64,
    op: Op,
) -> Result<u64, RpcError> {
    let deadline = Instant::now() + COMMIT_BUDGET;
    match op {
        Op::Create { ttl_ms } => {
            let message = pb::CreateSessionRequest {
                group,
                tenant,
                session,
                ttl_ms,
            };
            state
                .caller
                .send(deadline, message)
                .await
                .map(|reply| reply.ttl_ms)
        }
        Op::KeepAlive => {
            state
                .keepalives
                .keep_alive(group, tenant, session, deadline)
                .await
        }
        Op::Close => {
            let message = pb::CloseSessionRequest {
                group,
                tenant,
                session,
            };
            // A close repeated after an attempt that may have been applied would be told
            // the session is gone: that refusal is answered 503, not 404.
            state.caller.send(deadline, message).await.map(|_| 0)
        }
    }
}

/// Runs `op` in every lock group at once; the first failure wins. The session's TTL.
pub(crate) async fn everywhere(
    state: &AppState,
    tenant: Tenant,
    session: u64,
    op: Op,
) -> Result<u64, Problem> {
    let calls: Vec<_> = state
        .cluster
        .groups()
        .into_iter()
        .map(|group| tokio::spawn(in_group(state.clone(), group, tenant.0, session, op)))
        .collect();
    let mut ttl = 0;
    for call in calls {
        ttl = call
            .await
            .map_err(|e| Problem::new(pb::ErrorCode::Internal, e.to_string()))??;
    }
    Ok(ttl)
}

/// Opens a session.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "sessions",
    request_body = CreateBody,
    responses((status = 201, description = "Opened", body = SessionOpened), CommonErrors, ConflictError)
)]
pub async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    request: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<SessionOpened>), Problem> {
    let request = body(request)?;
    let session = fresh_id();
    let ttl_ms = everywhere(
        &state,
        tenant,
        session,
        Op::Create {
            ttl_ms: request.ttl_ms,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionOpened {
            session_id: session.to_string(),
            ttl_ms,
        }),
    ))
}

/// Keeps a session alive for another TTL.
#[utoipa::path(
    post,
    path = "/v1/sessions/{id}/keepalive",
    tag = "sessions",
    params(SessionPath),
    responses((status = 200, description = "Kept alive", body = SessionKept), CommonErrors)
)]
pub async fn keepalive(
    State(state): State<AppState>,
    tenant: Tenant,
    id: Result<Path<SessionPath>, PathRejection>,
) -> Result<Json<SessionKept>, Problem> {
    let id = SessionPath::parse(id)?;
    let ttl_ms = everywhere(&state, tenant, id, Op::KeepAlive).await?;
    Ok(Json(SessionKept { ttl_ms }))
}

/// Ends a session: its locks are released and handed on, its waits dropped.
#[utoipa::path(
    delete,
    path = "/v1/sessions/{id}",
    tag = "sessions",
    params(SessionPath),
    responses((status = 204, description = "Closed; its locks were released"), CommonErrors)
)]
pub async fn close(
    State(state): State<AppState>,
    tenant: Tenant,
    id: Result<Path<SessionPath>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let id = SessionPath::parse(id)?;
    everywhere(&state, tenant, id, Op::Close).await?;
    Ok(StatusCode::NO_CONTENT)
}
