//! `/v1/locks`: acquire (at once or waiting in the FIFO queue), renew, release, status and
//! listing. Each key goes to the leader of its lock group.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use lockplane_proto::lock::{self as pb, Consistency};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Tenant;
use crate::backend::Repeat;
use crate::model::{Granted, LockPage, LockStatus, Released, Renewed};
use crate::openapi::{CommonErrors, ConflictError, WaitTimedOut};
use crate::problem::Problem;
use crate::state::AppState;

/// Longest `wait_ms` a blocking acquire may ask for.
pub const MAX_WAIT_MS: u64 = 300_000;

/// Time for a write to commit, on top of any wait: leader elections included.
pub const COMMIT_BUDGET: Duration = Duration::from_secs(5);

/// Most keys one listing page returns.
pub const MAX_PAGE: u32 = 1_000;

/// The body, or a `400` naming what is wrong with it.
pub fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    body.map(|Json(b)| b)
        .map_err(|e| Problem::invalid("body", e.body_text()))
}

/// A path segment, or a `400` naming `field` when it is not valid percent-encoded UTF-8.
pub fn segment<T>(path: Result<Path<T>, PathRejection>, field: &str) -> Result<T, Problem> {
    path.map(|Path(p)| p)
        .map_err(|e| Problem::invalid(field, e.body_text()))
}

/// The `{key}` of the `/v1/locks/{key}…` routes, as extracted and as documented.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The lock's key (1..=512 bytes of UTF-8, no control characters), percent-encoded.
    #[param(
        min_length = 1,
        max_length = 512,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    key: String,
}

/// A session id as the API spells it (a decimal string), parsed.
pub fn session_id(text: &str) -> Result<u64, Problem> {
    text.parse::<u64>()
        .ok()
        .filter(|id| *id != 0)
        .ok_or_else(|| Problem::invalid("session_id", format!("{text:?} is not a session id")))
}

fn key(tenant: Tenant, name: &str) -> Option<pb::Key> {
    Some(pb::Key {
        tenant: tenant.0,
        name: name.to_string(),
    })
}

/// `POST /v1/locks/{key}/acquire`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    /// Who takes the lock (1..=256 bytes, no control characters): renew and release must
    /// name it.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    owner: String,
    /// The lease, in milliseconds: the lock ends this long after its last renew unless it
    /// is bound to a session.
    #[schema(minimum = 1, maximum = 86_400_000)]
    ttl_ms: u64,
    /// How long to wait in the key's FIFO queue (0..=300,000 ms); 0 answers `409` at once.
    #[serde(default)]
    #[schema(maximum = 300_000)]
    wait_ms: u64,
    /// Bind the lock (and the wait) to this session: it ends with it.
    #[schema(pattern = "^[1-9][0-9]{0,18}$")]
    session_id: Option<String>,
    /// Idempotency key (1..=128 bytes): a retry with the same id gets the same outcome.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    request_id: Option<String>,
    /// `region` (the default). This cluster serves regional locks only: `global` is refused
    /// with `400`.
    #[schema(pattern = "^(region|global)$")]
    scope: Option<String>,
    /// After this lock *expires* (not after a release), nobody gets it for this long, in
    /// milliseconds.
    #[serde(default)]
    #[schema(maximum = 60_000)]
    lock_delay_ms: u64,
}

/// Takes the lock, waiting up to `wait_ms` in the queue. Without a `request_id` from the
/// client, the gateway adds one to a blocking acquire, so that its own retries (after
/// `UNAVAILABLE`, when the outcome is unknown) can never queue the caller twice. A
/// try-acquire (`wait_ms` 0) needs none: retried after its grant committed, it finds the
/// same owner holding the key and gets the same grant back (lock-core's re-acquire rule),
/// so its node does not keep an idempotency record (≈ 300 bytes for ten minutes) per call.
#[utoipa::path(
    post,
    path = "/v1/locks/{key}/acquire",
    tag = "locks",
    params(KeyPath),
    request_body = AcquireBody,
    responses((status = 200, description = "Granted", body = Granted), CommonErrors, ConflictError, WaitTimedOut)
)]
pub async fn acquire(
    State(state): State<AppState>,
    tenant: Tenant,
    name: Result<Path<KeyPath>, PathRejection>,
    request: Result<Json<AcquireBody>, JsonRejection>,
) -> Result<Json<Granted>, Problem> {
    let name = segment(name, "key")?.key;
    let request = body(request)?;
    if request.wait_ms > MAX_WAIT_MS {
        return Err(Problem::invalid(
            "wait_ms",
            format!("{} is outside 0..={MAX_WAIT_MS}", request.wait_ms),
        ));
    }
    match request.scope.as_deref() {
        None | Some("region") => {}
        Some("global") => {
            return Err(Problem::invalid(
                "scope",
                "this cluster serves regional locks only (no coordinator group for \
                 scope=global); use scope=region",
            ));
        }
        Some(other) => {
            return Err(Problem::invalid(
                "scope",
                format!("{other:?} is not region or global"),
            ));
        }
    }
    let session = request.session_id.as_deref().map(session_id).transpose()?;
    let group = state.backend.group_of(tenant.0, &name)?;
    let deadline = Instant::now() + Duration::from_millis(request.wait_ms) + COMMIT_BUDGET;
    let message = pb::AcquireRequest {
        group,
        key: key(tenant, &name),
        owner: request.owner.clone(),
        ttl_ms: request.ttl_ms,
        wait_ms: request.wait_ms,
        session,
        request_id: request.request_id.or_else(|| {
            (request.wait_ms > 0).then(|| format!("gw-{:016x}", crate::sessions::fresh_id()))
        }),
        lock_delay_ms: request.lock_delay_ms,
        tenant_quota: state.backend.quota_share(tenant.0),
    };
    let granted = state
        .backend
        .send(group, deadline, message, |mut client, request| async move {
            client.acquire(request).await
        })
        .await?;
    Ok(Json(Granted {
        key: name,
        owner: request.owner,
        fencing_token: granted.fencing_token,
        ttl_ms: granted.ttl_ms,
        session_id: granted.session.map(|s| s.to_string()),
    }))
}

/// `POST /v1/locks/{key}/renew`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    /// The holder's owner string.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    owner: String,
    /// The holder's fencing token.
    fencing_token: u64,
    /// The new lease from now, in milliseconds.
    #[schema(minimum = 1, maximum = 86_400_000)]
    ttl_ms: u64,
}

/// Extends the holder's lease.
#[utoipa::path(
    post,
    path = "/v1/locks/{key}/renew",
    tag = "locks",
    params(KeyPath),
    request_body = RenewBody,
    responses((status = 200, description = "Renewed", body = Renewed), CommonErrors, ConflictError)
)]
pub async fn renew(
    State(state): State<AppState>,
    tenant: Tenant,
    name: Result<Path<KeyPath>, PathRejection>,
    request: Result<Json<RenewBody>, JsonRejection>,
) -> Result<Json<Renewed>, Problem> {
    let name = segment(name, "key")?.key;
    let request = body(request)?;
    let group = state.backend.group_of(tenant.0, &name)?;
    let message = pb::RenewRequest {
        group,
        key: key(tenant, &name),
        owner: request.owner,
        fencing_token: request.fencing_token,
        ttl_ms: request.ttl_ms,
    };
    let renewed = state
        .backend
        .send_as(
            group,
            Instant::now() + COMMIT_BUDGET,
            Repeat::Unrepeatable,
            message,
            |mut client, request| async move { client.renew(request).await },
        )
        .await?;
    Ok(Json(Renewed {
        key: name,
        fencing_token: renewed.fencing_token,
        ttl_ms: renewed.ttl_ms,
    }))
}

/// `POST /v1/locks/{key}/release`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The holder's owner string.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    owner: String,
    /// The holder's fencing token.
    fencing_token: u64,
}

/// Gives the lock up; the next waiter is granted.
#[utoipa::path(
    post,
    path = "/v1/locks/{key}/release",
    tag = "locks",
    params(KeyPath),
    request_body = ReleaseBody,
    responses((status = 200, description = "Released", body = Released), CommonErrors, ConflictError)
)]
pub async fn release(
    State(state): State<AppState>,
    tenant: Tenant,
    name: Result<Path<KeyPath>, PathRejection>,
    request: Result<Json<ReleaseBody>, JsonRejection>,
) -> Result<Json<Released>, Problem> {
    let name = segment(name, "key")?.key;
    let request = body(request)?;
    let group = state.backend.group_of(tenant.0, &name)?;
    let message = pb::ReleaseRequest {
        group,
        key: key(tenant, &name),
        owner: request.owner,
        fencing_token: request.fencing_token,
    };
    state
        .backend
        .send_as(
            group,
            Instant::now() + COMMIT_BUDGET,
            Repeat::Unrepeatable,
            message,
            |mut client, request| async move { client.release(request).await },
        )
        .await?;
    Ok(Json(Released { released: true }))
}

/// Query of `GET /v1/locks/{key}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// `cached` (the default) and `leader` read the group leader's state; `linearizable`
    /// reads after confirming its leadership (a read index).
    #[param(pattern = "^(cached|leader|linearizable)$")]
    consistency: Option<String>,
}

fn consistency(text: Option<&str>) -> Result<Consistency, Problem> {
    match text {
        None | Some("cached") | Some("leader") => Ok(Consistency::LeaderLocal),
        Some("linearizable") => Ok(Consistency::Linearizable),
        Some(other) => Err(Problem::invalid(
            "consistency",
            format!("{other:?} is not cached, leader or linearizable"),
        )),
    }
}

/// A key's status: from the group leader's state (`cached`, the default until the Redis
/// cache exists, and `leader`) or after a read index (`linearizable`).
#[utoipa::path(
    get,
    path = "/v1/locks/{key}",
    tag = "locks",
    params(KeyPath, StatusQuery),
    responses((status = 200, description = "The key's status", body = LockStatus), CommonErrors)
)]
pub async fn status(
    State(state): State<AppState>,
    tenant: Tenant,
    name: Result<Path<KeyPath>, PathRejection>,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<LockStatus>, Problem> {
    let name = segment(name, "key")?.key;
    let Query(query) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let consistency = consistency(query.consistency.as_deref())?;
    let group = state.backend.group_of(tenant.0, &name)?;
    let message = pb::GetRequest {
        group,
        key: key(tenant, &name),
        consistency: consistency as i32,
    };
    let read = state
        .backend
        .send(
            group,
            Instant::now() + COMMIT_BUDGET,
            message,
            |mut client, request| async move { client.get(request).await },
        )
        .await?;
    let status = read.status.unwrap_or_default();
    Ok(Json(LockStatus::of(name, &status)))
}

/// Query of `GET /v1/locks`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only keys starting with this.
    #[serde(default)]
    prefix: String,
    /// Most keys on the page (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The tenant's held or waited-on keys by prefix, in name order, a page at a time across
/// every lock group; `next_cursor` continues.
#[utoipa::path(
    get,
    path = "/v1/locks",
    tag = "locks",
    params(ListQuery),
    responses((status = 200, description = "A page of keys", body = LockPage), CommonErrors)
)]
pub async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<LockPage>, Problem> {
    let Query(query) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid(
            "limit",
            format!("{limit} is outside 1..={MAX_PAGE}"),
        ));
    }
    let deadline = Instant::now() + COMMIT_BUDGET;
    let mut pages = Vec::new();
    for group in state.backend.groups() {
        let backend = std::sync::Arc::clone(&state.backend);
        let message = pb::ListRequest {
            group,
            tenant: tenant.0,
            prefix: query.prefix.clone(),
            after: query.cursor.clone(),
            limit,
            consistency: Consistency::LeaderLocal as i32,
        };
        pages.push(tokio::spawn(async move {
            backend
                .send(group, deadline, message, |mut client, request| async move {
                    client.list(request).await
                })
                .await
        }));
    }
    let (mut locks, mut a_page_was_full) = (Vec::new(), false);
    for page in pages {
        let page = page
            .await
            .map_err(|e| Problem::new(pb::ErrorCode::Internal, e.to_string()))??;
        a_page_was_full |= page.locks.len() >= limit as usize;
        locks.extend(page.locks);
    }
    locks.sort_by(|a, b| a.name.cmp(&b.name));
    let more = locks.len() > limit as usize || a_page_was_full;
    locks.truncate(limit as usize);
    let next_cursor = locks.last().filter(|_| more).map(|last| last.name.clone());
    Ok(Json(LockPage {
        locks: locks
            .iter()
            .map(|status| LockStatus::of(status.name.clone(), status))
            .collect(),
        next_cursor,
    }))
}
