//! `AdminService` (`shared/proto/proto/admin.proto`): the shard map, nodes joining and
//! leaving, membership changes of any group, tenants and their keys, and the admin token,
//! each run at the leader Raft needs. Every call that changes something is admitted only
//! with the admin token (`credentials`), except the first `SetAdminToken`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lockplane_proto::admin::admin_service_server::{AdminService, AdminServiceServer};
use lockplane_proto::admin::{self as pb};
use lockplane_proto::error_status;
use lockplane_proto::lock::{ErrorCode, ErrorDetail};
use openraft::{BasicNode, ChangeMembers, Raft};
use shard_map::{KeyHash, META_GROUP, MetaCommand, MetaReply, NodeInfo};
use tonic::{Request, Response, Status};

use super::admin_convert::{members, membership_error, meta_error, shard_map};
use super::credentials::{RunsAt, authorize};
use super::{convert, deadline};
use crate::group::{LockGroup, MetaGroup, ProposeError};
use crate::raft::{Entry, NodeId, TypeConfig};
use crate::wal::{GroupId, LogEngine};

/// The admin API over this node's replicas.
#[derive(Clone)]
pub struct AdminApi {
    node: NodeId,
    meta: Arc<MetaGroup>,
    groups: Arc<BTreeMap<GroupId, Arc<LockGroup>>>,
    log: Arc<LogEngine<Entry>>,
}

impl AdminApi {
    /// Serves node `node`'s meta replica and lock group replicas.
    pub fn new(
        node: NodeId,
        meta: Arc<MetaGroup>,
        groups: impl IntoIterator<Item = Arc<LockGroup>>,
        log: Arc<LogEngine<Entry>>,
    ) -> Self {
        Self {
            node,
            meta,
            groups: Arc::new(groups.into_iter().map(|g| (g.id(), g)).collect()),
            log,
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

    /// Admits `request` (a call that runs at `runs_at`) only with the admin token.
    async fn authorize<T>(&self, request: &Request<T>, runs_at: RunsAt) -> Result<(), Status> {
        authorize(request, &self.meta, runs_at, deadline::of(request)).await
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

impl AdminApi {
    /// Applies the command `make` builds from a tenant key request, which answers with a
    /// tenant (adding or rotating a key), once the request is admitted.
    async fn tenant_key(
        &self,
        request: Request<pb::AddTenantKeyRequest>,
        make: impl FnOnce(String, KeyHash) -> MetaCommand,
    ) -> Result<Response<pb::TenantKeyReply>, Status> {
        self.authorize(&request, RunsAt::MetaLeader).await?;
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let command = make(
            request.name.clone(),
            key_hash(&request.key_hash, "key_hash")?,
        );
        match self.meta.propose_meta(command, deadline).await {
            Ok(Ok(MetaReply::TenantKey { tenant, .. })) => Ok(Response::new(pb::TenantKeyReply {
                tenant,
                name: request.name,
            })),
            Ok(Ok(other)) => Err(error_status(ErrorDetail::new(
                ErrorCode::Internal,
                format!("a tenant key change answered {other:?}"),
            ))),
            Ok(Err(refused)) => Err(meta_error(refused)),
            Err(failed) => Err(convert::propose_error(failed)),
        }
    }
}

/// A SHA-256 from the wire, or `INVALID_ARGUMENT` naming `field`.
fn key_hash(bytes: &[u8], field: &str) -> Result<KeyHash, Status> {
    KeyHash::try_from(bytes).map_err(|_| {
        let mut detail = ErrorDetail::new(
            ErrorCode::InvalidArgument,
            format!("{field} must be a 32-byte SHA-256"),
        );
        detail.field = Some(field.into());
        error_status(detail)
    })
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
        self.authorize(&request, RunsAt::MetaLeader).await?;
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
        self.authorize(&request, RunsAt::MetaLeader).await?;
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
        self.authorize(&request, RunsAt::MetaLeader).await?;
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
        self.authorize(&request, RunsAt::MetaLeader).await?;
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
        self.authorize(&request, RunsAt::Here).await?;
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
        self.authorize(&request, RunsAt::Here).await?;
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
        self.tenant_key(request, |name, key_hash| MetaCommand::AddTenantKey {
            name,
            key_hash,
        })
        .await
    }

    async fn replace_tenant_keys(
        &self,
        request: Request<pb::AddTenantKeyRequest>,
    ) -> Result<Response<pb::TenantKeyReply>, Status> {
        self.tenant_key(request, |name, key_hash| MetaCommand::ReplaceTenantKeys {
            name,
            key_hash,
        })
        .await
    }

    async fn revoke_tenant_key(
        &self,
        request: Request<pb::AddTenantKeyRequest>,
    ) -> Result<Response<pb::ShardMap>, Status> {
        self.authorize(&request, RunsAt::MetaLeader).await?;
        let deadline = deadline::of(&request);
        let request = request.into_inner();
        let command = MetaCommand::RevokeTenantKey {
            name: request.name,
            key_hash: key_hash(&request.key_hash, "key_hash")?,
        };
        self.change_map(command, deadline).await.map(Response::new)
    }

    async fn set_admin_token(
        &self,
        request: Request<pb::SetAdminTokenRequest>,
    ) -> Result<Response<pb::ShardMap>, Status> {
        let deadline = deadline::of(&request);
        let token_hash = key_hash(&request.get_ref().token_hash, "token_hash")?;
        let bootstrap = request.get_ref().bootstrap;
        self.meta
            .read_barrier(deadline / 2)
            .await
            .map_err(convert::propose_error)?;
        let map = self.meta.shard_map();
        if map.is_admin(&token_hash) {
            // Already in force: a retry of a change that was applied (whose old token no
            // longer admits it), or a repeated bootstrap.
            return Ok(Response::new(shard_map(&map)));
        }
        if bootstrap && map.admin_token_hash.is_some() {
            return Err(meta_error(shard_map::MetaError::AdminTokenSet));
        }
        if !bootstrap {
            self.authorize(&request, RunsAt::MetaLeader).await?;
        }
        let command = MetaCommand::SetAdminToken {
            token_hash,
            bootstrap,
        };
        self.change_map(command, deadline).await.map(Response::new)
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
            log_health: self.log.health().describe(),
            log_write_errors: self.log.stats().write_errors,
        }))
    }
}
