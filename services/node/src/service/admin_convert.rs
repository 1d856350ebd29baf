//! Wire forms of the admin API: the shard map as `admin.proto` spells it, and the status
//! of a refused shard-map change or a failed membership change.

use lockplane_proto::admin::{self as pb};
use lockplane_proto::error_status;
use lockplane_proto::lock::{ErrorCode, ErrorDetail};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, Raft};
use shard_map::{MetaError, ShardMap};
use tonic::Status;

use super::convert;
use crate::group::ProposeError;
use crate::raft::{NodeId, TypeConfig};
use crate::wal::GroupId;

/// The wire form of the shard map.
pub fn shard_map(map: &ShardMap) -> pb::ShardMap {
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
        admin_token_set: map.admin_token_hash.is_some(),
    }
}

/// The status of a refused shard-map change.
pub fn meta_error(error: MetaError) -> Status {
    let code = match &error {
        MetaError::NotInitialized => ErrorCode::NotInitialized,
        MetaError::AlreadyInitialized { .. } => ErrorCode::AlreadyInitialized,
        MetaError::Invalid { .. } => ErrorCode::InvalidArgument,
        MetaError::UnknownNode(_) => ErrorCode::UnknownNode,
        MetaError::UnknownGroup(_) => ErrorCode::InvalidArgument,
        MetaError::NodeInUse { .. } => ErrorCode::NodeInUse,
        MetaError::KeyInUse(_) => ErrorCode::KeyInUse,
        MetaError::TooManyKeys { .. } => ErrorCode::TooManyKeys,
        MetaError::UnknownKey { .. } => ErrorCode::NotFound,
        MetaError::AdminTokenSet => ErrorCode::PermissionDenied,
    };
    let mut detail = ErrorDetail::new(code, error.to_string());
    if let MetaError::Invalid { field, .. } = error {
        detail.field = Some(field);
    }
    error_status(detail)
}

/// The status of a failed membership change.
pub fn membership_error(
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

/// The voters and learners of `group` as its Raft has them.
pub fn members(group: GroupId, raft: &Raft<TypeConfig>) -> pb::GroupMembers {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let membership = metrics.membership_config.membership();
    pb::GroupMembers {
        group,
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    }
}
