//! `Get` and `List`: status reads from the leader's applied state, either at once
//! (leader-local) or after a read-index round that confirms leadership (linearizable).

use std::time::Duration;

use lock_core::TenantId;
use lockplane_proto::lock::{self as pb, Consistency};

use super::convert;
use crate::group::LockGroup;

/// Most keys one listing returns.
pub const MAX_LIST: u32 = 1_000;

/// Confirms this replica may serve a read of the requested consistency.
async fn ready(
    group: &LockGroup,
    consistency: i32,
    deadline: Duration,
) -> Result<(), tonic::Status> {
    let ready = match Consistency::try_from(consistency) {
        Ok(Consistency::LeaderLocal) => group.check_leader(),
        Ok(Consistency::Linearizable) => group.read_barrier(deadline).await,
        Err(_) => {
            return Err(lockplane_proto::error_status(pb::ErrorDetail::new(
                pb::ErrorCode::InvalidArgument,
                format!("unknown consistency {consistency}"),
            )));
        }
    };
    ready.map_err(convert::propose_error)
}

/// One key's status.
pub async fn get(
    group: &LockGroup,
    request: pb::GetRequest,
    deadline: Duration,
) -> Result<pb::GetReply, tonic::Status> {
    let key = convert::key(request.key)?;
    ready(group, request.consistency, deadline).await?;
    let now = group.now_ms();
    let (status, applied_index) = group
        .state_machine()
        .read(|m| (m.status(&key, now), m.last_applied()));
    Ok(pb::GetReply {
        status: Some(convert::status(status)),
        applied_index,
    })
}

/// A page of a tenant's held or waited-on keys by prefix.
pub async fn list(
    group: &LockGroup,
    request: pb::ListRequest,
    deadline: Duration,
) -> Result<pb::ListReply, tonic::Status> {
    ready(group, request.consistency, deadline).await?;
    let limit = match request.limit {
        0 => MAX_LIST,
        n => n.min(MAX_LIST),
    };
    let now = group.now_ms();
    let tenant = TenantId(request.tenant);
    let (locks, applied_index) = group.state_machine().read(|m| {
        let locks = m.list(
            tenant,
            &request.prefix,
            request.after.as_deref(),
            limit as usize,
            now,
        );
        (locks, m.last_applied())
    });
    Ok(pb::ListReply {
        locks: locks.into_iter().map(convert::status).collect(),
        applied_index,
    })
}
