//! `/v1/locks`: acquire (at once or waiting in the FIFO queue), renew, release, status and
//! listing. Each key goes to the leader of its lock group.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use lockplane_proto::lock::{self as pb, Consistency};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Tenant;
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

/// A gRPC request that gives up after `left`.
pub(crate) fn with_timeout<T>(message: T, left: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(left);
    request
}

/// `POST /v1/locks/{key}/acquire`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireBody {
    owner: String,
    ttl_ms: u64,
    #[serde(default)]
    wait_ms: u64,
    session_id: Option<String>,
    request_id: Option<String>,
    scope: Option<String>,
    #[serde(default)]
    lock_delay_ms: u64,
}

/// Takes the lock, waiting up to `wait_ms` in the queue. Without a `request_id` from the
/// client, the gateway adds one, so that its own retries (after `UNAVAILABLE`, when the
/// outcome is unknown) can never queue the caller twice or grant twice.
pub async fn acquire(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    request: Result<Json<AcquireBody>, JsonRejection>,
) -> Result<Json<Value>, Problem> {
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
                "global locks are not available yet; use scope=region",
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
        request_id: Some(
            request
                .request_id
                .unwrap_or_else(|| format!("gw-{:016x}", crate::sessions::fresh_id())),
        ),
        lock_delay_ms: request.lock_delay_ms,
    };
    let granted = state
        .backend
        .call(group, deadline, |mut client, left| {
            let message = message.clone();
            async move { client.acquire(with_timeout(message, left)).await }
        })
        .await?;
    let mut reply = json!({
        "key": name,
        "owner": request.owner,
        "fencing_token": granted.fencing_token,
        "ttl_ms": granted.ttl_ms,
    });
    if let Some(session) = granted.session {
        reply["session_id"] = json!(session.to_string());
    }
    Ok(Json(reply))
}

/// `POST /v1/locks/{key}/renew`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewBody {
    owner: String,
    fencing_token: u64,
    ttl_ms: u64,
}

/// Extends the holder's lease.
pub async fn renew(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    request: Result<Json<RenewBody>, JsonRejection>,
) -> Result<Json<Value>, Problem> {
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
        .call(group, Instant::now() + COMMIT_BUDGET, |mut client, left| {
            let message = message.clone();
            async move { client.renew(with_timeout(message, left)).await }
        })
        .await?;
    Ok(Json(json!({
        "key": name,
        "fencing_token": renewed.fencing_token,
        "ttl_ms": renewed.ttl_ms,
    })))
}

/// `POST /v1/locks/{key}/release`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    owner: String,
    fencing_token: u64,
}

/// Gives the lock up; the next waiter is granted.
pub async fn release(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    request: Result<Json<ReleaseBody>, JsonRejection>,
) -> Result<Json<Value>, Problem> {
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
        .call(group, Instant::now() + COMMIT_BUDGET, |mut client, left| {
            let message = message.clone();
            async move { client.release(with_timeout(message, left)).await }
        })
        .await?;
    Ok(Json(json!({ "released": true })))
}

/// Query of `GET /v1/locks/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
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

fn status_json(status: &pb::LockStatus) -> Value {
    let mut out = json!({
        "key": status.name,
        "held": status.holder.is_some(),
        "waiters": status.waiters,
    });
    if let Some(holder) = &status.holder {
        out["owner"] = json!(holder.owner);
        out["fencing_token"] = json!(holder.fencing_token);
        if let Some(session) = holder.session {
            out["session_id"] = json!(session.to_string());
        }
    }
    if let Some(ttl) = status.ttl_remaining_ms {
        out["ttl_remaining_ms"] = json!(ttl);
    }
    out
}

/// A key's status: from the group leader's state (`cached`, the default until the Redis
/// cache exists, and `leader`) or after a read index (`linearizable`).
pub async fn status(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
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
        .call(group, Instant::now() + COMMIT_BUDGET, |mut client, left| {
            let message = message.clone();
            async move { client.get(with_timeout(message, left)).await }
        })
        .await?;
    let status = read.status.unwrap_or_default();
    let mut out = status_json(&status);
    out["key"] = json!(name);
    Ok(Json(out))
}

/// Query of `GET /v1/locks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The tenant's held or waited-on keys by prefix, in name order, a page at a time across
/// every lock group; `next_cursor` continues.
pub async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
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
                .call(group, deadline, |mut client, left| {
                    let message = message.clone();
                    async move { client.list(with_timeout(message, left)).await }
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
    let mut out = json!({ "locks": locks.iter().map(status_json).collect::<Vec<_>>() });
    if more {
        if let Some(last) = locks.last() {
            out["next_cursor"] = json!(last.name);
        }
    }
    Ok(Json(out))
}
