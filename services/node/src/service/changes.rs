//! `WatchChanges`: the new status of every key the group changes, streamed by its leader
//! as it applies each change, so gateways can keep their status cache fresh. Each batch
//! carries the keys that the entries applied since the last batch changed (their
//! `Invalidate` effects), with each key's status read once, after all of them, at the
//! applied index that is sent as the batch's version, and only once the gateway has taken
//! the batch before (so what it receives was read just before it was sent). A gateway that
//! reopens the stream names the version it last received, and the first batch also brings
//! every key changed since, as long as the leader's applied log still keeps those entries.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lock_core::{Effect, LockKey};
use lockplane_proto::lock::{self as pb};
use tokio::sync::{mpsc, watch};

use super::convert;
use crate::group::LockGroup;
use crate::raft::Applied;
use crate::raft::applied_log::Reader;

/// How often a leader with nothing to report says it still serves (an empty batch), so a
/// gateway can tell a quiet group from a leader that stopped and never said so.
pub const CHANGES_HEARTBEAT: Duration = Duration::from_secs(1);

/// Batches buffered for the gateway: one, and it is read only once the gateway has taken
/// the one before, so a status is read just before it is sent (its age on arrival is the
/// network's). Meanwhile applied entries wait in the group's applied log, and a gateway
/// that falls behind what it keeps is told `DATA_LOSS`.
const BUFFER: usize = 1;

/// Most keys read into one batch.
const MAX_KEYS: usize = 4_096;

/// Entries read from the applied log at once.
const READ_AT_ONCE: usize = 1_024;

/// The stream of changed keys of `group`, which this node must lead now: those changed
/// after `after` (when given and still kept), then every later change.
pub fn watch_changes(
    group: &Arc<LockGroup>,
    after: Option<u64>,
    closing: watch::Receiver<bool>,
) -> Result<mpsc::Receiver<Result<pb::ChangeBatch, tonic::Status>>, tonic::Status> {
    group.check_leader().map_err(convert::propose_error)?;
    let log = group.state_machine().applied_log();
    let mut reader = log.read_from_now();
    let mut not_replayed = false;
    if let Some(after) = after {
        // A leader holds every committed entry, so a position past its log was never
        // this group's (a rebuilt cluster, a restored backup, a confused caller).
        let last = group.raft().metrics().borrow().last_log_index.unwrap_or(0);
        if after > last {
            not_replayed = true;
        } else {
            let mut from = log.read_after(after);
            match from.try_next(0) {
                Ok(_) => reader = from,
                Err(behind) => {
                    // Replay what is still kept, and say the rest is missing.
                    reader = log.read_after(behind.kept_after);
                    not_replayed = true;
                }
            }
        }
    }
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(forward(
        Arc::clone(group),
        reader,
        not_replayed,
        tx,
        closing,
    ));
    Ok(rx)
}

async fn forward(
    group: Arc<LockGroup>,
    mut reader: Reader,
    mut not_replayed: bool,
    tx: mpsc::Sender<Result<pb::ChangeBatch, tonic::Status>>,
    mut closing: watch::Receiver<bool>,
) {
    if *closing.borrow_and_update() {
        return;
    }
    let mut beat = tokio::time::interval(CHANGES_HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            entries = reader.next(READ_AT_ONCE) => entries,
            _ = beat.tick() => {
                if let Err(refused) = group.check_leader() {
                    let _ = tx.send(Err(convert::propose_error(refused))).await;
                    return;
                }
                let version = group.state_machine().read(|m| m.last_applied());
                let heartbeat = pb::ChangeBatch {
                    version,
                    changes: Vec::new(),
                    not_replayed: std::mem::take(&mut not_replayed),
                    through: reader.position(),
                };
                if tx.send(Ok(heartbeat)).await.is_err() {
                    return;
                }
                continue;
            }
            () = tx.closed() => return,
            _ = closing.changed() => {
                let _ = tx.send(Err(tonic::Status::unavailable("node is shutting down"))).await;
                return;
            }
        };
        let mut keys = BTreeSet::new();
        let mut next = first;
        let mut ended = None;
        loop {
            match next {
                Ok(entries) if entries.is_empty() => break,
                Ok(entries) => entries.iter().for_each(|e| changed_keys(e, &mut keys)),
                Err(behind) => {
                    ended = Some(tonic::Status::data_loss(format!(
                        "the change feed fell behind the entries this leader keeps (after \
                         index {}); watch again",
                        behind.kept_after
                    )));
                    break;
                }
            }
            if keys.len() >= MAX_KEYS {
                break;
            }
            next = reader.try_next(READ_AT_ONCE);
        }
        if !keys.is_empty() {
            let Ok(slot) = tx.reserve().await else {
                return;
            };
            let now = group.now_ms();
            let not_replayed = std::mem::take(&mut not_replayed);
            let through = reader.position();
            slot.send(Ok(group.state_machine().read(|m| pb::ChangeBatch {
                version: m.last_applied(),
                changes: keys
                    .iter()
                    .map(|key| pb::KeyChange {
                        tenant: key.tenant.0,
                        status: Some(convert::status(m.status(key, now))),
                    })
                    .collect(),
                not_replayed,
                through,
            })));
        }
        if let Some(status) = ended {
            let _ = tx.send(Err(status)).await;
            return;
        }
    }
}

/// Adds the keys whose cached status `entry` made out of date.
fn changed_keys(entry: &Applied, keys: &mut BTreeSet<LockKey>) {
    for effect in entry.effects.iter() {
        if let Effect::Invalidate { key, .. } = effect {
            keys.insert(key.clone());
        }
    }
}
