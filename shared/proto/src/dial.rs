//! How a process reaches nodes over gRPC: plain HTTP/2, or mutual TLS with the cluster CA
//! (`tls`), and the admin token that its admin calls carry. One [`Dialer`] per process,
//! cloned to whatever opens channels (the Raft transport, the gateway, admin tools).

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::error::RpcError;
use crate::lock::{ErrorCode, ErrorDetail};
use crate::tls::ClusterTls;

/// How long a connection attempt to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens channels to nodes and builds requests, with or without TLS and an admin token.
#[derive(Clone, Default)]
pub struct Dialer {
    tls: Option<ClusterTls>,
    admin_token: Option<Arc<str>>,
}

impl std::fmt::Debug for Dialer {
    /// Says whether TLS and a token are set, never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("tls", &self.tls.is_some())
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Dialer {
    /// Plain HTTP/2 with `None`, mutual TLS with the cluster's material otherwise.
    pub fn new(tls: Option<ClusterTls>) -> Self {
        Self {
            tls,
            admin_token: None,
        }
    }

    /// The same, with `token` carried by every request built with [`Dialer::request`].
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token.filter(|t| !t.is_empty()).map(Arc::from);
        self
    }

    /// True when connections use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The endpoint of the node at `addr` (`host:port`), for callers that tune it further.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, RpcError> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let bad = |e: &dyn std::fmt::Display| {
            RpcError::new(ErrorDetail::new(
                ErrorCode::InvalidArgument,
                format!("bad node address {addr:?}: {e}"),
            ))
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| bad(&e))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.client_config())
                .map_err(|e| bad(&e))?;
        }
        Ok(endpoint)
    }

    /// A channel to `addr`, connected lazily.
    pub fn channel(&self, addr: &str) -> Result<Channel, RpcError> {
        Ok(self.endpoint(addr)?.connect_lazy())
    }

    /// `message` in a request that gives up after `timeout` and carries the admin token,
    /// if this dialer has one.
    pub fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        if let Some(token) = &self.admin_token {
            if let Ok(value) = MetadataValue::try_from(format!("Bearer {token}")) {
                request.metadata_mut().insert("authorization", value);
            }
        }
        request
    }
}
