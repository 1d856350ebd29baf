//! The TLS flags of the binary: `--cluster-ca/--cluster-cert/--cluster-key` turn on mutual
//! TLS between processes (node↔node, gateway→node, tools→node), `--tls-cert/--tls-key`
//! serve the REST API over HTTPS. Both stay off by default (`dev`, `cluster up`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use lockplane_proto::{ClusterTls, Dialer};

use crate::failure::Failure;

/// The cluster's mutual-TLS material for this process.
#[derive(Debug, Args, Clone, Default)]
pub struct ClusterTlsArgs {
    /// The cluster CA certificate (PEM); with --cluster-cert and --cluster-key, every
    /// connection to a node uses mutual TLS.
    #[arg(long, env = "LOCKPLANE_CLUSTER_CA", requires_all = ["cluster_cert", "cluster_key"], value_name = "FILE")]
    pub cluster_ca: Option<PathBuf>,
    /// This process's certificate (PEM), signed by the cluster CA.
    #[arg(
        long,
        env = "LOCKPLANE_CLUSTER_CERT",
        requires = "cluster_ca",
        value_name = "FILE"
    )]
    pub cluster_cert: Option<PathBuf>,
    /// This process's private key (PEM).
    #[arg(
        long,
        env = "LOCKPLANE_CLUSTER_KEY",
        requires = "cluster_ca",
        value_name = "FILE"
    )]
    pub cluster_key: Option<PathBuf>,
}

impl ClusterTlsArgs {
    /// The material, read and checked; `None` when mutual TLS is off.
    pub fn load(&self) -> Result<Option<ClusterTls>, Failure> {
        let (Some(ca), Some(cert), Some(key)) =
            (&self.cluster_ca, &self.cluster_cert, &self.cluster_key)
        else {
            return Ok(None);
        };
        ClusterTls::from_files(ca, cert, key)
            .map(Some)
            .map_err(|e| Failure::usage(format!("cannot use the cluster TLS material: {e}")))
    }

    /// A dialer with this material (plain without it).
    pub fn dialer(&self) -> Result<Dialer, Failure> {
        Ok(Dialer::new(self.load()?))
    }

    /// These flags as arguments of a child process.
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        flags(&[
            ("--cluster-ca", &self.cluster_ca),
            ("--cluster-cert", &self.cluster_cert),
            ("--cluster-key", &self.cluster_key),
        ])
    }
}

/// `--flag PATH` for each path that is set.
fn flags(pairs: &[(&str, &Option<PathBuf>)]) -> Vec<std::ffi::OsString> {
    pairs
        .iter()
        .filter_map(|(flag, path)| Some([(*flag).into(), path.as_ref()?.clone().into_os_string()]))
        .flatten()
        .collect()
}

/// The REST API's HTTPS certificate.
#[derive(Debug, Args, Clone, Default)]
pub struct RestTlsArgs {
    /// Serve the REST API over HTTPS with this certificate chain (PEM).
    #[arg(
        long,
        env = "LOCKPLANE_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "LOCKPLANE_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    pub tls_key: Option<PathBuf>,
}

impl RestTlsArgs {
    /// These flags as arguments of a child process.
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        flags(&[("--tls-cert", &self.tls_cert), ("--tls-key", &self.tls_key)])
    }

    /// The HTTPS server config; `None` to serve plain HTTP.
    pub fn load(&self) -> Result<Option<Arc<rustls::ServerConfig>>, Failure> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let read = |path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
        };
        lockplane_gateway::tls::server_config(&read(cert)?, &read(key)?)
            .map(Some)
            .map_err(|e| {
                Failure::usage(format!(
                    "--tls-cert {} / --tls-key {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })
    }
}
