//! The TLS flags of the binary: `--cluster-ca/--cluster-cert/--cluster-key` turn on mutual
//! TLS between processes (node↔node, gateway→node, tools→node), `--tls-cert/--tls-key`
//! serve the REST API over HTTPS. Both stay off by default (`dev`, `cluster up`).

use std::path::PathBuf;

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
}
