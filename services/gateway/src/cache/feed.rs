//! The change feeds: for every lock group, a `WatchChanges` stream from its leader whose
//! batches are written into the cache as they come. A feed that breaks (leader change,
//! node restart, a gateway too slow to keep up) or goes silent past two heartbeats (a
//! leader cut off without knowing it) is opened again, at whoever leads then; what
//! changed meanwhile reaches the cache when the entries expire (`max_staleness`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockplane_proto::lock as pb;
use shard_map::GroupId;
use tokio::task::JoinSet;

use super::StatusCache;
use super::stats::CacheEvent;
use crate::caller::Caller;
use crate::request::COMMIT_BUDGET;

/// How long a feed may stay silent before it is taken for dead: the leader sends an empty
/// batch every second.
const SILENCE: Duration = Duration::from_secs(3);

/// Pause before a broken feed is opened again.
const REOPEN_PAUSE: Duration = Duration::from_millis(200);

/// How often the set of groups is looked at for new ones.
const GROUPS_EVERY: Duration = Duration::from_secs(1);

/// Follows every group's feed until the returned task is aborted (which stops them all).
pub fn spawn(caller: Arc<Caller>, cache: Arc<StatusCache>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut followed = HashSet::new();
        let mut feeds = JoinSet::new();
        loop {
            for group in caller.cluster().groups() {
                if followed.insert(group) {
                    feeds.spawn(follow(Arc::clone(&caller), Arc::clone(&cache), group));
                }
            }
            tokio::time::sleep(GROUPS_EVERY).await;
        }
    })
}

/// Follows `group`'s feed for good, opening it again whenever it breaks.
async fn follow(caller: Arc<Caller>, cache: Arc<StatusCache>, group: GroupId) {
    let mut opened_before = false;
    loop {
        if let Ok(mut batches) = open(&caller, group).await {
            if opened_before {
                cache.stats().count(CacheEvent::FeedRestarted);
            }
            opened_before = true;
            while let Ok(Ok(Some(batch))) = tokio::time::timeout(SILENCE, batches.message()).await {
                if !batch.changes.is_empty() {
                    cache.apply(batch, Instant::now()).await;
                }
            }
        }
        tokio::time::sleep(REOPEN_PAUSE).await;
    }
}

/// The feed of `group` at its leader.
async fn open(
    caller: &Caller,
    group: GroupId,
) -> Result<tonic::Streaming<pb::ChangeBatch>, lockplane_proto::RpcError> {
    let deadline = Instant::now() + COMMIT_BUDGET;
    caller
        .call(group, deadline, |mut client, _left| async move {
            client
                .watch_changes(pb::WatchChangesRequest { group })
                .await
        })
        .await
}
