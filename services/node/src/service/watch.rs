//! `Watch`: the events of one session or one key, as this replica applies them, so a
//! gateway can push grants and lost locks to its clients.

use std::sync::Arc;

use lock_core::{Effect, LockKey, SessionId, TenantId};
use lockplane_proto::lock::{self as pb, event::Kind, watch_request::Target};
use tokio::sync::{mpsc, watch};

use super::convert;
use crate::group::LockGroup;
use crate::raft::applied_log::Reader;

/// Events buffered per watcher before the watcher counts as too slow.
const BUFFER: usize = 1_024;

/// What a watcher follows.
enum Filter {
    Session(SessionId),
    Key(LockKey),
}

impl Filter {
    fn matches(&self, effect: &Effect) -> bool {
        match (self, effect) {
            (Filter::Session(id), Effect::Granted { session, .. })
            | (Filter::Session(id), Effect::Lost { session, .. }) => *session == Some(*id),
            (Filter::Session(id), Effect::SessionExpired { id: expired }) => expired == id,
            (Filter::Key(key), Effect::Granted { key: k, .. })
            | (Filter::Key(key), Effect::Lost { key: k, .. })
            | (Filter::Key(key), Effect::WaitEnded { key: k, .. }) => k == key,
            _ => false,
        }
    }
}

/// The stream of matching events; it ends with `DATA_LOSS` if the watcher falls too far
/// behind (it should re-read state and watch again), and with `UNAVAILABLE` when the node
/// shuts down (`closing` turns true).
pub fn watch(
    group: &Arc<LockGroup>,
    request: pb::WatchRequest,
    closing: watch::Receiver<bool>,
) -> Result<mpsc::Receiver<Result<pb::Event, tonic::Status>>, tonic::Status> {
    let tenant = TenantId(request.tenant);
    let filter = match request.target {
        Some(Target::Session(id)) if id != 0 => Filter::Session(SessionId(id)),
        Some(Target::Key(name)) => Filter::Key(LockKey::new(tenant, name)),
        _ => {
            return Err(convert::invalid(
                lock_core::Field::Key,
                "watch needs a session id or a key",
            ));
        }
    };
    let applied = group.state_machine().applied_log().read_from_now();
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(forward(applied, filter, tenant, tx, closing));
    Ok(rx)
}

/// Entries read from the applied log at once.
const READ_AT_ONCE: usize = 256;

async fn forward(
    mut applied: Reader,
    filter: Filter,
    tenant: TenantId,
    tx: mpsc::Sender<Result<pb::Event, tonic::Status>>,
    mut closing: watch::Receiver<bool>,
) {
    if *closing.borrow_and_update() {
        return;
    }
    loop {
        let entries = tokio::select! {
            entries = applied.next(READ_AT_ONCE) => entries,
            () = tx.closed() => return,
            _ = closing.changed() => {
                let _ = tx.send(Err(tonic::Status::unavailable("node is shutting down"))).await;
                return;
            }
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(behind) => {
                let status = tonic::Status::data_loss(format!(
                    "watcher fell behind the entries this node keeps (after index {}); \
                     re-read and watch again",
                    behind.kept_after
                ));
                let _ = tx.send(Err(status)).await;
                return;
            }
        };
        for entry in &entries {
            for effect in entry.effects.iter().filter(|e| filter.matches(e)) {
                if let Some(kind) = event(effect, tenant) {
                    let event = pb::Event {
                        index: entry.index,
                        kind: Some(kind),
                    };
                    if tx.try_send(Ok(event)).is_err() {
                        let status = tonic::Status::data_loss("watcher is too slow; watch again");
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            }
        }
    }
}

/// The wire event of an effect of `tenant`, if watchers see that kind.
fn event(effect: &Effect, tenant: TenantId) -> Option<Kind> {
    match effect {
        Effect::Granted {
            key,
            wait,
            owner,
            session,
            token,
            ttl_ms,
        } if key.tenant == tenant => Some(Kind::Granted(pb::Granted {
            key: key.name.to_string(),
            wait: wait.0,
            owner: owner.to_string(),
            session: session.map(|s| s.0),
            fencing_token: token.0,
            ttl_ms: *ttl_ms,
        })),
        Effect::Lost {
            key,
            owner,
            session,
            token,
            reason,
        } if key.tenant == tenant => Some(Kind::Lost(pb::Lost {
            key: key.name.to_string(),
            owner: owner.to_string(),
            session: session.map(|s| s.0),
            fencing_token: token.0,
            reason: convert::lost_reason(*reason) as i32,
        })),
        Effect::WaitEnded { key, wait, reason } if key.tenant == tenant => {
            Some(Kind::WaitEnded(pb::WaitEnded {
                key: key.name.to_string(),
                wait: wait.0,
                reason: convert::wait_end_reason(*reason) as i32,
            }))
        }
        Effect::SessionExpired { id } => {
            Some(Kind::SessionExpired(pb::SessionExpired { session: id.0 }))
        }
        _ => None,
    }
}
