//! The unary lock RPCs as types: each request message knows its group, its reply, the
//! client method that sends it, and whether it may be repeated after an attempt whose
//! outcome is unknown. [`crate::caller::Caller::send`] takes any of them, so a route
//! says what it sends and never how.

use std::future::Future;

use lockplane_proto::lock::lock_service_client::LockServiceClient;
use lockplane_proto::lock::{self as pb};
use shard_map::GroupId;
use tonic::transport::Channel;

/// Whether a request may be sent again after an attempt whose outcome is unknown, with
/// its answer meaning the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// A repeat answers as the first attempt would have (reads; acquires, which carry a
    /// request id the node deduplicates by).
    Idempotent,
    /// A repeat may be refused because the first attempt took effect (a release or renewal
    /// that was applied leaves the caller no longer the holder with that lease): a refusal
    /// after an unknown attempt is itself unknown, and is answered `UNAVAILABLE`.
    Unrepeatable,
}

/// A unary request of the lock service.
pub trait LockRpc: Clone + Send + 'static {
    /// What the node answers.
    type Reply;
    /// Whether a repeat after an unknown outcome is safe.
    const REPEAT: Repeat;
    /// The lock group the request is for.
    fn group(&self) -> GroupId;
    /// Sends `request` through `client`.
    fn call(
        client: LockServiceClient<Channel>,
        request: tonic::Request<Self>,
    ) -> impl Future<Output = Result<tonic::Response<Self::Reply>, tonic::Status>> + Send;
}

/// Implements [`LockRpc`] for a request type: its reply, its repeat rule and its method.
macro_rules! lock_rpc {
    ($request:ty => $reply:ty, $repeat:expr, $method:ident) => {
        impl LockRpc for $request {
            type Reply = $reply;
            const REPEAT: Repeat = $repeat;
            fn group(&self) -> GroupId {
                self.group
            }
            async fn call(
                mut client: LockServiceClient<Channel>,
                request: tonic::Request<Self>,
            ) -> Result<tonic::Response<Self::Reply>, tonic::Status> {
                client.$method(request).await
            }
        }
    };
}

lock_rpc!(pb::AcquireRequest => pb::AcquireReply, Repeat::Idempotent, acquire);
lock_rpc!(pb::RenewRequest => pb::RenewReply, Repeat::Unrepeatable, renew);
lock_rpc!(pb::ReleaseRequest => pb::ReleaseReply, Repeat::Unrepeatable, release);
lock_rpc!(pb::GetRequest => pb::GetReply, Repeat::Idempotent, get);
lock_rpc!(pb::ListRequest => pb::ListReply, Repeat::Idempotent, list);
lock_rpc!(pb::CreateSessionRequest => pb::SessionReply, Repeat::Idempotent, create_session);
lock_rpc!(pb::CloseSessionRequest => pb::CloseSessionReply, Repeat::Unrepeatable, close_session);
lock_rpc!(pb::KeepAliveManyRequest => pb::KeepAliveManyReply, Repeat::Idempotent, keep_alive_many);
