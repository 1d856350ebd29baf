//! Admin runs over the admin API, as [`Admin`] sends them: moving a node in and out of the
//! cluster (what `lockplane cluster add-node` and `remove-node` run), tenants and their API
//! keys, and the admin token. Each step is sent to the leader that must perform it
//! (following `NOT_LEADER` hints): membership changes at each group's leader, shard-map
//! changes at the meta group's leader. Every step is idempotent, so an interrupted run is
//! finished by running it again.

use std::future::Future;
use std::time::Duration;

use lockplane_proto::admin::admin_service_client::AdminServiceClient;
use lockplane_proto::admin::{self as pb};
use lockplane_proto::follow::at_leader;
use lockplane_proto::lock::{ErrorCode, ErrorDetail};
use lockplane_proto::{Dialer, RpcError};
use shard_map::KeyHash;
use tonic::transport::Channel;

use crate::raft::NodeId;
use crate::wal::GroupId;

/// How long one step may keep retrying (elections, a learner catching up).
const PATIENCE: Duration = Duration::from_secs(60);

/// The deadline of one call; adding a voter waits for the learner to catch up.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// What a membership run changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// Each group's voters afterwards.
    pub voters: Vec<(GroupId, Vec<NodeId>)>,
}

/// The admin API of a cluster, reached through one of its nodes.
#[derive(Clone, Debug)]
pub struct Admin {
    dialer: Dialer,
    endpoint: String,
}

impl Admin {
    /// Admin calls through the node at `endpoint` (`host:port`), made with `dialer` (its
    /// TLS settings and admin token).
    pub fn new(dialer: Dialer, endpoint: impl Into<String>) -> Self {
        Self {
            dialer,
            endpoint: endpoint.into(),
        }
    }

    /// The node calls start at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `message` to `rpc` at whichever node must serve it.
    async fn call<M, T, F, Fut>(&self, message: M, rpc: F) -> Result<T, RpcError>
    where
        M: Clone,
        F: Fn(AdminServiceClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        at_leader(&self.dialer, &self.endpoint, PATIENCE, |channel| {
            let request = self.dialer.request(message.clone(), CALL_DEADLINE);
            rpc(AdminServiceClient::new(channel), request)
        })
        .await
    }

    /// The shard map, read at the meta group's leader.
    pub async fn shard_map(&self) -> Result<pb::ShardMap, RpcError> {
        self.call(pb::GetShardMapRequest {}, |mut c, r| async move {
            c.get_shard_map(r).await
        })
        .await
    }

    /// Every group's leader, term and members as the endpoint sees them.
    pub async fn status(&self) -> Result<pb::StatusReply, RpcError> {
        let mut client = AdminServiceClient::new(self.dialer.channel(&self.endpoint)?);
        let request = self.dialer.request(pb::StatusRequest {}, CALL_DEADLINE);
        Ok(client.status(request).await?.into_inner())
    }

    /// Records node `node` (its address and region) in the shard map: a node joining.
    pub async fn register(&self, node: pb::NodeEntry) -> Result<pb::ShardMap, RpcError> {
        let message = pb::RegisterNodeRequest { node: Some(node) };
        self.call(message, |mut c, r| async move { c.register_node(r).await })
            .await
    }

    async fn set_placement(&self, group: GroupId, voters: Vec<NodeId>) -> Result<(), RpcError> {
        let message = pb::SetPlacementRequest {
            placement: Some(pb::Placement { group, voters }),
        };
        self.call(message, |mut c, r| async move { c.set_placement(r).await })
            .await
            .map(|_| ())
    }

    /// Adds registered node `node` to the groups `only` names, or to every group (meta
    /// group first): as a learner, then, once caught up, as a voter; records each group's
    /// new voters in the shard map.
    pub async fn add_node(
        &self,
        node: NodeId,
        only: Option<&[GroupId]>,
    ) -> Result<Changed, RpcError> {
        let map = self.shard_map().await?;
        let groups = groups(&map, only)?;
        let Some(entry) = map.nodes.iter().find(|n| n.id == node) else {
            return Err(RpcError::new(ErrorDetail::new(
                ErrorCode::UnknownNode,
                format!(
                    "node {node} has not joined: start it with `lockplane node --join {}`",
                    self.endpoint
                ),
            )));
        };
        let mut changed = Changed { voters: Vec::new() };
        for group in groups {
            let change = pb::ChangeVoterRequest {
                group,
                node,
                addr: entry.addr.clone(),
            };
            let members = self
                .call(change, |mut c, r| async move { c.add_voter(r).await })
                .await?;
            self.set_placement(group, members.voters.clone()).await?;
            changed.voters.push((group, members.voters));
        }
        Ok(changed)
    }

    /// Removes node `node` from the groups `only` names and records their new voters; or,
    /// without `only`, from every group, and then forgets the node. Refused for a group
    /// whose last voter it is.
    pub async fn remove_node(
        &self,
        node: NodeId,
        only: Option<&[GroupId]>,
    ) -> Result<Changed, RpcError> {
        let map = self.shard_map().await?;
        let mut changed = Changed { voters: Vec::new() };
        for group in groups(&map, only)? {
            let change = pb::ChangeVoterRequest {
                group,
                node,
                addr: String::new(),
            };
            let members = self
                .call(change, |mut c, r| async move { c.remove_voter(r).await })
                .await?;
            self.set_placement(group, members.voters.clone()).await?;
            changed.voters.push((group, members.voters));
        }
        if only.is_some() {
            return Ok(changed);
        }
        let message = pb::RemoveNodeRequest { id: node };
        self.call(message, |mut c, r| async move { c.remove_node(r).await })
            .await?;
        Ok(changed)
    }

    /// Sets the quota of held locks of tenant `name` (`None` lifts it).
    pub async fn set_tenant_quota(
        &self,
        name: &str,
        max_locks: Option<u64>,
    ) -> Result<(), RpcError> {
        let message = pb::SetTenantQuotaRequest {
            name: name.to_string(),
            max_locks,
        };
        self.call(
            message,
            |mut c, r| async move { c.set_tenant_quota(r).await },
        )
        .await
        .map(|_| ())
    }

    /// Creates tenant `name` if new and lets the API key hashed `key_hash` act as it; the
    /// tenant's id.
    pub async fn add_tenant_key(&self, name: &str, key_hash: KeyHash) -> Result<u64, RpcError> {
        let message = tenant_key(name, key_hash);
        let reply = self
            .call(message, |mut c, r| async move { c.add_tenant_key(r).await })
            .await?;
        Ok(reply.tenant)
    }

    /// Makes the API key hashed `key_hash` tenant `name`'s only key; the tenant's id.
    pub async fn replace_tenant_keys(
        &self,
        name: &str,
        key_hash: KeyHash,
    ) -> Result<u64, RpcError> {
        let message = tenant_key(name, key_hash);
        let reply = self
            .call(
                message,
                |mut c, r| async move { c.replace_tenant_keys(r).await },
            )
            .await?;
        Ok(reply.tenant)
    }

    /// Stops the API key hashed `key_hash` from acting as tenant `name`.
    pub async fn revoke_tenant_key(&self, name: &str, key_hash: KeyHash) -> Result<(), RpcError> {
        let message = tenant_key(name, key_hash);
        self.call(
            message,
            |mut c, r| async move { c.revoke_tenant_key(r).await },
        )
        .await
        .map(|_| ())
    }

    /// Sets the admin token's hash: with `bootstrap`, the cluster's first (refused if one
    /// is set); otherwise a replacement, which this dialer's current token authorizes.
    pub async fn set_admin_token(
        &self,
        token_hash: KeyHash,
        bootstrap: bool,
    ) -> Result<(), RpcError> {
        let message = pb::SetAdminTokenRequest {
            token_hash: token_hash.to_vec(),
            bootstrap,
        };
        self.call(
            message,
            |mut c, r| async move { c.set_admin_token(r).await },
        )
        .await
        .map(|_| ())
    }
}

fn tenant_key(name: &str, key_hash: KeyHash) -> pb::AddTenantKeyRequest {
    pb::AddTenantKeyRequest {
        name: name.to_string(),
        key_hash: key_hash.to_vec(),
    }
}

/// The groups a run covers: `only`, or every group of the map (meta group first).
fn groups(map: &pb::ShardMap, only: Option<&[GroupId]>) -> Result<Vec<GroupId>, RpcError> {
    let all: Vec<GroupId> = (0..=map.shards).collect();
    match only {
        None => Ok(all),
        Some(chosen) => match chosen.iter().find(|g| !all.contains(g)) {
            Some(bad) => Err(RpcError::new(ErrorDetail::new(
                ErrorCode::InvalidArgument,
                format!("group {bad} does not exist (groups are 0..={})", map.shards),
            ))),
            None => Ok(chosen.to_vec()),
        },
    }
}
