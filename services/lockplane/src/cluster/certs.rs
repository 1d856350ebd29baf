//! `lockplane cluster up --tls`: a throw-away CA and certificates for a local cluster, made
//! with rcgen in `DIR/tls` on the first run and reused after. One certificate serves every
//! node (server and client: nodes call each other), one serves the gateway's and the
//! operator's calls to nodes (client), one the REST API over HTTPS (server). All name
//! `localhost`, `127.0.0.1` and `::1`. The CA's key is kept beside them so more nodes can
//! be certified; none of this is meant for anything but this machine.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::tls::{ClusterTlsArgs, RestTlsArgs};

/// The names every local certificate is valid for.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The local cluster's TLS files.
pub struct LocalTls {
    dir: PathBuf,
}

/// What a leaf certificate is for.
#[derive(Clone, Copy)]
enum Role {
    /// A node: serves gRPC and calls its peers.
    Node,
    /// A gateway or an operator's tool calling nodes.
    Client,
    /// The REST API over HTTPS.
    Rest,
}

impl Role {
    fn file(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Client => "client",
            Role::Rest => "rest",
        }
    }
}

impl LocalTls {
    /// The files in `data_dir/tls`, made if missing.
    pub fn ensure(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("tls");
        let tls = Self { dir };
        if tls.ca().exists() {
            return Ok(tls);
        }
        std::fs::create_dir_all(&tls.dir)
            .with_context(|| format!("cannot create {}", tls.dir.display()))?;
        let ca_key = KeyPair::generate().context("cannot make the CA key")?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name.push(
            DnType::CommonName,
            "Lockplane local cluster CA (throw-away)",
        );
        let ca_cert = ca.self_signed(&ca_key).context("cannot sign the CA")?;
        let issuer = Issuer::new(ca, ca_key);
        for role in [Role::Node, Role::Client, Role::Rest] {
            let key = KeyPair::generate().context("cannot make a key")?;
            let names: Vec<String> = LOCAL_NAMES.iter().map(|n| n.to_string()).collect();
            let mut leaf = CertificateParams::new(names)?;
            leaf.distinguished_name
                .push(DnType::CommonName, format!("lockplane {}", role.file()));
            leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            leaf.extended_key_usages = match role {
                Role::Node => vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
                Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
                Role::Rest => vec![ExtendedKeyUsagePurpose::ServerAuth],
            };
            let cert = leaf
                .signed_by(&key, &issuer)
                .with_context(|| format!("cannot sign the {} certificate", role.file()))?;
            tls.write(&tls.cert(role), &cert.pem(), 0o644)?;
            tls.write(&tls.key(role), &key.serialize_pem(), 0o600)?;
        }
        tls.write(
            &tls.dir.join("ca-key.pem"),
            &issuer.key().serialize_pem(),
            0o600,
        )?;
        tls.write(&tls.ca(), &ca_cert.pem(), 0o644)?;
        Ok(tls)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn cert(&self, role: Role) -> PathBuf {
        self.dir.join(format!("{}.pem", role.file()))
    }

    fn key(&self, role: Role) -> PathBuf {
        self.dir.join(format!("{}-key.pem", role.file()))
    }

    fn cluster_args(&self, role: Role) -> ClusterTlsArgs {
        ClusterTlsArgs {
            cluster_ca: Some(self.ca()),
            cluster_cert: Some(self.cert(role)),
            cluster_key: Some(self.key(role)),
        }
    }

    /// The flags of a node.
    pub fn node(&self) -> ClusterTlsArgs {
        self.cluster_args(Role::Node)
    }

    /// The flags of a gateway's or a tool's calls to nodes.
    pub fn client(&self) -> ClusterTlsArgs {
        self.cluster_args(Role::Client)
    }

    /// The flags of the REST API's HTTPS.
    pub fn rest(&self) -> RestTlsArgs {
        RestTlsArgs {
            tls_cert: Some(self.cert(Role::Rest)),
            tls_key: Some(self.key(Role::Rest)),
        }
    }

    fn write(&self, path: &Path, pem: &str, mode: u32) -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(pem.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}
