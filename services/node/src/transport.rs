//! Raft messages between nodes. Every message names its group, so one connection between two
//! nodes carries all the groups they share. [`Transport`] is the swappable part (in-process
//! with fault injection in tests, gRPC in production); [`Router`] hands incoming messages to
//! the right group; [`GroupNetwork`] is openraft's network for one group over a transport.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};

use crate::pre_vote::{Contact, PreVoteRequest, PreVoteResponse};
use crate::raft::{NodeId, TypeConfig};
use crate::wal::GroupId;

/// A Raft message for one group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RaftRequest {
    /// Log replication and heartbeats.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Elections.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Would the receiver vote for the sender in the next term ([`crate::election`])?
    PreVote(PreVoteRequest),
}

/// The answer to a [`RaftRequest`], or the receiving group's refusal.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    /// Answers `AppendEntries`.
    AppendEntries(AppendEntriesResponse<NodeId>),
    /// Answers `Vote`.
    Vote(VoteResponse<NodeId>),
    /// Answers `InstallSnapshot`.
    InstallSnapshot(InstallSnapshotResponse<NodeId>),
    /// The receiving group failed the request.
    Refused(Refusal),
    /// Answers `PreVote`.
    PreVote(PreVoteResponse),
}

/// Why a node could not serve a Raft message.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The node hosts no replica of the group.
    #[error("group {0} is not hosted here")]
    NoSuchGroup(GroupId),
    /// The group's Raft failed the request.
    #[error(transparent)]
    Raft(RaftError<NodeId>),
    /// The group's Raft failed a snapshot chunk.
    #[error(transparent)]
    Snapshot(RaftError<NodeId, InstallSnapshotError>),
}

/// The peer could not be reached (down, partitioned, connection failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("node {node} unreachable: {reason}")]
pub struct PeerUnreachable {
    /// The peer.
    pub node: NodeId,
    /// What failed.
    pub reason: String,
}

/// A boxed future, so that transports can be used as trait objects.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Carries Raft messages to other nodes.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` for `group` to node `target`, listening at `addr` (as recorded in the
    /// group's membership), and waits for its answer.
    fn send(
        &self,
        target: NodeId,
        addr: &str,
        group: GroupId,
        request: RaftRequest,
    ) -> BoxFuture<Result<RaftResponse, PeerUnreachable>>;
}

/// Hands incoming Raft messages to the groups hosted on this node.
#[derive(Default)]
pub struct Router {
    /// This node's id (0: not said, as in transports that need no check).
    node: NodeId,
    groups: RwLock<HashMap<GroupId, Route>>,
}

/// Where a group's messages go: its Raft, and what records its leader's contact.
type Route = (Raft<TypeConfig>, Arc<Contact>);

impl Router {
    /// The router of node `node`.
    pub fn new(node: NodeId) -> Self {
        Self {
            node,
            groups: RwLock::default(),
        }
    }

    /// Why a message addressed to node `target` is not for this one, if it is not: an
    /// address that another node (or another cluster's node) listens on now, after the
    /// node the sender means went away. Delivering it would mix another Raft's messages
    /// into this node's groups. A `target` of 0 (a sender that does not say) is taken.
    pub fn refuses(&self, target: NodeId) -> Option<String> {
        (target != 0 && self.node != 0 && target != self.node).then(|| {
            format!(
                "this is node {}, not node {target}: the address is someone else's now",
                self.node
            )
        })
    }

    /// Routes messages for `group` to `raft` from now on, recording in `contact` when its
    /// leader's appends are accepted and answering pre-votes from it.
    pub fn register(&self, group: GroupId, raft: Raft<TypeConfig>, contact: Arc<Contact>) {
        self.groups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group, (raft, contact));
    }

    /// Stops routing messages for `group`.
    pub fn unregister(&self, group: GroupId) {
        self.groups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&group);
    }

    /// Serves one incoming message.
    pub async fn handle(&self, group: GroupId, request: RaftRequest) -> RaftResponse {
        let raft = self
            .groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&group)
            .cloned();
        let Some((raft, contact)) = raft else {
            return RaftResponse::Refused(Refusal::NoSuchGroup(group));
        };
        match request {
            RaftRequest::AppendEntries(rpc) => match raft.append_entries(rpc).await {
                Ok(r) => {
                    // A leader this replica follows (not a stale one it refused).
                    if !matches!(r, AppendEntriesResponse::HigherVote(_)) {
                        contact.heard_from_leader();
                    }
                    RaftResponse::AppendEntries(r)
                }
                Err(e) => RaftResponse::Refused(Refusal::Raft(e)),
            },
            RaftRequest::PreVote(rpc) => RaftResponse::PreVote(contact.answer(&raft, &rpc)),
            RaftRequest::Vote(rpc) => match raft.vote(rpc).await {
                Ok(r) => RaftResponse::Vote(r),
                Err(e) => RaftResponse::Refused(Refusal::Raft(e)),
            },
            RaftRequest::InstallSnapshot(rpc) => match raft.install_snapshot(rpc).await {
                Ok(r) => RaftResponse::InstallSnapshot(r),
                Err(e) => RaftResponse::Refused(Refusal::Snapshot(e)),
            },
        }
    }
}

/// openraft's network for one group: every peer is reached through the node's transport.
#[derive(Clone)]
pub struct GroupNetwork {
    group: GroupId,
    transport: Arc<dyn Transport>,
}

impl GroupNetwork {
    /// The network of `group` over `transport`.
    pub fn new(group: GroupId, transport: Arc<dyn Transport>) -> Self {
        Self { group, transport }
    }

    /// The transport under it (for messages openraft does not send, like pre-votes).
    pub fn transport(&self) -> Arc<dyn Transport> {
        Arc::clone(&self.transport)
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            group: self.group,
            transport: Arc::clone(&self.transport),
        }
    }
}

/// One group's connection to one peer.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    group: GroupId,
    transport: Arc<dyn Transport>,
}

type RpcResult<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, BasicNode, E>>;

/// How one RPC's answer is read: the expected answer, the group's typed refusal, or
/// anything else (a network-level error). Lives only while one answer is read, so the size
/// of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Pick<T, E> {
    Answer(T),
    Refused(E),
    Other(RaftResponse),
}

impl PeerClient {
    /// Sends `request` and maps the answer as `pick` reads it.
    async fn rpc<T, E: std::error::Error>(
        &self,
        request: RaftRequest,
        pick: impl FnOnce(RaftResponse) -> Pick<T, E>,
    ) -> RpcResult<T, E> {
        let response = self
            .transport
            .send(self.target, &self.addr, self.group, request)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        match pick(response) {
            Pick::Answer(answer) => Ok(answer),
            Pick::Refused(refusal) => Err(RPCError::RemoteError(RemoteError::new(
                self.target,
                refusal,
            ))),
            Pick::Other(RaftResponse::Refused(refusal)) => {
                Err(RPCError::Network(NetworkError::new(&refusal)))
            }
            Pick::Other(other) => Err(RPCError::Network(NetworkError::new(
                &std::io::Error::other(format!("unexpected answer {other:?}")),
            ))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.rpc(RaftRequest::AppendEntries(rpc), |response| match response {
            RaftResponse::AppendEntries(r) => Pick::Answer(r),
            RaftResponse::Refused(Refusal::Raft(e)) => Pick::Refused(e),
            other => Pick::Other(other),
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.rpc(
            RaftRequest::InstallSnapshot(rpc),
            |response| match response {
                RaftResponse::InstallSnapshot(r) => Pick::Answer(r),
                RaftResponse::Refused(Refusal::Snapshot(e)) => Pick::Refused(e),
                other => Pick::Other(other),
            },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.rpc(RaftRequest::Vote(rpc), |response| match response {
            RaftResponse::Vote(r) => Pick::Answer(r),
            RaftResponse::Refused(Refusal::Raft(e)) => Pick::Refused(e),
            other => Pick::Other(other),
        })
        .await
    }
}

#[cfg(test)]
mod router_tests {
    use super::*;

    #[test]
    fn a_message_for_another_node_is_refused() {
        let router = Router::new(4);
        assert_eq!(router.refuses(4), None);
        assert_eq!(router.refuses(0), None, "a sender that does not say");
        let refusal = router.refuses(1).unwrap_or_default();
        assert!(refusal.contains("not node 1"), "{refusal}");
        assert_eq!(
            Router::default().refuses(1),
            None,
            "a router with no id checks nothing"
        );
    }
}
