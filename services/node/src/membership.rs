//! Admin runs over the admin API: moving a node in and out of the cluster (what `lockplane
//! cluster add-node` and `remove-node` run) and adding tenants' API keys. Each step is sent to the leader that must perform it
//! (following `NOT_LEADER` hints): membership changes at each group's leader, shard-map
//! changes at the meta group's leader. Every step is idempotent, so an interrupted run is
//! finished by running it again.

use std::time::Duration;

use lockplane_proto::RpcError;
use lockplane_proto::admin::admin_service_client::AdminServiceClient;
use lockplane_proto::admin::{self as pb};
use lockplane_proto::follow::at_leader;
use lockplane_proto::lock::{ErrorCode, ErrorDetail};

use crate::raft::NodeId;
use crate::wal::GroupId;

/// How long one step may keep retrying (elections, a learner catching up).
const PATIENCE: Duration = Duration::from_secs(60);

/// The deadline of one call; adding a voter waits for the learner to catch up.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_DEADLINE);
    request
}

/// The shard map, read at the meta group's leader through `endpoint`.
pub async fn shard_map(endpoint: &str) -> Result<pb::ShardMap, RpcError> {
    at_leader(endpoint, PATIENCE, |channel| async move {
        AdminServiceClient::new(channel)
            .get_shard_map(request(pb::GetShardMapRequest {}))
            .await
    })
    .await
}

/// Records node `node` (its address and region) in the shard map: a node joining.
pub async fn register(endpoint: &str, node: pb::NodeEntry) -> Result<pb::ShardMap, RpcError> {
    at_leader(endpoint, PATIENCE, |channel| {
        let node = node.clone();
        async move {
            AdminServiceClient::new(channel)
                .register_node(request(pb::RegisterNodeRequest { node: Some(node) }))
                .await
        }
    })
    .await
}

async fn set_placement(
    endpoint: &str,
    group: GroupId,
    voters: Vec<NodeId>,
) -> Result<(), RpcError> {
    at_leader(endpoint, PATIENCE, |channel| {
        let placement = pb::Placement {
            group,
            voters: voters.clone(),
        };
        async move {
            AdminServiceClient::new(channel)
                .set_placement(request(pb::SetPlacementRequest {
                    placement: Some(placement),
                }))
                .await
        }
    })
    .await
    .map(|_| ())
}

/// What a membership run changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// Each group's voters afterwards.
    pub voters: Vec<(GroupId, Vec<NodeId>)>,
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

/// Adds registered node `node` to the groups `only` names, or to every group (meta group
/// first): as a learner, then, once caught up, as a voter; records each group's new voters
/// in the shard map.
pub async fn add_node(
    endpoint: &str,
    node: NodeId,
    only: Option<&[GroupId]>,
) -> Result<Changed, RpcError> {
    let map = shard_map(endpoint).await?;
    let groups = groups(&map, only)?;
    let Some(entry) = map.nodes.iter().find(|n| n.id == node) else {
        return Err(RpcError::new(ErrorDetail::new(
            ErrorCode::UnknownNode,
            format!("node {node} has not joined: start it with `lockplane node --join {endpoint}`"),
        )));
    };
    let mut changed = Changed { voters: Vec::new() };
    for group in groups {
        let members = at_leader(endpoint, PATIENCE, |channel| {
            let change = pb::ChangeVoterRequest {
                group,
                node,
                addr: entry.addr.clone(),
            };
            async move {
                AdminServiceClient::new(channel)
                    .add_voter(request(change))
                    .await
            }
        })
        .await?;
        set_placement(endpoint, group, members.voters.clone()).await?;
        changed.voters.push((group, members.voters));
    }
    Ok(changed)
}

/// Removes node `node` from the groups `only` names and records their new voters; or,
/// without `only`, from every group, and then forgets the node. Refused for a group whose
/// last voter it is.
pub async fn remove_node(
    endpoint: &str,
    node: NodeId,
    only: Option<&[GroupId]>,
) -> Result<Changed, RpcError> {
    let map = shard_map(endpoint).await?;
    let mut changed = Changed { voters: Vec::new() };
    for group in groups(&map, only)? {
        let members = at_leader(endpoint, PATIENCE, |channel| {
            let change = pb::ChangeVoterRequest {
                group,
                node,
                addr: String::new(),
            };
            async move {
                AdminServiceClient::new(channel)
                    .remove_voter(request(change))
                    .await
            }
        })
        .await?;
        set_placement(endpoint, group, members.voters.clone()).await?;
        changed.voters.push((group, members.voters));
    }
    if only.is_some() {
        return Ok(changed);
    }
    at_leader(endpoint, PATIENCE, |channel| async move {
        AdminServiceClient::new(channel)
            .remove_node(request(pb::RemoveNodeRequest { id: node }))
            .await
    })
    .await?;
    Ok(changed)
}

/// Sets the quota of held locks of tenant `name` (`None` lifts it).
pub async fn set_tenant_quota(
    endpoint: &str,
    name: &str,
    max_locks: Option<u64>,
) -> Result<(), RpcError> {
    at_leader(endpoint, PATIENCE, |channel| {
        let message = pb::SetTenantQuotaRequest {
            name: name.to_string(),
            max_locks,
        };
        async move {
            AdminServiceClient::new(channel)
                .set_tenant_quota(request(message))
                .await
        }
    })
    .await
    .map(|_| ())
}

/// Creates tenant `name` if new and lets the API key hashed `key_hash` act as it; the
/// tenant's id.
pub async fn add_tenant_key(
    endpoint: &str,
    name: &str,
    key_hash: shard_map::KeyHash,
) -> Result<u64, RpcError> {
    let reply = at_leader(endpoint, PATIENCE, |channel| {
        let message = pb::AddTenantKeyRequest {
            name: name.to_string(),
            key_hash: key_hash.to_vec(),
        };
        async move {
            AdminServiceClient::new(channel)
                .add_tenant_key(request(message))
                .await
        }
    })
    .await?;
    Ok(reply.tenant)
}
