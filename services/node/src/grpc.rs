//! Raft messages between nodes over gRPC (tonic): the production [`Transport`].
//!
//! One RPC, `lockplane.raft.v1.RaftTransport/Call` (see `proto/raft.proto`): the request
//! names the group and carries the postcard-encoded [`RaftRequest`]; the reply carries the
//! encoded [`RaftResponse`]. Each peer gets one lazily connected channel — one HTTP/2
//! connection — shared by every group the two nodes have in common. Snapshots travel as
//! openraft's chunked `InstallSnapshot` messages.
//!
//! The two message types are written out here with prost's derive instead of being
//! generated at build time, so building needs no `protoc` and no build script.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::codegen::{Body, BoxFuture as TonicFuture, Service, StdError, http};
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;

use crate::raft::NodeId;
use crate::raft::codec::{from_bytes, to_vec};
use crate::transport::{BoxFuture, PeerUnreachable, RaftRequest, RaftResponse, Router, Transport};
use crate::wal::GroupId;

const SERVICE: &str = "lockplane.raft.v1.RaftTransport";
const CALL: &str = "/lockplane.raft.v1.RaftTransport/Call";

/// Largest Raft message accepted either way (entries batches, snapshot chunks).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// `RaftMessage` of `proto/raft.proto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RaftMessage {
    /// The group the message is for.
    #[prost(uint32, tag = "1")]
    pub group: u32,
    /// The postcard-encoded `RaftRequest`.
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
}

/// `RaftReply` of `proto/raft.proto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RaftReply {
    /// The postcard-encoded `RaftResponse`.
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
}

/// The client side: sends Raft messages to peers over one channel per peer.
#[derive(Default)]
pub struct GrpcTransport {
    channels: Mutex<HashMap<NodeId, (String, Channel)>>,
}

impl GrpcTransport {
    /// The channel to `target` at `addr`, made (lazily connecting) on first use and remade
    /// if the peer's address changed.
    fn channel(&self, target: NodeId, addr: &str) -> Result<Channel, PeerUnreachable> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((known, channel)) = channels.get(&target) {
            if known == addr {
                return Ok(channel.clone());
            }
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| unreachable(target, &format!("bad address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10));
        let channel = endpoint.connect_lazy();
        channels.insert(target, (addr.to_string(), channel.clone()));
        Ok(channel)
    }
}

fn unreachable(node: NodeId, reason: &str) -> PeerUnreachable {
    PeerUnreachable {
        node,
        reason: reason.to_string(),
    }
}

impl Transport for GrpcTransport {
    fn send(
        &self,
        target: NodeId,
        addr: &str,
        group: GroupId,
        request: RaftRequest,
    ) -> BoxFuture<Result<RaftResponse, PeerUnreachable>> {
        let channel = self.channel(target, addr);
        Box::pin(async move {
            let payload = to_vec(&request).map_err(|e| unreachable(target, &e.to_string()))?;
            let mut grpc = tonic::client::Grpc::new(channel?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            grpc.ready()
                .await
                .map_err(|e| unreachable(target, &e.to_string()))?;
            let reply: tonic::Response<RaftReply> = grpc
                .unary(
                    tonic::Request::new(RaftMessage { group, payload }),
                    http::uri::PathAndQuery::from_static(CALL),
                    ProstCodec::default(),
                )
                .await
                .map_err(|status| unreachable(target, status.message()))?;
            from_bytes(&reply.into_inner().payload).map_err(|e| unreachable(target, &e.to_string()))
        })
    }
}

/// The server side: serves `RaftTransport` by handing each message to the node's router.
#[derive(Clone)]
pub struct RaftServer {
    router: Arc<Router>,
}

impl RaftServer {
    /// Serves messages for the groups `router` knows.
    pub fn new(router: Arc<Router>) -> Self {
        Self { router }
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .serve_with_incoming_shutdown(
                self,
                tonic::transport::server::TcpIncoming::from(listener),
                shutdown,
            )
            .await
    }
}

impl tonic::server::NamedService for RaftServer {
    const NAME: &'static str = SERVICE;
}

struct CallService(Arc<Router>);

impl tonic::server::UnaryService<RaftMessage> for CallService {
    type Response = RaftReply;
    type Future = TonicFuture<tonic::Response<RaftReply>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<RaftMessage>) -> Self::Future {
        let router = Arc::clone(&self.0);
        Box::pin(async move {
            let message = request.into_inner();
            let raft_request: RaftRequest = from_bytes(&message.payload).map_err(|e| {
                tonic::Status::invalid_argument(format!("undecodable raft message: {e}"))
            })?;
            let response = router.handle(message.group, raft_request).await;
            let payload = to_vec(&response).map_err(|e| tonic::Status::internal(e.to_string()))?;
            Ok(tonic::Response::new(RaftReply { payload }))
        })
    }
}

impl<B> Service<http::Request<B>> for RaftServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = TonicFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CALL {
            return Box::pin(async move {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    tonic::Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let router = Arc::clone(&self.router);
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::default())
                .apply_max_message_size_config(Some(MAX_MESSAGE_BYTES), Some(MAX_MESSAGE_BYTES));
            Ok(grpc.unary(CallService(router), request).await)
        })
    }
}
