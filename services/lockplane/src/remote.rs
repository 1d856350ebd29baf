//! What the client commands (`lock …`, `hold`) share: the gateway to talk to, the API key,
//! and the owner string when none is given.

use clap::Args;
use lockplane_client::{Client, ClientError};

use crate::failure::{Failure, exit};

/// The gateway `lockplane dev` serves, used when no URL is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// The gateway and the API key.
#[derive(Debug, Args)]
pub struct Remote {
    /// The gateway's URL (http://HOST:PORT or https://HOST:PORT) [default:
    /// http://127.0.0.1:7070].
    #[arg(long, env = "LOCKPLANE_URL", global = true)]
    pub url: Option<String>,
    /// The tenant's API key (`lockplane dev` prints one).
    #[arg(long, env = "LOCKPLANE_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
    /// Trust only this CA (PEM) for an https:// gateway, instead of the public roots.
    #[arg(long, env = "LOCKPLANE_CA_CERT", global = true, value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
}

impl Remote {
    /// The gateway's URL.
    pub fn url(&self) -> &str {
        self.chosen_url().unwrap_or(DEFAULT_URL)
    }

    /// The URL given by flag or environment, if any (empty counts as none).
    fn chosen_url(&self) -> Option<&str> {
        self.url.as_deref().filter(|u| !u.is_empty())
    }

    /// The client, or the failure naming what is missing or wrong.
    pub fn client(&self) -> Result<Client, Failure> {
        let key = self.api_key.as_deref().ok_or_else(|| {
            Failure::new(
                exit::NOPERM,
                "unauthenticated",
                "no API key: pass --api-key or set LOCKPLANE_API_KEY (`lockplane dev` prints one)",
            )
        })?;
        let url = self.url();
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(Failure::usage(format!(
                "--url {url:?} must start with http:// or https://"
            )));
        }
        let Some(ca) = &self.ca_cert else {
            return Ok(Client::new(url, key));
        };
        let pem = std::fs::read(ca).map_err(|e| {
            Failure::usage(format!("--ca-cert {}: cannot read it: {e}", ca.display()))
        })?;
        Client::with_ca_cert(url, key, &pem)
            .map_err(|e| Failure::usage(format!("--ca-cert {}: {e}", ca.display())))
    }

    /// The failure a call to the gateway ended in.
    pub fn failure(&self, error: ClientError) -> Failure {
        Failure::from_client(error, self.url(), self.chosen_url().is_none())
    }
}

/// The owner string when none is given: `user@host:pid`, unique per process.
pub fn default_owner() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{user}@{}:{}", host.trim(), std::process::id())
}
