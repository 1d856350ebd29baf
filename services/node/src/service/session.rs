//! Sessions: create (the caller picks the id, so one session can be opened in every group
//! it will lock in), keep alive, close.

use std::time::Duration;

use lock_core::{Command, Reply, SessionId, TenantId};
use lockplane_proto::lock::{self as pb};

use super::{commit, convert, unexpected};
use crate::group::LockGroup;

fn id(session: u64) -> Result<SessionId, tonic::Status> {
    match session {
        0 => Err(lockplane_proto::error_status(pb::ErrorDetail {
            field: Some("session".into()),
            ..pb::ErrorDetail::new(pb::ErrorCode::InvalidArgument, "session id must not be 0")
        })),
        id => Ok(SessionId(id)),
    }
}

/// Opens the session (again with the same settings is a no-op).
pub async fn create(
    group: &LockGroup,
    request: pb::CreateSessionRequest,
    deadline: Duration,
) -> Result<pb::SessionReply, tonic::Status> {
    let session = id(request.session)?;
    let command = Command::CreateSession {
        id: session,
        tenant: TenantId(request.tenant),
        ttl_ms: request.ttl_ms,
    };
    match commit(group, command, deadline).await? {
        Reply::SessionCreated { ttl_ms } => Ok(pb::SessionReply {
            session: session.0,
            ttl_ms,
        }),
        other => Err(unexpected("create-session", &other)),
    }
}

/// Extends the session by its TTL.
pub async fn keep_alive(
    group: &LockGroup,
    request: pb::KeepAliveRequest,
    deadline: Duration,
) -> Result<pb::SessionReply, tonic::Status> {
    let session = id(request.session)?;
    let command = Command::KeepAlive {
        id: session,
        tenant: TenantId(request.tenant),
    };
    match commit(group, command, deadline).await? {
        Reply::SessionKeptAlive { ttl_ms } => Ok(pb::SessionReply {
            session: session.0,
            ttl_ms,
        }),
        other => Err(unexpected("keepalive", &other)),
    }
}

/// Most sessions one `KeepAliveMany` may name (a log entry of ~20 bytes each).
pub const MAX_KEEPALIVES: usize = 10_000;

/// Extends many sessions by their TTLs in one entry; each is answered on its own.
pub async fn keep_alive_many(
    group: &LockGroup,
    request: pb::KeepAliveManyRequest,
    deadline: Duration,
) -> Result<pb::KeepAliveManyReply, tonic::Status> {
    if request.sessions.len() > MAX_KEEPALIVES {
        return Err(lockplane_proto::error_status(pb::ErrorDetail {
            field: Some("sessions".into()),
            ..pb::ErrorDetail::new(
                pb::ErrorCode::InvalidArgument,
                format!("at most {MAX_KEEPALIVES} sessions per call"),
            )
        }));
    }
    let sessions = request
        .sessions
        .iter()
        .map(|s| Ok((id(s.session)?, TenantId(s.tenant))))
        .collect::<Result<Vec<_>, tonic::Status>>()?;
    let now_ms = group.now_ms();
    match commit(group, Command::KeepAliveMany { sessions }, deadline).await? {
        Reply::SessionsKeptAlive { outcomes } => Ok(pb::KeepAliveManyReply {
            sessions: outcomes
                .into_iter()
                .map(|outcome| pb::KeptAlive {
                    outcome: Some(match outcome {
                        Ok(ttl_ms) => pb::kept_alive::Outcome::TtlMs(ttl_ms),
                        Err(e) => pb::kept_alive::Outcome::Error(convert::error_detail(e, now_ms)),
                    }),
                })
                .collect(),
        }),
        other => Err(unexpected("keepalive-many", &other)),
    }
}

/// Ends the session, releasing its locks and dropping its waits.
pub async fn close(
    group: &LockGroup,
    request: pb::CloseSessionRequest,
    deadline: Duration,
) -> Result<pb::CloseSessionReply, tonic::Status> {
    let command = Command::CloseSession {
        id: id(request.session)?,
        tenant: TenantId(request.tenant),
    };
    match commit(group, command, deadline).await? {
        Reply::SessionClosed => Ok(pb::CloseSessionReply {}),
        other => Err(unexpected("close-session", &other)),
    }
}
