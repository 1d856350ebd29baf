//! Tenants and their API keys, as the meta group keeps them: a name, an id that scopes every
//! key and session of the tenant, and the SHA-256 hashes of its API keys (never the keys).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A tenant's id; 0 is never a tenant.
pub type TenantId = u64;

/// The SHA-256 of an API key.
pub type KeyHash = [u8; 32];

/// Longest tenant name.
pub const MAX_TENANT_NAME: usize = 64;

/// Most API keys one tenant may have at once.
pub const MAX_KEYS_PER_TENANT: usize = 16;

/// One tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Its name, unique in the cluster: lowercase letters, digits, `-` and `_`.
    pub name: String,
    /// Hashes of the API keys that act as this tenant.
    pub key_hashes: Vec<KeyHash>,
    /// The most locks the tenant may hold at once; `None` for no bound. Each lock group
    /// enforces its share ([`quota_share`]).
    pub max_locks: Option<u64>,
}

/// The part of a tenant's quota of `max_locks` that each of `shards` lock groups enforces:
/// an even split, rounded up, so the tenant never holds more than `max_locks + shards - 1`
/// locks, and may be refused somewhat earlier when its keys hash unevenly.
pub fn quota_share(max_locks: u64, shards: u32) -> u64 {
    max_locks.div_ceil(u64::from(shards.max(1)))
}

/// The hash under which an API key is stored and looked up.
pub fn key_hash(api_key: &str) -> KeyHash {
    Sha256::digest(api_key.as_bytes()).into()
}

/// Why a tenant name is refused, if it is.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TENANT_NAME {
        return Err(format!("must be 1..={MAX_TENANT_NAME} bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err("may hold only lowercase letters, digits, '-' and '_'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_is_split_evenly_over_the_groups_rounding_up() {
        assert_eq!(quota_share(1_000, 16), 63);
        assert_eq!(quota_share(16, 16), 1);
        assert_eq!(quota_share(1, 16), 1);
        assert_eq!(quota_share(0, 16), 0);
        assert_eq!(quota_share(10, 0), 10);
    }

    #[test]
    fn a_key_hash_is_sha256() {
        let hash = key_hash("abc");
        assert_eq!(
            hash[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts ba7816bf"
        );
        assert_ne!(key_hash("abc"), key_hash("abd"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("team-a_1").is_ok());
        for bad in ["", "Team", "a b", "ünï", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
