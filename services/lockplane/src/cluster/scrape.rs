//! `DIR/prometheus.yml`, written by `lockplane cluster up`: a Prometheus scrape config
//! listing every process it started (the nodes' `--metrics` listeners, the gateway's
//! `/metrics`, and the audit consumer's once it listens), and how to run Prometheus with
//! it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The file's name in the data directory.
pub const FILE: &str = "prometheus.yml";

/// How often Prometheus scrapes a local cluster.
const SCRAPE_INTERVAL: &str = "5s";

/// What `cluster up` started, as Prometheus reaches it.
#[derive(Clone)]
pub struct Targets {
    /// Each node's id and metrics address.
    pub nodes: Vec<(u64, SocketAddr)>,
    /// The gateway's REST address, if one runs.
    pub gateway: Option<SocketAddr>,
    /// The CA of the gateway's HTTPS (`--tls`).
    pub gateway_ca: Option<PathBuf>,
    /// The audit consumer's metrics address, if one runs.
    pub consumer: Option<SocketAddr>,
}

impl Targets {
    /// The scrape config: one job per kind of process, each node labelled with its id.
    pub fn config(&self) -> String {
        let mut out = String::from(
            "# Written by `lockplane cluster up`: every process it started, scraped.\n",
        );
        let _ = writeln!(out, "global:\n  scrape_interval: {SCRAPE_INTERVAL}");
        out.push_str("scrape_configs:\n  - job_name: lockplane-node\n    static_configs:\n");
        for (id, addr) in &self.nodes {
            let _ = writeln!(
                out,
                "      - targets: ['{addr}']\n        labels:\n          node: '{id}'"
            );
        }
        if let Some(mut gateway) = self.gateway {
            // A gateway listening on every address is scraped on loopback (the address
            // its certificate names under --tls).
            if gateway.ip().is_unspecified() {
                gateway.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            out.push_str("  - job_name: lockplane-gateway\n");
            if let Some(ca) = &self.gateway_ca {
                let _ = writeln!(
                    out,
                    "    scheme: https\n    tls_config:\n      ca_file: '{}'",
                    ca.display()
                );
            }
            let _ = writeln!(out, "    static_configs:\n      - targets: ['{gateway}']");
        }
        if let Some(consumer) = self.consumer {
            let _ = writeln!(
                out,
                "  - job_name: lockplane-audit-consumer\n    static_configs:\n      - targets: ['{consumer}']"
            );
        }
        out
    }

    /// Writes the config into `data_dir`, whole (a reader never sees half of it).
    pub fn write(&self, data_dir: &Path) -> anyhow::Result<PathBuf> {
        let path = data_dir.join(FILE);
        let partial = data_dir.join(format!("{FILE}.partial"));
        std::fs::write(&partial, self.config())
            .and_then(|()| std::fs::rename(&partial, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// Prints where the scrape config is and how to run Prometheus with it.
pub fn announce(config: &Path, data_dir: &Path) {
    println!(
        "metrics: scrape config in {} (run: prometheus --config.file={} \
         --storage.tsdb.path={})",
        config.display(),
        config.display(),
        data_dir.join("prometheus").display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_process_by_job() {
        let targets = Targets {
            nodes: vec![
                (1, "127.0.0.1:9101".parse().unwrap()),
                (2, "127.0.0.1:9102".parse().unwrap()),
            ],
            gateway: Some("0.0.0.0:7070".parse().unwrap()),
            gateway_ca: Some(PathBuf::from("/d/tls/ca.pem")),
            consumer: Some("127.0.0.1:9200".parse().unwrap()),
        };
        let config = targets.config();
        assert!(config.contains("job_name: lockplane-node"), "{config}");
        assert!(
            config.contains("- targets: ['127.0.0.1:9102']\n        labels:\n          node: '2'"),
            "{config}"
        );
        assert!(
            config.contains("scheme: https\n    tls_config:\n      ca_file: '/d/tls/ca.pem'"),
            "{config}"
        );
        assert!(config.contains("- targets: ['127.0.0.1:9200']"), "{config}");
        assert!(
            config.contains("- targets: ['127.0.0.1:7070']"),
            "a wildcard gateway is scraped on loopback: {config}"
        );
    }
}
