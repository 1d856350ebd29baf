//! Mutual TLS between Lockplane processes: one cluster CA signs every node's, gateway's and
//! operator tool's certificate; each side presents its own and accepts only the CA's. A
//! node requires a client certificate on every connection (Raft from peers, the lock API
//! from gateways, the admin API from tools), so with TLS on, only holders of a cluster
//! certificate reach a node at all.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Why TLS material could not be used; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct TlsError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The cluster CA and this process's certificate and key, checked when loaded.
#[derive(Clone, Debug)]
pub struct ClusterTls {
    ca: Certificate,
    identity: Identity,
}

impl ClusterTls {
    /// Reads the CA certificate, this process's certificate (chain) and its private key,
    /// all PEM.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Self::from_pem(&read(ca)?, &read(cert)?, &read(key)?).map_err(|(which, problem)| {
            let path = match which {
                Which::Ca => ca,
                Which::Cert => cert,
                Which::Key => key,
            };
            TlsError {
                path: path.display().to_string(),
                problem,
            }
        })
    }

    /// The same from PEM bytes; which one is wrong and why.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, (Which, String)> {
        check_certs(ca).map_err(|p| (Which::Ca, p))?;
        check_certs(cert).map_err(|p| (Which::Cert, p))?;
        PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| (Which::Key, format!("holds no PEM private key ({e})")))?;
        Ok(Self {
            ca: Certificate::from_pem(ca),
            identity: Identity::from_pem(cert, key),
        })
    }

    /// For a server: present this identity, require a client certificate from the CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// For a client: trust only the CA, present this identity.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
    }
}

/// Which of the three PEM inputs is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The CA certificate.
    Ca,
    /// This process's certificate.
    Cert,
    /// This process's private key.
    Key,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError {
        path: path.display().to_string(),
        problem: format!("cannot read it: {e}"),
    })
}

fn check_certs(pem: &[u8]) -> Result<(), String> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| format!("holds a broken PEM certificate ({e})"))?;
        count += 1;
    }
    if count == 0 {
        return Err("holds no PEM certificate".into());
    }
    Ok(())
}
