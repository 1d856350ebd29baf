//! An outbox event as the audit trail publishes it: the `lockplane.audit.v1.AuditEvent`
//! message, and the Kafka message key that keeps one key's (or session's) events in order.

use lock_core::{Change, LockError, LostReason, WaitEndReason};
use lockplane_proto::audit::{AuditEvent, EventType};
use serde_json::{Value, json};
use shard_map::MetaCommand;

use crate::raft::Recorded;

/// The version of the event schema this node writes (`AuditEvent.schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// Tenant names and ids, as the publishing node's shard map has them.
pub trait Tenants {
    /// The name of tenant `id`.
    fn name(&self, id: u64) -> Option<String>;
    /// The id of the tenant named `name`.
    fn id(&self, name: &str) -> Option<u64>;
}

/// No tenants known (tests, and nodes before their shard map arrives).
pub struct NoTenants;

impl Tenants for NoTenants {
    fn name(&self, _: u64) -> Option<String> {
        None
    }

    fn id(&self, _: &str) -> Option<u64> {
        None
    }
}

/// The longest key or owner an event carries, in bytes. Valid ones are far shorter; a
/// refused command may carry anything (up to a node request's size), and an event too
/// large for the broker would stop its group's publishing.
pub const MAX_TEXT: usize = 1_024;

/// What the publishing node adds to every event of a group.
pub struct Origin<'a> {
    /// The group that applied the change.
    pub group: u32,
    /// The publishing node's region.
    pub region: &'a str,
    /// When the event is published, in ms since the Unix epoch (the time of meta events,
    /// whose entries carry none).
    pub now_ms: u64,
}

/// `recorded` as an event, with its message key: `TENANT_ID/KEY` for a lock's events,
/// `TENANT_ID/session/ID` for a session's, `meta` for the meta group's. Keys and owners
/// longer than [`MAX_TEXT`] are cut (and `details.truncated` set).
pub fn to_event(
    recorded: &Recorded,
    origin: &Origin<'_>,
    tenants: &impl Tenants,
) -> (String, AuditEvent) {
    let position = recorded.position();
    let mut event = AuditEvent {
        schema_version: SCHEMA_VERSION,
        group_id: origin.group,
        log_index: position.index,
        position: position.seq,
        region: origin.region.to_string(),
        ..AuditEvent::default()
    };
    let mut details = match recorded {
        Recorded::Lock(audit) => {
            event.timestamp_ms = audit.at;
            event.tenant_id = audit.tenant.0;
            event.tenant = tenants.name(audit.tenant.0).unwrap_or_default();
            lock_change(&audit.change, &mut event)
        }
        Recorded::Meta {
            command,
            new_tenant,
            ..
        } => {
            event.timestamp_ms = origin.now_ms;
            let details = meta_change(command, *new_tenant, &mut event);
            if let Some(name) = tenant_of(command) {
                event.tenant_id = tenants.id(name).unwrap_or_default();
                event.tenant = name.to_string();
            }
            details
        }
    };
    if cut(&mut event.key) | cut(&mut event.owner) {
        details["truncated"] = Value::Bool(true);
    }
    event.details_json = details.to_string();
    let session_event = matches!(
        event.event_type(),
        EventType::SessionCreated
            | EventType::SessionKeptAlive
            | EventType::SessionExpired
            | EventType::SessionClosed
    );
    let message_key = match recorded {
        Recorded::Meta { .. } => "meta".to_string(),
        Recorded::Lock(_) if session_event => {
            format!("{}/session/{}", event.tenant_id, event.session_id)
        }
        Recorded::Lock(_) => format!("{}/{}", event.tenant_id, event.key),
    };
    (message_key, event)
}

/// Cuts `text` to at most [`MAX_TEXT`] bytes (at a character boundary); whether it was.
fn cut(text: &mut String) -> bool {
    if text.len() <= MAX_TEXT {
        return false;
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// The tenant a meta command concerns, by name.
fn tenant_of(command: &MetaCommand) -> Option<&str> {
    match command {
        MetaCommand::AddTenantKey { name, .. }
        | MetaCommand::RevokeTenantKey { name, .. }
        | MetaCommand::ReplaceTenantKeys { name, .. }
        | MetaCommand::SetTenantQuota { name, .. } => Some(name),
        _ => None,
    }
}

/// Fills `event` from a lock group's change; returns the details.
fn lock_change(change: &Change, event: &mut AuditEvent) -> Value {
    match change {
        Change::Acquired {
            key,
            owner,
            token,
            session,
            ttl_ms,
            wait,
        } => {
            event.set_event_type(EventType::Acquired);
            event.key = key.name.as_str().to_string();
            event.owner = owner.as_str().to_string();
            event.fencing_token = token.0;
            event.session_id = session.map_or(0, |s| s.0);
            json!({"ttl_ms": ttl_ms, "wait": wait.map(|w| w.0)})
        }
        Change::Queued { key, owner, wait } => {
            event.set_event_type(EventType::WaitStarted);
            event.key = key.name.as_str().to_string();
            event.owner = owner.as_str().to_string();
            json!({"wait": wait.0})
        }
        Change::WaitEnded {
            key,
            owner,
            wait,
            reason,
        } => {
            event.set_event_type(EventType::WaitEnded);
            event.key = key.name.as_str().to_string();
            event.owner = owner.as_str().to_string();
            json!({"wait": wait.0, "reason": wait_end(*reason)})
        }
        Change::Renewed {
            key,
            owner,
            token,
            ttl_ms,
        } => {
            event.set_event_type(EventType::Renewed);
            event.key = key.name.as_str().to_string();
            event.owner = owner.as_str().to_string();
            event.fencing_token = token.0;
            json!({"ttl_ms": ttl_ms})
        }
        Change::Released { key, owner, token } => {
            event.set_event_type(EventType::Released);
            event.key = key.name.as_str().to_string();
            event.owner = owner.as_str().to_string();
            event.fencing_token = token.0;
            json!({"reason": "released"})
        }
        Change::Lost {
            key,
            owner,
            token,
            reason,
        } => {
            let (t, why) = match reason {
                LostReason::Expired => (EventType::Expired, "lease_expired"),
                LostReason::SessionExpired => (EventType::Expired, "session_expired"),
                LostReason::SessionClosed => (EventType::Released, "session_closed"),
            };
            event.set_event_type(t);
            event.key = key.name.as_str().to_string();
            event.owner = owner.as_str().to_string();
            event.fencing_token = token.0;
            json!({"reason": why})
        }
        Change::SessionCreated { id, ttl_ms } => {
            event.set_event_type(EventType::SessionCreated);
            event.session_id = id.0;
            json!({"ttl_ms": ttl_ms})
        }
        Change::SessionKeptAlive { id } => {
            event.set_event_type(EventType::SessionKeptAlive);
            event.session_id = id.0;
            json!({})
        }
        Change::SessionEnded { id, expired } => {
            event.set_event_type(if *expired {
                EventType::SessionExpired
            } else {
                EventType::SessionClosed
            });
            event.session_id = id.0;
            json!({})
        }
        Change::Rejected {
            key,
            owner,
            token,
            error,
        } => {
            event.set_event_type(EventType::Rejected);
            event.key = key.name.as_str().to_string();
            event.owner = owner.as_str().to_string();
            event.fencing_token = token.map_or(0, |t| t.0);
            let mut details = json!({"reason": rejection(error), "message": error.to_string()});
            if let LockError::Held { holder } = error {
                details["holder"] = json!({"owner": holder.owner, "fencing_token": holder.token.0});
            }
            details
        }
    }
}

/// The `reason` of a `WAIT_ENDED` event.
fn wait_end(reason: WaitEndReason) -> &'static str {
    match reason {
        WaitEndReason::TimedOut => "timed_out",
        WaitEndReason::Cancelled => "cancelled",
        WaitEndReason::SessionEnded => "session_ended",
    }
}

/// The `reason` of a `REJECTED` event.
fn rejection(error: &LockError) -> &'static str {
    match error {
        LockError::Held { .. } => "held",
        LockError::LockDelayed { .. } => "lock_delayed",
        LockError::NotHeld => "not_held",
        LockError::NotHolder => "stale_token",
        LockError::TenantQuota { .. } => "quota",
        LockError::TooManyWaiters { .. } => "too_many_waiters",
        LockError::TooManyLocksInSession { .. } => "too_many_locks_in_session",
        LockError::SessionNotFound(_) => "session_not_found",
        LockError::RequestIdReused => "request_id_reused",
        LockError::Invalid { .. } => "invalid",
        LockError::SessionConflict(_) => "session_conflict",
        LockError::WaitNotFound => "wait_not_found",
        LockError::IndexNotIncreasing { .. } => "index_not_increasing",
    }
}

/// Fills `event` from a meta group's change; returns the details (never key hashes).
fn meta_change(command: &MetaCommand, new_tenant: bool, event: &mut AuditEvent) -> Value {
    match command {
        MetaCommand::Init { shards, nodes } => {
            event.set_event_type(EventType::ClusterInitialized);
            json!({"shards": shards, "nodes": nodes.keys().collect::<Vec<_>>()})
        }
        MetaCommand::RegisterNode { id, info } => {
            event.set_event_type(EventType::NodeRegistered);
            event.key = id.to_string();
            json!({"addr": info.addr, "region": info.region})
        }
        MetaCommand::SetPlacement { group, voters } => {
            event.set_event_type(EventType::PlacementChanged);
            event.key = group.to_string();
            json!({"voters": voters})
        }
        MetaCommand::RemoveNode { id } => {
            event.set_event_type(EventType::NodeRemoved);
            event.key = id.to_string();
            json!({})
        }
        MetaCommand::AddTenantKey { name, .. } => {
            event.set_event_type(if new_tenant {
                EventType::TenantCreated
            } else {
                EventType::TenantKeysChanged
            });
            event.key = name.clone();
            json!({"change": "key_added"})
        }
        MetaCommand::RevokeTenantKey { name, .. } => {
            event.set_event_type(EventType::TenantKeysChanged);
            event.key = name.clone();
            json!({"change": "key_revoked"})
        }
        MetaCommand::ReplaceTenantKeys { name, .. } => {
            event.set_event_type(EventType::TenantKeysChanged);
            event.key = name.clone();
            json!({"change": "keys_replaced"})
        }
        MetaCommand::SetTenantQuota { name, max_locks } => {
            event.set_event_type(EventType::TenantQuotaChanged);
            event.key = name.clone();
            json!({"max_locks": max_locks})
        }
        MetaCommand::SetAdminToken { bootstrap, .. } => {
            event.set_event_type(EventType::AdminTokenChanged);
            json!({"bootstrap": bootstrap})
        }
    }
}
