//! What the client commands (`lock …`, `hold`) share: the gateway to talk to, durations as
//! people write them, and the async runtime.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use lockplane_client::Client;

/// The gateway and the API key.
#[derive(Debug, Args)]
pub struct Remote {
    /// The gateway's URL.
    #[arg(
        long,
        env = "LOCKPLANE_URL",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub url: String,
    /// The tenant's API key (`lockplane dev` prints one).
    #[arg(long, env = "LOCKPLANE_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Remote {
    /// The client, or an error naming the missing key.
    pub fn client(&self) -> anyhow::Result<Client> {
        let key = self
            .api_key
            .as_deref()
            .context("no API key: pass --api-key or set LOCKPLANE_API_KEY")?;
        if !self.url.starts_with("http://") {
            anyhow::bail!("--url must start with http://, got {:?}", self.url);
        }
        Ok(Client::new(&self.url, key))
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 500ms, 2m"))?;
    let ms = match unit {
        "" | "s" => n.checked_mul(1_000),
        "ms" => Some(n),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is not a duration like 30s, 500ms, 2m"))
}

/// The owner string when none is given: `user@host:pid`, unique per process.
pub fn default_owner() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{user}@{}:{}", host.trim(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "s", "1x", "-1s", "1.5s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
