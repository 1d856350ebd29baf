//! The JSON bodies the REST API answers with (`docs/api.md`), typed so that handlers and
//! the OpenAPI document (`openapi`) cannot drift apart. Request bodies live beside their
//! handlers.

use lockplane_proto::lock as pb;
use serde::Serialize;
use utoipa::ToSchema;

/// A granted lock (`POST /v1/locks/{key}/acquire`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Granted {
    /// The key.
    pub key: String,
    /// The holder's owner string.
    pub owner: String,
    /// Strictly greater than every earlier grant's token for this key; present it to every
    /// resource the lock protects.
    pub fencing_token: u64,
    /// The lease, in milliseconds.
    pub ttl_ms: u64,
    /// The session the lock is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// A renewed lease (`POST /v1/locks/{key}/renew`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Renewed {
    /// The key.
    pub key: String,
    /// The holder's (unchanged) fencing token.
    pub fencing_token: u64,
    /// The lease from now, in milliseconds.
    pub ttl_ms: u64,
}

/// A release (`POST /v1/locks/{key}/release`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Released {
    /// Always true.
    pub released: bool,
}

/// A key's status (`GET /v1/locks/{key}` and listings).
#[derive(Debug, Serialize, ToSchema)]
pub struct LockStatus {
    /// The key.
    pub key: String,
    /// Whether someone holds it.
    pub held: bool,
    /// The holder's owner string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The holder's fencing token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<u64>,
    /// The holder's session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Time left on the holder's lease, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_remaining_ms: Option<u64>,
    /// Callers queued for the key.
    pub waiters: u64,
    /// The log index of the key's group whose state this shows: a later answer about the
    /// same key with a higher version shows a later state.
    pub version: u64,
}

impl LockStatus {
    /// The status of `key` as its group reports it at log index `version`.
    pub fn of(key: String, status: &pb::LockStatus, version: u64) -> Self {
        let holder = status.holder.as_ref();
        Self {
            key,
            held: holder.is_some(),
            owner: holder.map(|h| h.owner.clone()),
            fencing_token: holder.map(|h| h.fencing_token),
            session_id: holder.and_then(|h| h.session).map(|s| s.to_string()),
            ttl_remaining_ms: status.ttl_remaining_ms,
            waiters: u64::from(status.waiters),
            version,
        }
    }
}

/// A page of a listing (`GET /v1/locks`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LockPage {
    /// Held or waited-on keys, in key order.
    pub locks: Vec<LockStatus>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A new session (`POST /v1/sessions`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOpened {
    /// The session id: a decimal string (JavaScript numbers lose precision above 2^53).
    pub session_id: String,
    /// The session's lease, in milliseconds.
    pub ttl_ms: u64,
}

/// A kept-alive session (`POST /v1/sessions/{id}/keepalive`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionKept {
    /// The session's lease from now, in milliseconds.
    pub ttl_ms: u64,
}

/// Who holds a lock, in a `409 held` problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemHolder {
    /// The holder's owner string.
    pub owner: String,
    /// The holder's fencing token.
    pub fencing_token: u64,
}

/// Every error: `application/problem+json` (RFC 9457). Documents what `problem::Problem`
/// writes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `/problems/<code>`, one per error code (docs/api.md).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short and stable per code.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for a human.
    pub detail: String,
    /// The invalid field (`400`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The current holder (`409 held`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<ProblemHolder>,
}
