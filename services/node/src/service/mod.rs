//! The client-facing `LockService` (`shared/proto/proto/lock.proto`): what gateways and
//! tools call, served by every node for the groups it hosts; and the [`AdminApi`]
//! (`admin.proto`) operators' tools call.
//!
//! Writes are proposed to the group's Raft and answered once applied; a replica that does
//! not lead the group answers `NOT_LEADER` with the leader's address. Every proposal and
//! wait is bounded by the caller's gRPC deadline. Modules: `acquire` (including blocking
//! in the queue), `read` (status and listings), `session`, `watch` (event streams), `changes` (the gateways' cache
//! feed), `admin`
//! (with `admin_convert`, its wire forms, and `credentials`, the admin token check),
//! `convert` (wire forms and the mapping of domain errors), `deadline`.

mod acquire;
mod admin;
mod admin_convert;
mod changes;
mod convert;
mod credentials;
mod deadline;
mod read;
mod session;
mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lock_core::{Command, Reply};
use lockplane_proto::lock::lock_service_server::{LockService, LockServiceServer};
use lockplane_proto::lock::{self as pb};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

pub use admin::AdminApi;

use crate::group::LockGroup;
use crate::metrics::NodeMetrics;
use crate::wal::GroupId;

/// Largest request or reply accepted (listings are the big ones).
const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// The lock API over this node's group replicas.
#[derive(Clone)]
pub struct LockApi {
    groups: Arc<BTreeMap<GroupId, Arc<LockGroup>>>,
    metrics: Arc<NodeMetrics>,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
}

impl LockApi {
    /// Serves the given group replicas, recording acquires into `metrics`.
    pub fn new(
        groups: impl IntoIterator<Item = Arc<LockGroup>>,
        metrics: Arc<NodeMetrics>,
    ) -> Self {
        let groups = groups.into_iter().map(|g| (g.id(), g)).collect();
        Self {
            groups: Arc::new(groups),
            metrics,
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Ends every event stream (the server is shutting down and waits for open calls).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// The tonic service to mount on a server.
    pub fn into_service(self) -> LockServiceServer<Self> {
        LockServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn group(&self, id: u32) -> Result<Arc<LockGroup>, Status> {
        self.groups
            .get(&id)
            .cloned()
            .ok_or_else(|| convert::unknown_group(id))
    }
}

/// Proposes `command` and waits until it is applied: the reply, or the status of why not.
async fn commit(group: &LockGroup, command: Command, deadline: Duration) -> Result<Reply, Status> {
    match group.propose(command, deadline).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(rejected)) => Err(convert::lock_error(rejected, group.now_ms())),
        Err(failed) => Err(convert::propose_error(failed)),
    }
}

#[tonic::async_trait]
impl LockService for LockApi {
    async fn acquire(
        &self,
        request: Request<pb::AcquireRequest>,
    ) -> Result<Response<pb::AcquireReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let group = self.group(request.group)?;
        let started = std::time::Instant::now();
        let answer = acquire::acquire(group, request, deadline).await;
        self.metrics
            .acquires
            .record(&answer, started.elapsed().as_secs_f64());
        answer.map(Response::new)
    }

    async fn renew(
        &self,
        request: Request<pb::RenewRequest>,
    ) -> Result<Response<pb::RenewReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let group = self.group(request.group)?;
        let command = Command::Renew {
            key: convert::key(request.key)?,
            owner: request.owner,
            token: lock_core::FencingToken(request.fencing_token),
            ttl_ms: request.ttl_ms,
        };
        match commit(&group, command, deadline).await? {
            Reply::Renewed { token, ttl_ms } => Ok(Response::new(pb::RenewReply {
                fencing_token: token.0,
                ttl_ms,
            })),
            other => Err(unexpected("renew", &other)),
        }
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let group = self.group(request.group)?;
        let command = Command::Release {
            key: convert::key(request.key)?,
            owner: request.owner,
            token: lock_core::FencingToken(request.fencing_token),
        };
        match commit(&group, command, deadline).await? {
            Reply::Released => Ok(Response::new(pb::ReleaseReply {})),
            other => Err(unexpected("release", &other)),
        }
    }

    async fn cancel_wait(
        &self,
        request: Request<pb::CancelWaitRequest>,
    ) -> Result<Response<pb::CancelWaitReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let group = self.group(request.group)?;
        let command = Command::CancelWait {
            key: convert::key(request.key)?,
            wait: lock_core::WaitId(request.wait),
        };
        match commit(&group, command, deadline).await? {
            Reply::WaitCancelled => Ok(Response::new(pb::CancelWaitReply {})),
            other => Err(unexpected("cancel-wait", &other)),
        }
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let group = self.group(request.group)?;
        read::get(&group, request, deadline)
            .await
            .map(Response::new)
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let group = self.group(request.group)?;
        read::list(&group, request, deadline)
            .await
            .map(Response::new)
    }

    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::SessionReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let group = self.group(request.group)?;
        session::create(&group, request, deadline)
            .await
            .map(Response::new)
    }

    async fn keep_alive(
        &self,
        request: Request<pb::KeepAliveRequest>,
    ) -> Result<Response<pb::SessionReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let group = self.group(request.group)?;
        session::keep_alive(&group, request, deadline)
            .await
            .map(Response::new)
    }

    async fn keep_alive_many(
        &self,
        request: Request<pb::KeepAliveManyRequest>,
    ) -> Result<Response<pb::KeepAliveManyReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let group = self.group(request.group)?;
        session::keep_alive_many(&group, request, deadline)
            .await
            .map(Response::new)
    }

    async fn close_session(
        &self,
        request: Request<pb::CloseSessionRequest>,
    ) -> Result<Response<pb::CloseSessionReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let group = self.group(request.group)?;
        session::close(&group, request, deadline)
            .await
            .map(Response::new)
    }

    type WatchStream = ReceiverStream<Result<pb::Event, Status>>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let group = self.group(request.group)?;
        let events = watch::watch(&group, request, self.closing.subscribe())?;
        Ok(Response::new(ReceiverStream::new(events)))
    }

    type WatchChangesStream = ReceiverStream<Result<pb::ChangeBatch, Status>>;

    async fn watch_changes(
        &self,
        request: Request<pb::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let request = request.into_inner();
        let group = self.group(request.group)?;
        let batches = changes::watch_changes(&group, request.after, self.closing.subscribe())?;
        Ok(Response::new(ReceiverStream::new(batches)))
    }
}

/// A reply of the wrong kind: a bug, reported as `INTERNAL`.
fn unexpected(operation: &str, reply: &Reply) -> Status {
    lockplane_proto::error_status(pb::ErrorDetail::new(
        pb::ErrorCode::Internal,
        format!("{operation} answered {reply:?}"),
    ))
}
