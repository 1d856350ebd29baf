//! `GET /v1/sessions/{id}/stream`: a WebSocket that keeps a session alive and pushes what
//! happens to it. The client sends `{"type":"heartbeat"}`; each one renews the session in
//! every lock group and is answered with `{"type":"heartbeat_ack","ttl_ms":…}`. Once the
//! session is watched in every group the server sends `{"type":"ready"}`; from then on no
//! event is missed (short of a `resync`). The server pushes `granted` (a queued acquire made
//! with the session was granted), `lost` (a lock of the session expired or went with the
//! session) and `session_ended` (the session expired or was closed; the socket closes soon
//! after).
//!
//! The gateway watches the session in every group at that group's leader. When a watch
//! breaks (leader change, node restart, a watcher that fell behind) it is opened again and
//! the client is sent `{"type":"resync"}`: events may have been missed, so it should
//! re-read the status of its locks. Events are never sent twice: after a re-watch, entries
//! at or below the last log index already pushed for that group are skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::PathRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use lockplane_proto::RpcError;
use lockplane_proto::lock::{self as pb, ErrorCode, event::Kind, watch_request::Target};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::auth::{Tenant, key_hash_of};
use crate::caller::Caller;
use crate::problem::Problem;
use crate::request::COMMIT_BUDGET;
use crate::responses::CommonErrors;
use crate::sessions::{Op, SessionPath, everywhere};
use crate::state::AppState;

/// Largest message a client may send.
pub const MAX_MESSAGE_BYTES: usize = 4 << 10;

/// Pause before opening a broken watch again.
const REWATCH_PAUSE: Duration = Duration::from_millis(200);

/// Close code for a client that broke the protocol (RFC 6455 §7.4.1, policy violation).
const CLOSE_POLICY: u16 = 1008;

/// Close code for a normal end (the session expired or was closed).
const CLOSE_NORMAL: u16 = 1000;

/// What the client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Incoming {
    Heartbeat,
}

/// How long the socket stays open after the session ended in one group, for the `lost`
/// events of the other groups (each group's leader ends the session on its own clock).
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the session's watchers and heartbeats hand to the socket.
enum Outgoing {
    /// A message to push.
    Push(Value),
    /// The session ended in one group.
    Ended,
    /// A heartbeat found the session gone (closed, or expired everywhere it asked).
    Gone,
    /// One group's watch opened for the first time.
    Watching,
    /// A heartbeat finished: what to tell the client.
    Beat(Value),
}

/// Opens the stream of a session the tenant owns; `404` if it does not exist (or is
/// another tenant's). Opening counts as a heartbeat.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/stream",
    tag = "sessions",
    description = "A WebSocket: heartbeats in; ready, granted, lost, session_ended, resync out \
        (docs/api.md). Without an upgrade request the answer is 400.",
    params(SessionPath),
    responses((status = 101, description = "Switching to the WebSocket"), CommonErrors)
)]
pub async fn stream(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: axum::http::HeaderMap,
    id: Result<Path<SessionPath>, PathRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Problem> {
    let session = SessionPath::parse(id)?;
    let upgrade = upgrade
        .map_err(|e| Problem::invalid("upgrade", format!("this route is a WebSocket: {e}")))?;
    let key = key_hash_of(&headers)
        .ok_or_else(|| Problem::new(ErrorCode::Unauthenticated, "missing API key"))?;
    everywhere(&state, tenant, session, Op::KeepAlive).await?;
    let opener = Opener { tenant, key };
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| run(socket, state, opener, session)))
}

/// Who opened a stream: the tenant, and the hash of the key it showed, which must go on
/// acting as that tenant for the stream to stay open.
#[derive(Clone, Copy)]
struct Opener {
    tenant: Tenant,
    key: shard_map::KeyHash,
}

/// How often an open stream checks that its API key was not revoked (the gateway learns
/// revocations with its shard-map reads, every 5 s).
const KEY_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Serves one stream until the client leaves or the session ends.
async fn run(socket: WebSocket, state: AppState, opener: Opener, session: u64) {
    state.metrics.stream_opened(1);
    let metrics = std::sync::Arc::clone(&state.metrics);
    serve_socket(socket, state, opener, session).await;
    metrics.stream_opened(-1);
}

/// The stream's loop: client messages in, events out; closed (1008) once its API key no
/// longer acts as its tenant.
async fn serve_socket(mut socket: WebSocket, state: AppState, opener: Opener, session: u64) {
    let tenant = opener.tenant;
    let mut key_check = tokio::time::interval(KEY_CHECK_EVERY);
    let (tx, mut rx) = mpsc::channel::<Outgoing>(256);
    let mut tasks = JoinSet::new();
    let groups = state.cluster.groups();
    for &group in &groups {
        tasks.spawn(watch_group(
            Arc::clone(&state.caller),
            group,
            tenant.0,
            session,
            tx.clone(),
        ));
    }
    let mut beats = JoinSet::new();
    let (mut beating, mut beat_again) = (false, false);
    let mut watching = 0usize;
    let mut ended_in = 0usize;
    let mut close_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        close(&mut socket, CLOSE_POLICY, "messages are JSON text").await;
                        return;
                    }
                    Some(Ok(Message::Text(text))) => text,
                };
                match serde_json::from_str::<Incoming>(&text) {
                    Ok(Incoming::Heartbeat) => {
                        if let Err(wait) = state.limiter.take(tenant.0, std::time::Instant::now()) {
                            let limited = json!({
                                "type": "rate_limited",
                                "retry_after_ms": wait.as_millis() as u64,
                            });
                            if socket.send(text_of(&limited)).await.is_err() {
                                return;
                            }
                        } else if beating {
                            beat_again = true;
                        } else {
                            beating = true;
                            while beats.try_join_next().is_some() {}
                            beats.spawn(heartbeat(state.clone(), tenant, session, tx.clone()));
                        }
                    }
                    Err(e) => {
                        let detail = format!("expected {{\"type\":\"heartbeat\"}}: {e}");
                        let error = json!({ "type": "error", "detail": detail });
                        let _ = socket.send(text_of(&error)).await;
                        close(&mut socket, CLOSE_POLICY, "bad message").await;
                        return;
                    }
                }
            }
            outgoing = rx.recv() => {
                let Some(outgoing) = outgoing else { return };
                let message = match outgoing {
                    Outgoing::Push(message) => message,
                    Outgoing::Beat(message) => {
                        beating = beat_again;
                        if std::mem::take(&mut beat_again) {
                            while beats.try_join_next().is_some() {}
                            beats.spawn(heartbeat(state.clone(), tenant, session, tx.clone()));
                        }
                        message
                    }
                    Outgoing::Watching => {
                        watching += 1;
                        if watching < groups.len() {
                            continue;
                        }
                        json!({ "type": "ready" })
                    }
                    Outgoing::Ended | Outgoing::Gone => {
                        if matches!(outgoing, Outgoing::Ended) {
                            ended_in += 1;
                        } else {
                            beating = false;
                        }
                        if close_at.is_some() {
                            if ended_in >= groups.len() {
                                break;
                            }
                            continue;
                        }
                        close_at = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                        session_ended(session)
                    }
                };
                if socket.send(text_of(&message)).await.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(close_at.unwrap_or_else(tokio::time::Instant::now)), if close_at.is_some() => break,
            _ = key_check.tick() => {
                if state.cluster.cached_tenant(&opener.key) != Some(tenant.0) {
                    let revoked = json!({
                        "type": "error",
                        "detail": "the API key no longer acts as this tenant (revoked or rotated)",
                    });
                    let _ = socket.send(text_of(&revoked)).await;
                    close(&mut socket, CLOSE_POLICY, "API key revoked").await;
                    return;
                }
            }
        }
    }
    close(&mut socket, CLOSE_NORMAL, "session ended").await;
}

fn text_of(message: &Value) -> Message {
    Message::Text(Utf8Bytes::from(message.to_string()))
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Renews the session everywhere and reports the outcome to the socket. The socket runs
/// one at a time: heartbeats that arrive meanwhile are folded into one more, so a client
/// cannot multiply keepalive proposals by sending faster (each also takes a token from the
/// tenant's rate limit).
async fn heartbeat(state: AppState, tenant: Tenant, session: u64, tx: mpsc::Sender<Outgoing>) {
    let outgoing = match everywhere(&state, tenant, session, Op::KeepAlive).await {
        Ok(ttl_ms) => Outgoing::Beat(json!({ "type": "heartbeat_ack", "ttl_ms": ttl_ms })),
        Err(problem) if problem.code() == ErrorCode::SessionNotFound => Outgoing::Gone,
        Err(problem) => Outgoing::Beat(json!({
            "type": "heartbeat_failed",
            "detail": problem.detail(),
        })),
    };
    let _ = tx.send(outgoing).await;
}

fn session_ended(session: u64) -> Value {
    json!({ "type": "session_ended", "session_id": session.to_string() })
}

/// Follows the session's events in `group` for as long as the socket is open, opening the
/// watch again whenever it breaks (or until it first opens: `ready` waits for every group;
/// events before it are not promised).
async fn watch_group(
    caller: Arc<Caller>,
    group: u32,
    tenant: u64,
    session: u64,
    tx: mpsc::Sender<Outgoing>,
) {
    let mut pushed_up_to = 0u64;
    let mut opened_before = false;
    loop {
        if let Ok(mut events) = open_watch(&caller, group, tenant, session).await {
            let note = if opened_before {
                Outgoing::Push(json!({ "type": "resync" }))
            } else {
                Outgoing::Watching
            };
            opened_before = true;
            if tx.send(note).await.is_err() {
                return;
            }
            let mut current = 0u64;
            while let Ok(Some(event)) = events.message().await {
                if event.index <= pushed_up_to && event.index != current {
                    continue;
                }
                current = event.index;
                pushed_up_to = pushed_up_to.max(event.index);
                let Some(outgoing) = outgoing_of(event.kind, session) else {
                    continue;
                };
                let ended = matches!(outgoing, Outgoing::Ended);
                if tx.send(outgoing).await.is_err() || ended {
                    return;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(REWATCH_PAUSE).await;
    }
}

/// A watch of `session` at the leader of `group`.
async fn open_watch(
    caller: &Caller,
    group: u32,
    tenant: u64,
    session: u64,
) -> Result<tonic::Streaming<pb::Event>, RpcError> {
    let deadline = Instant::now() + COMMIT_BUDGET;
    let open = caller.call(group, deadline, |mut client, _left| async move {
        let request = pb::WatchRequest {
            group,
            tenant,
            target: Some(Target::Session(session)),
        };
        client.watch(request).await
    });
    tokio::time::timeout(COMMIT_BUDGET, open)
        .await
        .unwrap_or_else(|_| {
            Err(RpcError::new(pb::ErrorDetail::new(
                ErrorCode::Unavailable,
                "watch did not open in time",
            )))
        })
}

/// The message an event becomes on the socket.
fn outgoing_of(kind: Option<Kind>, session: u64) -> Option<Outgoing> {
    match kind? {
        Kind::Granted(g) => Some(Outgoing::Push(json!({
            "type": "granted",
            "key": g.key,
            "owner": g.owner,
            "fencing_token": g.fencing_token,
            "ttl_ms": g.ttl_ms,
            "session_id": session.to_string(),
        }))),
        Kind::Lost(l) => {
            let reason = match pb::LostReason::try_from(l.reason) {
                Ok(pb::LostReason::Expired) => "expired",
                Ok(pb::LostReason::SessionExpired) => "session_expired",
                Ok(pb::LostReason::SessionClosed) => "session_closed",
                Err(_) => "unknown",
            };
            Some(Outgoing::Push(json!({
                "type": "lost",
                "key": l.key,
                "owner": l.owner,
                "fencing_token": l.fencing_token,
                "reason": reason,
            })))
        }
        Kind::SessionExpired(_) => Some(Outgoing::Ended),
        Kind::WaitEnded(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_is_the_only_message() {
        assert!(matches!(
            serde_json::from_str::<Incoming>(r#"{"type":"heartbeat"}"#),
            Ok(Incoming::Heartbeat)
        ));
        assert!(serde_json::from_str::<Incoming>(r#"{"type":"acquire"}"#).is_err());
        assert!(serde_json::from_str::<Incoming>("heartbeat").is_err());
    }

    #[test]
    fn session_expiry_ends_the_stream() {
        let kind = Kind::SessionExpired(pb::SessionExpired { session: 7 });
        assert!(matches!(outgoing_of(Some(kind), 7), Some(Outgoing::Ended)));
    }
}
