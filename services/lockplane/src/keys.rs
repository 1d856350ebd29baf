//! New API keys: 128 bits from the operating system's randomness (through std's randomly
//! keyed hasher), printed once and stored by the cluster only as a SHA-256 hash.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A fresh API key, `lp_` and 32 hex digits.
pub fn new_api_key() -> String {
    let half = |salt: u64| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.finish()
    };
    format!("lp_{:016x}{:016x}", half(1), half(2))
}

/// Why a key given on the command line is refused, if it is.
pub fn check(key: &str) -> anyhow::Result<()> {
    if key.len() < 8 || key.len() > 256 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!("--api-key must be 8..=256 printable characters without spaces");
    }
    Ok(())
}
