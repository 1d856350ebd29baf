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
use crate::cache::{Lookup, Source};
use crate::model::{Granted, LockPage, LockStatus, Released, Renewed};
use crate::problem::Problem;
use crate::request::{COMMIT_BUDGET, body, fresh_id, segment, session_id};
use crate::responses::{CommonErrors, ConflictError, WaitTimedOut};
use crate::state::AppState;

/// Longest `wait_ms` a blocking acquire may ask for.
pub const MAX_WAIT_MS: u64 = 300_000;

/// Most keys one listing page returns.
pub const MAX_PAGE: u32 = 1_000;

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
    let group = state.cluster.group_of(tenant.0, &name)?;
    let deadline = Instant::now() + Duration::from_millis(request.wait_ms) + COMMIT_BUDGET;
    let message = pb::AcquireRequest {
        group,
        key: key(tenant, &name),
        owner: request.owner.clone(),
        ttl_ms: request.ttl_ms,
        wait_ms: request.wait_ms,
        session,
        request_id: request
            .request_id
            .or_else(|| (request.wait_ms > 0).then(|| format!("gw-{:016x}", fresh_id()))),
        lock_delay_ms: request.lock_delay_ms,
        tenant_quota: state.cluster.quota_share(tenant.0),
    };
    let granted = state.caller.send(deadline, message).await?;
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
    let group = state.cluster.group_of(tenant.0, &name)?;
    let message = pb::RenewRequest {
        group,
        key: key(tenant, &name),
        owner: request.owner,
        fencing_token: request.fencing_token,
        ttl_ms: request.ttl_ms,
    };
    let renewed = state
        .caller
        .send(Instant::now() + COMMIT_BUDGET, message)
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
    let group = state.cluster.group_of(tenant.0, &name)?;
    let message = pb::ReleaseRequest {
        group,
        key: key(tenant, &name),
        owner: request.owner,
        fencing_token: request.fencing_token,
    };
    state
        .caller
        .send(Instant::now() + COMMIT_BUDGET, message)
        .await?;
    Ok(Json(Released { released: true }))
}

/// Query of `GET /v1/locks/{key}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// `cached` (the default): from the Redis status cache when the gateway has one (at
    /// most `--cache-max-staleness` behind, see docs/api.md), else as `leader`; `leader`:
    /// the group leader's applied state; `linearizable`: after a read index confirms the
    /// leadership.
    #[param(pattern = "^(cached|leader|linearizable)$")]
    consistency: Option<String>,
}

/// How a status read may be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadFrom {
    Cache,
    Leader,
    Linearizable,
}

fn read_from(text: Option<&str>) -> Result<ReadFrom, Problem> {
    match text {
        None | Some("cached") => Ok(ReadFrom::Cache),
        Some("leader") => Ok(ReadFrom::Leader),
        Some("linearizable") => Ok(ReadFrom::Linearizable),
        Some(other) => Err(Problem::invalid(
            "consistency",
            format!("{other:?} is not cached, leader or linearizable"),
        )),
    }
}

/// The header that says where a status answer came from.
pub const CACHE_HEADER: &str = "lockplane-cache";

/// A key's status: from the Redis cache (`cached`, the default, when the gateway has one),
/// the group leader's state (`leader`) or after a read index (`linearizable`). The
/// `Lockplane-Cache` header of a `200` says which: `hit`, `miss` (read from the leader,
/// then cached) or `bypass` (not cached: another consistency, no cache, or Redis
/// unavailable).
#[utoipa::path(
    get,
    path = "/v1/locks/{key}",
    tag = "locks",
    params(KeyPath, StatusQuery),
    responses(
        (status = 200, description = "The key's status", body = LockStatus,
         headers(("Lockplane-Cache" = String, description = "hit, miss or bypass"))),
        CommonErrors
    )
)]
pub async fn status(
    State(state): State<AppState>,
    tenant: Tenant,
    name: Result<Path<KeyPath>, PathRejection>,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<([(&'static str, &'static str); 1], Json<LockStatus>), Problem> {
    let name = segment(name, "key")?.key;
    let Query(query) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let from = read_from(query.consistency.as_deref())?;
    let cache = state.cache.as_ref().filter(|_| from == ReadFrom::Cache);
    let mut outcome = "bypass";
    if let Some(cache) = cache {
        match cache.lookup(tenant.0, &name).await {
            Lookup::Hit(status, version) => {
                let body = LockStatus::of(name, &status, version);
                return Ok(([(CACHE_HEADER, "hit")], Json(body)));
            }
            Lookup::Miss => outcome = "miss",
            Lookup::Unavailable => {}
        }
    }
    let consistency = match from {
        ReadFrom::Linearizable => Consistency::Linearizable,
        ReadFrom::Cache | ReadFrom::Leader => Consistency::LeaderLocal,
    };
    let message = pb::GetRequest {
        group: state.cluster.group_of(tenant.0, &name)?,
        key: key(tenant, &name),
        consistency: consistency as i32,
    };
    let read_at = Instant::now();
    let read = state.caller.send(read_at + COMMIT_BUDGET, message).await?;
    let status = read.status.unwrap_or_default();
    if let (Some(cache), "miss") = (cache, outcome) {
        // Filled before answering, so a later hit of this caller never shows an older
        // version than this answer (the write refuses older ones); bounded by Redis's
        // timeout.
        cache
            .store(tenant.0, &status, read.applied_index, read_at, Source::Fill)
            .await;
    }
    if let (Some(cache), "bypass") = (cache, outcome) {
        cache.shown_from_leader(tenant.0, &name, read.applied_index);
    }
    let body = LockStatus::of(name, &status, read.applied_index);
    Ok(([(CACHE_HEADER, outcome)], Json(body)))
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
    for group in state.cluster.groups() {
        let caller = std::sync::Arc::clone(&state.caller);
        let message = pb::ListRequest {
            group,
            tenant: tenant.0,
            prefix: query.prefix.clone(),
            after: query.cursor.clone(),
            limit,
            consistency: Consistency::LeaderLocal as i32,
        };
        pages.push(tokio::spawn(
            async move { caller.send(deadline, message).await },
        ));
    }
    let (mut locks, mut a_page_was_full) = (Vec::new(), false);
    for page in pages {
        let page = page
            .await
            .map_err(|e| Problem::new(pb::ErrorCode::Internal, e.to_string()))??;
        a_page_was_full |= page.locks.len() >= limit as usize;
        let version = page.applied_index;
        locks.extend(page.locks.into_iter().map(|status| (status, version)));
    }
    locks.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let more = locks.len() > limit as usize || a_page_was_full;
    locks.truncate(limit as usize);
    let next_cursor = locks
        .last()
        .filter(|_| more)
        .map(|(last, _)| last.name.clone());
    Ok(Json(LockPage {
        locks: locks
            .iter()
            .map(|(status, version)| LockStatus::of(status.name.clone(), status, *version))
            .collect(),
        next_cursor,
    }))
}
