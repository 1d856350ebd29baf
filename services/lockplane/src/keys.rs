//! New API keys and admin tokens: 128 bits from the operating system's random number
//! generator (`getrandom`), printed once and stored by the cluster only as a SHA-256 hash;
//! and the short ids keys are listed and revoked by.

use anyhow::Context;

/// 128 random bits as 32 hex digits.
fn random_hex() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).context("the operating system gave no random bytes")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A fresh API key, `lp_` and 32 hex digits.
pub fn new_api_key() -> anyhow::Result<String> {
    Ok(format!("lp_{}", random_hex()?))
}

/// A fresh admin token, `lpa_` and 32 hex digits.
pub fn new_admin_token() -> anyhow::Result<String> {
    Ok(format!("lpa_{}", random_hex()?))
}

/// The short id `tenant keys` shows for a key: the first 12 hex digits of its SHA-256.
pub fn key_id(hash: &[u8]) -> String {
    hash.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Why a key given on the command line is refused, if it is.
pub fn check(key: &str) -> Result<(), crate::failure::Failure> {
    if key.len() < 8 || key.len() > 256 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(crate::failure::Failure::usage(format!(
            "--api-key must be 8..=256 printable characters without spaces, got {} characters",
            key.chars().count()
        )));
    }
    Ok(())
}
