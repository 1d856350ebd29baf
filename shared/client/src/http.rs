//! One JSON request to the gateway over HTTP/1.1 (hyper), plain or TLS (rustls; the
//! Mozilla roots by default, or one CA the caller trusts instead), with a deadline.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request};
use std::sync::Arc;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

use crate::error::ClientError;

/// Largest answer read.
const MAX_ANSWER: usize = 4 << 20;

/// A connection pool to one gateway.
#[derive(Clone)]
pub(crate) struct Http {
    base: String,
    auth: String,
    tls: Arc<ClientConfig>,
    pool: Hyper<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// The TLS settings of `https://` URLs that trust the Mozilla CA roots.
pub(crate) fn public_roots() -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    trusting(roots)
}

/// The TLS settings of `https://` URLs that trust only the CAs in `ca_pem`, or what is
/// wrong with it.
pub(crate) fn private_roots(ca_pem: &[u8]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("a broken PEM certificate ({e})"))?;
        roots
            .add(cert)
            .map_err(|e| format!("a certificate that is not a CA ({e})"))?;
    }
    if roots.is_empty() {
        return Err("no PEM certificate".into());
    }
    Ok(trusting(roots))
}

/// A client config on `ring` (not the process's default provider, which a program that
/// also links aws-lc-rs may leave undecided).
fn trusting(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring's provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn pool(tls: &Arc<ClientConfig>) -> Hyper<HttpsConnector<HttpConnector>, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(ClientConfig::clone(tls))
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Hyper::builder(TokioExecutor::new()).build(https)
}

impl Http {
    pub(crate) fn new(base: &str, api_key: &str, tls: Arc<ClientConfig>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            auth: format!("Bearer {api_key}"),
            pool: pool(&tls),
            tls,
        }
    }

    /// The same gateway and key with a pool of its own, for use on another runtime (a
    /// pool's connections live on the runtime that opened them).
    pub(crate) fn fresh_pool(&self) -> Self {
        Self {
            base: self.base.clone(),
            auth: self.auth.clone(),
            pool: pool(&self.tls),
            tls: Arc::clone(&self.tls),
        }
    }

    /// Sends `body` to `path` and reads the JSON answer; a non-2xx answer becomes the
    /// matching [`ClientError`].
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        deadline: Duration,
    ) -> Result<Value, ClientError> {
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(AUTHORIZATION, &self.auth)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(bytes))
            .map_err(|e| ClientError::Transport(format!("bad request to {}: {e}", self.base)))?;
        let exchange = async {
            let response = self.pool.request(request).await.map_err(|e| {
                ClientError::Transport(format!("cannot reach {}: {}", self.base, cause(&e)))
            })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| {
                    ClientError::Transport(format!("the answer from {} broke off: {e}", self.base))
                })?
                .to_bytes();
            let value: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    ClientError::Transport(format!("unreadable answer from {}: {e}", self.base))
                })?
            };
            if (200..300).contains(&status) {
                Ok(value)
            } else {
                Err(ClientError::from_problem(status, retry_after, &value))
            }
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| {
                ClientError::Transport(format!(
                    "no answer from {} within {} ms",
                    self.base,
                    deadline.as_millis()
                ))
            })?
    }
}

/// The innermost cause of a failed request, as a short lowercase phrase ("connection
/// refused", "dns error: failed to lookup address information").
fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let text = innermost.to_string();
    let text = match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}
