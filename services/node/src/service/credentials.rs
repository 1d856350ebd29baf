//! The admin token check: every admin call that changes something carries the cluster's
//! admin token (`authorization: Bearer <token>`); the node hashes it and compares the hash
//! with the one the meta group keeps. A node whose meta replica may lag (a token set a
//! moment ago) catches up before it refuses: the meta leader with a read barrier; a
//! follower sends a shard-map change on to the meta leader (`NOT_LEADER`, where it must run
//! anyway), and for other calls (membership changes, run at a lock group's leader) waits up
//! to [`CATCH_UP`] for its replica to apply what the leader sent.

use std::time::Duration;

use lockplane_proto::error_status;
use lockplane_proto::lock::{ErrorCode, ErrorDetail};
use shard_map::ShardMap;
use tonic::{Request, Status};

use super::convert;
use crate::group::MetaGroup;

/// The metadata key the token travels in.
pub const AUTHORIZATION: &str = "authorization";

/// How long a follower waits for its meta replica before refusing a token it does not
/// know (also what a wrong token costs its caller).
const CATCH_UP: Duration = Duration::from_secs(2);

/// How often a follower looks again.
const LOOK_AGAIN: Duration = Duration::from_millis(20);

/// Why the token of `request` does not admit it under `map`, if it does not.
fn refusal<T>(request: &Request<T>, map: &ShardMap) -> Option<&'static str> {
    let token = request
        .metadata()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match (token, map.admin_token_hash.is_some()) {
        (_, false) => Some(
            "the cluster has no admin token yet: create one with `lockplane cluster bootstrap`",
        ),
        (None, true) => Some(
            "this call needs the cluster's admin token (--admin-token or LOCKPLANE_ADMIN_TOKEN)",
        ),
        (Some(token), true) if !map.is_admin(&shard_map::key_hash(token)) => {
            Some("the admin token is not this cluster's")
        }
        (Some(_), true) => None,
    }
}

/// Where a call that changes something must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsAt {
    /// At the meta group's leader (shard-map changes).
    MetaLeader,
    /// Wherever it was sent (membership changes, at a lock group's leader).
    Here,
}

/// Admits `request` if it carries the admin token, else `PERMISSION_DENIED` saying why (or,
/// on a meta follower for a call that runs at the meta leader, `NOT_LEADER`).
pub async fn authorize<T>(
    request: &Request<T>,
    meta: &MetaGroup,
    runs_at: RunsAt,
    deadline: Duration,
) -> Result<(), Status> {
    if refusal(request, &meta.shard_map()).is_none() {
        return Ok(());
    }
    let give_up = tokio::time::Instant::now() + CATCH_UP.min(deadline / 2);
    let leading = match meta.read_barrier(deadline / 2).await {
        Ok(()) => true,
        Err(not_leader) if runs_at == RunsAt::MetaLeader => {
            return Err(convert::propose_error(not_leader));
        }
        Err(_) => false,
    };
    loop {
        let why = match refusal(request, &meta.shard_map()) {
            None => return Ok(()),
            Some(why) => why,
        };
        if leading || tokio::time::Instant::now() >= give_up {
            return Err(error_status(ErrorDetail::new(
                ErrorCode::PermissionDenied,
                why,
            )));
        }
        tokio::time::sleep(LOOK_AGAIN).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(token: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(token) = token {
            let value = format!("Bearer {token}")
                .parse()
                .unwrap_or_else(|_| tonic::metadata::MetadataValue::from_static("Bearer invalid"));
            request.metadata_mut().insert(AUTHORIZATION, value);
        }
        request
    }

    #[test]
    fn only_the_clusters_token_admits() {
        let mut map = ShardMap::default();
        assert!(refusal(&with_token(Some("t")), &map).is_some_and(|w| w.contains("bootstrap")));
        map.admin_token_hash = Some(shard_map::key_hash("t"));
        assert_eq!(refusal(&with_token(Some("t")), &map), None);
        assert!(refusal(&with_token(Some("u")), &map).is_some_and(|w| w.contains("not this")));
        assert!(refusal(&with_token(None), &map).is_some_and(|w| w.contains("needs")));
    }
}
