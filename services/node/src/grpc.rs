//! Raft messages between nodes over gRPC (tonic): the production [`Transport`].
//!
//! Two RPCs (see `proto/raft.proto`): `Call` carries one message — the group id and the
//! postcard-encoded [`RaftRequest`] — and its encoded [`RaftResponse`]; `CallBatch` carries
//! many messages, of any groups, and their replies in the same order. Each peer gets one
//! lazily connected channel — one HTTP/2 connection — shared by every group the two nodes
//! have in common, and one sender task that batches: messages queued for the peer while
//! its earlier batches are in flight (at most [`MAX_IN_FLIGHT`]) leave together in one
//! `CallBatch`. Under load that turns many small calls into few; idle, the heartbeats the
//! node sends for all its groups at once (see `host`) reach each peer as one call.
//! Snapshot chunks travel alone, as openraft's chunked `InstallSnapshot` messages.
//!
//! The two message types are written out here with prost's derive instead of being
//! generated at build time, so building needs no `protoc` and no build script.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use lockplane_proto::Dialer;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::codegen::{Body, BoxFuture as TonicFuture, Service, StdError, http};
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

use crate::raft::NodeId;
use crate::raft::codec::{from_bytes, to_vec};
use crate::transport::{BoxFuture, PeerUnreachable, RaftRequest, RaftResponse, Router, Transport};
use crate::wal::GroupId;

const SERVICE: &str = "lockplane.raft.v1.RaftTransport";
const CALL: &str = "/lockplane.raft.v1.RaftTransport/Call";
const CALL_BATCH: &str = "/lockplane.raft.v1.RaftTransport/CallBatch";

/// Batches in flight to one peer at a time; more messages wait and join the next batch.
pub const MAX_IN_FLIGHT: usize = 4;

/// Most messages in one batch.
const MAX_BATCH: usize = 256;

/// Messages this large (snapshot chunks, big appends) are sent on their own.
const ALONE_BYTES: usize = 256 << 10;

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
    /// The node the message is for; a receiver that is another node refuses it.
    #[prost(uint64, tag = "3")]
    pub target: u64,
}

/// `RaftReply` of `proto/raft.proto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RaftReply {
    /// The postcard-encoded `RaftResponse`.
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
    /// Set instead of `payload` when the receiver could not serve the message.
    #[prost(string, tag = "2")]
    pub error: String,
}

/// `RaftBatch` of `proto/raft.proto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RaftBatch {
    /// Messages of any groups, served concurrently.
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<RaftMessage>,
}

/// `RaftBatchReply` of `proto/raft.proto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RaftBatchReply {
    /// One reply per message, in the batch's order.
    #[prost(message, repeated, tag = "1")]
    pub replies: Vec<RaftReply>,
}

/// The client side: sends Raft messages to peers over one channel and one batching sender
/// per peer. `Default` connects in plain HTTP/2; [`GrpcTransport::new`] with a TLS dialer
/// presents the node's cluster certificate to its peers.
#[derive(Default)]
pub struct GrpcTransport {
    dialer: Dialer,
    peers: Mutex<HashMap<NodeId, Peer>>,
}

/// One peer's connection and the queue of its sender task.
struct Peer {
    addr: String,
    channel: Channel,
    queue: mpsc::UnboundedSender<Queued>,
}

/// A message waiting for its batch, and where its answer goes.
struct Queued {
    message: RaftMessage,
    answer: oneshot::Sender<Result<RaftResponse, PeerUnreachable>>,
}

impl GrpcTransport {
    /// A transport that reaches peers through `dialer`.
    pub fn new(dialer: Dialer) -> Self {
        Self {
            dialer,
            peers: Mutex::default(),
        }
    }

    /// The peer `target` at `addr`, connected (lazily) on first use and reconnected if its
    /// address changed.
    fn peer(
        &self,
        target: NodeId,
        addr: &str,
    ) -> Result<(Channel, mpsc::UnboundedSender<Queued>), PeerUnreachable> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(peer) = peers.get(&target) {
            if peer.addr == addr && !peer.queue.is_closed() {
                return Ok((peer.channel.clone(), peer.queue.clone()));
            }
        }
        let endpoint = self
            .dialer
            .endpoint(addr)
            .map_err(|e| unreachable(target, &format!("bad address {addr:?}: {e}")))?;
        let channel = endpoint.connect_lazy();
        let (queue, queued) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(target, channel.clone(), queued));
        peers.insert(
            target,
            Peer {
                addr: addr.to_string(),
                channel: channel.clone(),
                queue: queue.clone(),
            },
        );
        Ok((channel, queue))
    }
}

fn unreachable(node: NodeId, reason: &str) -> PeerUnreachable {
    PeerUnreachable {
        node,
        reason: reason.to_string(),
    }
}

fn client(channel: Channel) -> tonic::client::Grpc<Channel> {
    tonic::client::Grpc::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Reads one reply of the peer.
fn answer(target: NodeId, reply: RaftReply) -> Result<RaftResponse, PeerUnreachable> {
    if !reply.error.is_empty() {
        return Err(unreachable(target, &reply.error));
    }
    from_bytes(&reply.payload).map_err(|e| unreachable(target, &e.to_string()))
}

/// Sends one message in its own call.
async fn call(
    channel: Channel,
    target: NodeId,
    message: RaftMessage,
) -> Result<RaftResponse, PeerUnreachable> {
    let mut grpc = client(channel);
    grpc.ready()
        .await
        .map_err(|e| unreachable(target, &e.to_string()))?;
    let reply: tonic::Response<RaftReply> = grpc
        .unary(
            tonic::Request::new(message),
            http::uri::PathAndQuery::from_static(CALL),
            ProstCodec::default(),
        )
        .await
        .map_err(|status| unreachable(target, status.message()))?;
    answer(target, reply.into_inner())
}

/// The peer's sender task: takes what is queued, up to [`MAX_BATCH`] messages, and sends
/// it as one `CallBatch` once fewer than [`MAX_IN_FLIGHT`] batches are in flight. Ends
/// when the transport forgets the peer.
async fn send_batches(
    target: NodeId,
    channel: Channel,
    mut queued: mpsc::UnboundedReceiver<Queued>,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = queued.recv().await {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let channel = channel.clone();
        tokio::spawn(async move {
            send_batch(channel, target, batch).await;
            drop(permit);
        });
    }
}

async fn send_batch(channel: Channel, target: NodeId, batch: Vec<Queued>) {
    let (messages, answers): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|q| (q.message, q.answer)).unzip();
    let mut grpc = client(channel);
    let sent = async {
        grpc.ready()
            .await
            .map_err(|e| unreachable(target, &e.to_string()))?;
        let reply: tonic::Response<RaftBatchReply> = grpc
            .unary(
                tonic::Request::new(RaftBatch { messages }),
                http::uri::PathAndQuery::from_static(CALL_BATCH),
                ProstCodec::default(),
            )
            .await
            .map_err(|status| unreachable(target, status.message()))?;
        Ok::<_, PeerUnreachable>(reply.into_inner().replies)
    };
    match sent.await {
        Ok(replies) if replies.len() == answers.len() => {
            for (reply, answer_to) in replies.into_iter().zip(answers) {
                let _ = answer_to.send(answer(target, reply));
            }
        }
        Ok(replies) => {
            let failure = unreachable(
                target,
                &format!("{} replies to {} messages", replies.len(), answers.len()),
            );
            for answer_to in answers {
                let _ = answer_to.send(Err(failure.clone()));
            }
        }
        Err(failure) => {
            for answer_to in answers {
                let _ = answer_to.send(Err(failure.clone()));
            }
        }
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
        let peer = self.peer(target, addr);
        Box::pin(async move {
            let (channel, queue) = peer?;
            let payload = to_vec(&request).map_err(|e| unreachable(target, &e.to_string()))?;
            let message = RaftMessage {
                group,
                payload,
                target,
            };
            if message.payload.len() >= ALONE_BYTES {
                return call(channel, target, message).await;
            }
            let (answer_to, answered) = oneshot::channel();
            queue
                .send(Queued {
                    message,
                    answer: answer_to,
                })
                .map_err(|_| unreachable(target, "sender stopped"))?;
            answered
                .await
                .map_err(|_| unreachable(target, "sender stopped"))?
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
            if let Some(refusal) = router.refuses(message.target) {
                return Ok(tonic::Response::new(RaftReply {
                    payload: Vec::new(),
                    error: refusal,
                }));
            }
            let raft_request: RaftRequest = from_bytes(&message.payload).map_err(|e| {
                tonic::Status::invalid_argument(format!("undecodable raft message: {e}"))
            })?;
            let response = router.handle(message.group, raft_request).await;
            let payload = to_vec(&response).map_err(|e| tonic::Status::internal(e.to_string()))?;
            Ok(tonic::Response::new(RaftReply {
                payload,
                error: String::new(),
            }))
        })
    }
}

/// Serves one message of a batch; failures become the reply's `error`.
async fn serve_one(router: Arc<Router>, message: RaftMessage) -> RaftReply {
    if let Some(refusal) = router.refuses(message.target) {
        return RaftReply {
            payload: Vec::new(),
            error: refusal,
        };
    }
    let served = match from_bytes::<RaftRequest>(&message.payload) {
        Ok(request) => to_vec(&router.handle(message.group, request).await),
        Err(e) => Err(e),
    };
    match served {
        Ok(payload) => RaftReply {
            payload,
            error: String::new(),
        },
        Err(e) => RaftReply {
            payload: Vec::new(),
            error: format!("raft message for group {}: {e}", message.group),
        },
    }
}

struct BatchService(Arc<Router>);

impl tonic::server::UnaryService<RaftBatch> for BatchService {
    type Response = RaftBatchReply;
    type Future = TonicFuture<tonic::Response<RaftBatchReply>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<RaftBatch>) -> Self::Future {
        let router = Arc::clone(&self.0);
        Box::pin(async move {
            let served: Vec<_> = request
                .into_inner()
                .messages
                .into_iter()
                .map(|message| tokio::spawn(serve_one(Arc::clone(&router), message)))
                .collect();
            let mut replies = Vec::with_capacity(served.len());
            for reply in served {
                replies.push(reply.await.unwrap_or_else(|e| RaftReply {
                    payload: Vec::new(),
                    error: format!("raft message handler failed: {e}"),
                }));
            }
            Ok(tonic::Response::new(RaftBatchReply { replies }))
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
        if request.uri().path() == CALL_BATCH {
            let router = Arc::clone(&self.router);
            return Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default())
                    .apply_max_message_size_config(
                        Some(MAX_MESSAGE_BYTES),
                        Some(MAX_MESSAGE_BYTES),
                    );
                Ok(grpc.unary(BatchService(router), request).await)
            });
        }
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
