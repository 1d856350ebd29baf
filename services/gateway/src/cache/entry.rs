//! What one cache entry holds and where it lives: the Redis key of a tenant's lock, the
//! status it shows (as of a log index, its version), and the two single-key Lua scripts
//! that read it and write it.
//!
//! A write carrying an older version than the entry's is refused, so a slow fill or a late
//! update can never bring back an older state; a key nobody holds keeps its entry (a
//! tombstone with its version) for the same reason. The status an entry shows is served
//! until its own expiry (the lease it shows, or the staleness bound); the entry's version
//! outlives it by the staleness bound, and any write is at most that old, so no write
//! older than a version the entry ever had can land while the entry lives.

use lockplane_proto::lock as pb;
use serde::{Deserialize, Serialize};

/// The status of a key as the cache keeps it (a compact JSON payload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedStatus {
    /// The log index of the group whose applied state this shows.
    #[serde(rename = "v")]
    pub version: u64,
    /// The holder, if any.
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<CachedHolder>,
    /// The holder's lease left when the status was read, in milliseconds.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub ttl_remaining_ms: Option<u64>,
    /// Callers queued for the key.
    #[serde(rename = "w", default)]
    pub waiters: u32,
}

/// The holder part of a [`CachedStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedHolder {
    /// The owner string.
    #[serde(rename = "o")]
    pub owner: String,
    /// The fencing token.
    #[serde(rename = "f")]
    pub fencing_token: u64,
    /// The holder's session.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
}

impl CachedStatus {
    /// The status `status` of a group at log index `version`.
    pub fn of(status: &pb::LockStatus, version: u64) -> Self {
        Self {
            version,
            holder: status.holder.as_ref().map(|h| CachedHolder {
                owner: h.owner.clone(),
                fencing_token: h.fencing_token,
                session: h.session,
            }),
            ttl_remaining_ms: status.ttl_remaining_ms,
            waiters: status.waiters,
        }
    }

    /// The wire status of key `name`, with `ttl_remaining_ms` for the lease left now.
    pub fn to_status(&self, name: String, ttl_remaining_ms: Option<u64>) -> pb::LockStatus {
        pb::LockStatus {
            name,
            holder: self.holder.as_ref().map(|h| pb::Holder {
                owner: h.owner.clone(),
                fencing_token: h.fencing_token,
                session: h.session,
            }),
            ttl_remaining_ms,
            waiters: self.waiters,
        }
    }
}

/// The Redis key of `name` of `tenant`: the tenant is part of it, so two tenants' keys of
/// the same name are two entries, and a tenant can only ever read its own. It starts with a
/// hash tag of its own (`{crc32c}`), so a Redis Cluster spreads keys by that and a `{` in a
/// lock's name cannot pin keys to one slot.
pub fn redis_key(prefix: &str, tenant: u64, name: &str) -> String {
    let tag = crc32c::crc32c_append(crc32c::crc32c(&tenant.to_le_bytes()), name.as_bytes());
    format!("{prefix}{{{tag:08x}}}{tenant}:{name}")
}

/// Writes an entry unless it holds a newer version. `KEYS[1]` the entry; `ARGV`: version,
/// payload, how long the payload may be served (ms), how long the version is kept after
/// that (ms). Answers 1 (written), 0 (refused: the entry is newer) or 2 (the entry had this
/// version already: the same state, read again, so its serving time starts again; a quiet
/// group's index does not move, and without this its keys would miss until the version
/// itself expired). Times are Redis's own (`TIME`): `w` when the payload was written, `e`
/// when it stops being served.
pub const WRITE_SCRIPT: &str = r"
local answer = 1
local current = redis.call('HGET', KEYS[1], 'v')
if current then
  local have, new = tonumber(current), tonumber(ARGV[1])
  if have > new then return 0 end
  if have == new then answer = 2 end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local serve = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'p', ARGV[2], 'w', now, 'e', now + serve)
redis.call('PEXPIRE', KEYS[1], serve + tonumber(ARGV[4]))
return answer
";

/// Reads an entry: `nil` when there is none or its payload's time is over (only its
/// version is kept), else its payload, how long ago it was written and how long it is
/// still served (ms, by Redis's clock).
pub const READ_SCRIPT: &str = r"
local entry = redis.call('HMGET', KEYS[1], 'p', 'w', 'e')
if not entry[1] then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now >= tonumber(entry[3]) then return false end
return {entry[1], now - tonumber(entry[2]), tonumber(entry[3]) - now}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_survives_the_payload_round_trip() {
        let status = pb::LockStatus {
            name: "orders/1".to_string(),
            holder: Some(pb::Holder {
                owner: "worker-1".to_string(),
                fencing_token: 42,
                session: Some(7),
            }),
            ttl_remaining_ms: Some(1_500),
            waiters: 3,
        };
        let cached = CachedStatus::of(&status, 99);
        let text = serde_json::to_string(&cached).unwrap();
        let back: CachedStatus = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cached);
        assert_eq!(back.to_status("orders/1".to_string(), Some(1_500)), status);
        let free = CachedStatus::of(&pb::LockStatus::default(), 5);
        assert_eq!(serde_json::to_string(&free).unwrap(), r#"{"v":5,"w":0}"#);
    }

    #[test]
    fn tenants_never_share_an_entry_and_names_cannot_choose_the_slot() {
        assert_ne!(redis_key("lp:", 1, "a"), redis_key("lp:", 2, "a"));
        assert_ne!(redis_key("lp:", 1, "1:a"), redis_key("lp:", 11, ":a"));
        let key = redis_key("lp:", 1, "{hot}x");
        assert!(key.starts_with("lp:{"), "{key}");
        assert_eq!(
            key.find('}'),
            Some(12),
            "the first tag is the gateway's: {key}"
        );
    }
}
