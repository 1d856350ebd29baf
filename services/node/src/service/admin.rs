//! `AdminService` (`shared/proto/proto/admin.proto`): the shard map, nodes joining and
//! leaving, and membership changes of any group, each run at the leader Raft needs.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lockplane_proto::admin::admin_service_server::{AdminService, AdminServiceServer};
use lockplane_proto::admin::{self as pb};
use lockplane_proto::error_status;
use lockplane_proto::lock::{ErrorCode, ErrorDetail};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft};
use shard_map::{KeyHash, META_GROUP, MetaCommand, MetaError, MetaReply, NodeInfo, ShardMap};
use tonic::{Request, Response, Status};

use super::{convert, deadline};
use crate::group::{LockGroup, MetaGroup, ProposeError};
use crate::raft::{NodeId, TypeConfig};
use crate::wal::GroupId;

/// The admin API over this node's replicas.
#[derive(Clone)]
pub struct AdminApi {
    node: NodeId,
    meta: Arc<MetaGroup>,
    groups: Arc<BTreeMap<GroupId, Arc<LockGroup>>>,
}

impl AdminApi {
    /// Serves node `node`'s meta replica and lock group replicas.
    pub fn new(
        node: NodeId,
        meta: Arc<MetaGroup>,
        groups: impl IntoIterator<Item = Arc<LockGroup>>,
    ) -> Self {
        Self {
            node,
            meta,
            groups: Arc::new(groups.into_iter().map(|g| (g.id(), g)).collect()),
        }
    }

    /// The tonic service to mount on a server.
    pub fn into_service(self) -> AdminServiceServer<Self> {
        AdminServiceServer::new(self)
    }

    fn raft(&self, group: GroupId) -> Result<Raft<TypeConfig>, Status> {
        if group == META_GROUP {
            return Ok(self.meta.raft().clone());
        }
        self.groups
            .get(&group)
            .map(|g| g.raft().clone())
            .ok_or_else(|| convert::unknown_group(group))
    }

    async fn change_map(
        &self,
        command: MetaCommand,
        deadline: Duration,
    ) -> Result<pb::ShardMap, Status> {
        match self.meta.propose_meta(command, deadline).await {
            Ok(Ok(_)) => Ok(shard_map(&self.meta.shard_map())),
            Ok(Err(refused)) => Err(meta_error(refused)),
            Err(failed) => Err(convert::propose_error(failed)),
        }
    }
}

/// The wire form of the shard map.
fn shard_map(map: &ShardMap) -> pb::ShardMap {
    pb::ShardMap {
        version: map.version,
        shards: map.shards,
        nodes: map
            .nodes
            .iter()
            .map(|(id, info)| pb::NodeEntry {
                id: *id,
                addr: info.addr.clone(),
                region: info.region.clone(),
            })
            .collect(),
        placement: map
            .placement
            .iter()
            .map(|(group, voters)| pb::Placement {
                group: *group,
                voters: voters.iter().copied().collect(),
            })
            .collect(),
        tenants: map
            .tenants
            .iter()
            .map(|(id, tenant)| pb::TenantEntry {
                id: *id,
                name: tenant.name.clone(),
                key_hashes: tenant.key_hashes.iter().map(|h| h.to_vec()).collect(),
                max_locks: tenant.max_locks,
            })
            .collect(),
    }
}

/// The status of a refused shard-map change.
fn meta_error(error: MetaError) -> Status {
    let code = match &error {
        MetaError::NotInitialized => ErrorCode::NotInitialized,
        MetaError::AlreadyInitialized { .. } => ErrorCode::AlreadyInitialized,
        MetaError::Invalid { .. } => ErrorCode::InvalidArgument,
        MetaError::UnknownNode(_) => ErrorCode::UnknownNode,
        MetaError::UnknownGroup(_) => ErrorCode::InvalidArgument,
        MetaError::NodeInUse { .. } => ErrorCode::NodeInUse,
        MetaError::KeyInUse(_) => ErrorCode::KeyInUse,
        MetaError::TooManyKeys { .. } => ErrorCode::TooManyKeys,
    };
    let mut detail = ErrorDetail::new(code, error.to_string());
    if let MetaError::Invalid { field, .. } = error {
        detail.field = Some(field);
    }
    error_status(detail)
}

/// The status of a failed membership change.
fn membership_error(
    group: GroupId,
    error: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            convert::propose_error(ProposeError::NotLeader {
                group,
                leader: forward.leader_id,
                leader_addr: forward.leader_node.map(|n| n.addr),
            })
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(e),
        )) => convert::propose_error(ProposeError::Unavailable {
            group,
            reason: e.to_string(),
        }),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            error_status(ErrorDetail::new(ErrorCode::InvalidArgument, e.to_string()))
        }
        RaftError::Fatal(e) => convert::propose_error(ProposeError::Unavailable {
            group,
            reason: e.to_string(),
        }),
    }
}

fn members(group: GroupId, raft: &Raft<TypeConfig>) -> pb::GroupMembers {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let membership = metrics.membership_config.membership();
    pb::GroupMembers {
        group,
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    }
}

/// Runs a membership change of `group` for at most `deadline`.
async fn within(
    group: GroupId,
    deadline: Duration,
    change: impl Future<Output = Result<(), Status>>,
) -> Result<(), Status> {
    tokio::time::timeout(deadline, change).await.map_err(|_| {
        convert::propose_error(ProposeError::Unavailable {
            group,
            reason: format!("membership change did not finish within {deadline:?}"),
        })
    })?
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn get_shard_map(
        &self,
        request: Request<pb::GetShardMapRequest>,
    ) -> Result<Response<pb::ShardMap>, Status> {
        let deadline = deadline::of(&request);
        self.meta
            .read_barrier(deadline)
            .await
            .map_err(convert::propose_error)?;
        Ok(Response::new(shard_map(&self.meta.shard_map())))
    }

    async fn register_node(
        &self,
        request: Request<pb::RegisterNodeRequest>,
    ) -> Result<Response<pb::ShardMap>, Status> {
        let deadline = deadline::of(&request);
        let node = request.into_inner().node.unwrap_or_default();
        let command = MetaCommand::RegisterNode {
            id: node.id,
            info: NodeInfo {
                addr: node.addr,
                region: node.region,
            },
        };
        self.change_map(command, deadline).await.map(Response::new)
    }

    async fn set_placement(
        &self,
        request: Request<pb::SetPlacementRequest>,
    ) -> Result<Response<pb::ShardMap>, Status> {
        let deadline = deadline::of(&request);
        let placement = request.into_inner().placement.unwrap_or_default();
        let command = MetaCommand::SetPlacement {
            group: placement.group,
            voters: placement.voters.into_iter().collect(),
        };
        self.change_map(command, deadline).await.map(Response::new)
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::ShardMap>, Status> {
        let deadline = deadline::of(&request);
        let command = MetaCommand::RemoveNode {
            id: request.into_inner().id,
        };
        self.change_map(command, deadline).await.map(Response::new)
    }

    async fn set_tenant_quota(
        &self,
        request: Request<pb::SetTenantQuotaRequest>,
    ) -> Result<Response<pb::ShardMap>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let command = MetaCommand::SetTenantQuota {
            name: request.name,
            max_locks: request.max_locks,
        };
        self.change_map(command, deadline).await.map(Response::new)
    }

    async fn add_voter(
        &self,
        request: Request<pb::ChangeVoterRequest>,
    ) -> Result<Response<pb::GroupMembers>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let (group, node) = (request.group, request.node);
        if node == 0 || request.addr.is_empty() {
            return Err(error_status(ErrorDetail::new(
                ErrorCode::InvalidArgument,
                "adding a voter needs a positive node id and its address",
            )));
        }
        let raft = self.raft(group)?;
        let change = async {
            let voters: BTreeSet<NodeId> = members(group, &raft).voters.into_iter().collect();
            if voters.contains(&node) {
                return Ok::<(), Status>(());
            }
            raft.add_learner(node, BasicNode::new(request.addr.clone()), true)
                .await
                .map_err(|e| membership_error(group, e))?;
            raft.change_membership(ChangeMembers::AddVoterIds([node].into()), false)
                .await
                .map_err(|e| membership_error(group, e))?;
            Ok(())
        };
        within(group, deadline, change).await?;
        Ok(Response::new(members(group, &raft)))
    }

    async fn remove_voter(
        &self,
        request: Request<pb::ChangeVoterRequest>,
    ) -> Result<Response<pb::GroupMembers>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let (group, node) = (request.group, request.node);
        let raft = self.raft(group)?;
        let current = members(group, &raft);
        if !current.voters.contains(&node) && !current.learners.contains(&node) {
            return Ok(Response::new(current));
        }
        if current.voters == [node] {
            return Err(error_status(ErrorDetail::new(
                ErrorCode::InvalidArgument,
                format!("node {node} is the last voter of group {group}"),
            )));
        }
        let change = async {
            if current.voters.contains(&node) {
                raft.change_membership(ChangeMembers::RemoveVoters([node].into()), false)
                    .await
                    .map_err(|e| membership_error(group, e))?;
            }
            raft.change_membership(ChangeMembers::RemoveNodes([node].into()), false)
                .await
                .map_err(|e| membership_error(group, e))?;
            Ok::<(), Status>(())
        };
        within(group, deadline, change).await?;
        Ok(Response::new(members(group, &raft)))
    }

    async fn add_tenant_key(
        &self,
        request: Request<pb::AddTenantKeyRequest>,
    ) -> Result<Response<pb::TenantKeyReply>, Status> {
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let key_hash = KeyHash::try_from(request.key_hash.as_slice()).map_err(|_| {
            let mut detail = ErrorDetail::new(
                ErrorCode::InvalidArgument,
                "key_hash must be the 32-byte SHA-256 of the API key",
            );
            detail.field = Some("key_hash".into());
            error_status(detail)
        })?;
        let command = MetaCommand::AddTenantKey {
            name: request.name.clone(),
            key_hash,
        };
        match self.meta.propose_meta(command, deadline).await {
            Ok(Ok(MetaReply::TenantKey { tenant, .. })) => Ok(Response::new(pb::TenantKeyReply {
                tenant,
                name: request.name,
            })),
            Ok(Ok(other)) => Err(error_status(ErrorDetail::new(
                ErrorCode::Internal,
                format!("add-tenant-key answered {other:?}"),
            ))),
            Ok(Err(refused)) => Err(meta_error(refused)),
            Err(failed) => Err(convert::propose_error(failed)),
        }
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        let rafts = std::iter::once((META_GROUP, self.meta.raft().clone()))
            .chain(self.groups.iter().map(|(id, g)| (*id, g.raft().clone())));
        let groups = rafts
            .map(|(group, raft)| {
                let members = members(group, &raft);
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                pb::GroupStatus {
                    group,
                    leader: metrics.current_leader,
                    term: metrics.current_term,
                    voters: members.voters,
                    learners: members.learners,
                    last_applied: metrics.last_applied.map(|l| l.index),
                }
            })
            .collect();
        Ok(Response::new(pb::StatusReply {
            node: self.node,
            groups,
        }))
    }
}
