//! Sessions: create (the caller picks the id, so one session can be opened in every group
//! it will lock in), keep alive, close.

use std::time::Duration;

use lock_core::{Command, Reply, SessionId, TenantId};
use lockplane_proto::lock::{self as pb};

use super::{commit, unexpected};
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
