//! The change feeds: for every lock group, a `WatchChanges` stream from its leader whose
//! batches are written into the cache. Batches are read as soon as they arrive, so the
//! time a change waited is counted from when the leader sent it, and pending changes are
//! folded per key (the newest version wins) while the previous ones are written. A feed
//! that breaks (leader change, node restart, a gateway too slow to keep up) or goes silent
//! past two heartbeats (a leader cut off without knowing it) is opened again, at whoever
//! leads then, from the version it last received: the leader replays the keys changed
//! since, if it still keeps those entries. If it does not (counted as a feed gap), what
//! changed meanwhile reaches the cache when the entries expire (`max_staleness`).

use std::collections::HashMap;
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

/// How often the set of groups is looked at for new ones (and feeds that ended).
const GROUPS_EVERY: Duration = Duration::from_secs(1);

/// One key's new status, as a feed delivered it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The key's tenant.
    pub tenant: u64,
    /// Its status (with its name).
    pub status: pb::LockStatus,
    /// The log index the status was read at.
    pub version: u64,
    /// When the gateway received it.
    pub received_at: Instant,
}

/// Follows every group's feed until the returned task is aborted (which stops them all).
/// A feed task that ends (it panicked) is started again.
pub fn spawn(caller: Arc<Caller>, cache: Arc<StatusCache>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut followed: HashMap<tokio::task::Id, GroupId> = HashMap::new();
        let mut feeds = JoinSet::new();
        loop {
            while let Some(ended) = feeds.try_join_next_with_id() {
                let id = match ended {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                if let Some(group) = followed.remove(&id) {
                    tracing::warn!(
                        group,
                        "status cache: a change feed ended; starting it again"
                    );
                }
            }
            for group in caller.cluster().groups() {
                if !followed.values().any(|g| *g == group) {
                    let feed = follow(Arc::clone(&caller), Arc::clone(&cache), group);
                    followed.insert(feeds.spawn(feed).id(), group);
                }
            }
            tokio::time::sleep(GROUPS_EVERY).await;
        }
    })
}

/// Follows `group`'s feed for good, opening it again whenever it breaks, from where the
/// last one had delivered every change.
async fn follow(caller: Arc<Caller>, cache: Arc<StatusCache>, group: GroupId) {
    let mut received: Option<u64> = None;
    let mut opened_before = false;
    loop {
        if let Ok(batches) = open(&caller, group, received).await {
            if opened_before {
                cache.stats().count(CacheEvent::FeedRestarted);
            }
            opened_before = true;
            received = drain(batches, &cache, received).await;
        }
        tokio::time::sleep(REOPEN_PAUSE).await;
    }
}

/// Reads `batches` until the feed ends or goes silent, writing what they bring: one write
/// of the pending changes at a time, the next batches folded in meanwhile. Returns where
/// to reopen from: the last batch's `through`, or `received` if this stream sent none.
async fn drain(
    mut batches: tonic::Streaming<pb::ChangeBatch>,
    cache: &Arc<StatusCache>,
    mut received: Option<u64>,
) -> Option<u64> {
    let mut pending: HashMap<(u64, String), Change> = HashMap::new();
    let mut writing: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        if writing.is_none() && !pending.is_empty() {
            let changes = pending.drain().map(|(_, change)| change).collect();
            let cache = Arc::clone(cache);
            writing = Some(tokio::spawn(async move { cache.apply(changes).await }));
        }
        tokio::select! {
            next = tokio::time::timeout(SILENCE, batches.message()) => match next {
                Ok(Ok(Some(batch))) => {
                    if batch.not_replayed {
                        cache.stats().count(CacheEvent::FeedGap);
                    }
                    // A stream's `through` only grows; a new stream's may start lower when
                    // its leader could not replay from ours, and then it is the one to go on from.
                    received = Some(batch.through);
                    fold(&mut pending, batch, Instant::now());
                }
                _ => break,
            },
            _ = async {
                if let Some(write) = writing.as_mut() {
                    let _ = write.await;
                }
            }, if writing.is_some() => writing = None,
        }
    }
    if let Some(write) = writing {
        let _ = write.await;
    }
    if !pending.is_empty() {
        cache.apply(pending.into_values().collect()).await;
    }
    received
}

/// Adds `batch`'s changes to `pending`, keeping the newest version of each key.
fn fold(pending: &mut HashMap<(u64, String), Change>, batch: pb::ChangeBatch, at: Instant) {
    for change in batch.changes {
        let Some(status) = change.status else {
            continue;
        };
        let key = (change.tenant, status.name.clone());
        let newer = Change {
            tenant: change.tenant,
            status,
            version: batch.version,
            received_at: at,
        };
        match pending.get(&key) {
            Some(held) if held.version >= newer.version => {}
            _ => {
                pending.insert(key, newer);
            }
        }
    }
}

/// The feed of `group` at its leader, from after version `after` when given.
async fn open(
    caller: &Caller,
    group: GroupId,
    after: Option<u64>,
) -> Result<tonic::Streaming<pb::ChangeBatch>, lockplane_proto::RpcError> {
    let deadline = Instant::now() + COMMIT_BUDGET;
    caller
        .call(group, deadline, |mut client, _left| async move {
            client
                .watch_changes(pb::WatchChangesRequest { group, after })
                .await
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(version: u64, names: &[&str]) -> pb::ChangeBatch {
        pb::ChangeBatch {
            version,
            not_replayed: false,
            through: version,
            changes: names
                .iter()
                .map(|name| pb::KeyChange {
                    tenant: 1,
                    status: Some(pb::LockStatus {
                        name: (*name).to_string(),
                        ..Default::default()
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn pending_changes_fold_to_the_newest_version_per_key() {
        let mut pending = HashMap::new();
        let now = Instant::now();
        fold(&mut pending, batch(5, &["a", "b"]), now);
        fold(&mut pending, batch(9, &["a"]), now);
        fold(&mut pending, batch(7, &["a", "c"]), now);
        assert_eq!(pending.len(), 3);
        assert_eq!(pending[&(1, "a".to_string())].version, 9);
        assert_eq!(pending[&(1, "b".to_string())].version, 5);
        assert_eq!(pending[&(1, "c".to_string())].version, 7);
    }
}
