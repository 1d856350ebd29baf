//! Mutual TLS between Lockplane processes: one cluster CA signs every node's, gateway's and
//! operator tool's certificate; each side presents its own and accepts only the CA's. A
//! node requires a client certificate on every connection (Raft from peers, the lock API
//! from gateways, the admin API from tools), so with TLS on, only holders of a cluster
//! certificate reach a node at all. Raft is served only to nodes: to peers whose
//! certificate is valid for server authentication, as every node's must be and gateways'
//! and tools' (client authentication only) are not ([`ClusterTls::admits_as_node`]).

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
    ca_der: Vec<CertificateDer<'static>>,
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
        let ca_der = check_certs(ca).map_err(|p| (Which::Ca, p))?;
        check_certs(cert).map_err(|p| (Which::Cert, p))?;
        PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| (Which::Key, format!("holds no PEM private key ({e})")))?;
        Ok(Self {
            ca: Certificate::from_pem(ca),
            ca_der,
            identity: Identity::from_pem(cert, key),
        })
    }

    /// For a server: present this identity, require a client certificate from the CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// True when `chain` (a peer's certificate, then its intermediates) leads to the CA and
    /// is valid for server authentication: a node's, which may speak Raft; a certificate
    /// for client authentication only (a gateway's, a tool's) is not.
    pub fn admits_as_node(&self, chain: &[CertificateDer<'_>]) -> bool {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return false;
        };
        let Ok(leaf) = webpki::EndEntityCert::try_from(leaf) else {
            return false;
        };
        let anchors: Vec<_> = self
            .ca_der
            .iter()
            .filter_map(|ca| webpki::anchor_from_trusted_cert(ca).ok())
            .collect();
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            rustls_pki_types::UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .is_ok()
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

/// The certificates of `pem`, or why there are none.
fn check_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("holds a broken PEM certificate ({e})"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}
