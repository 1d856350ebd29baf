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

/// How long a connection attempt to a node may take: a peer that is cut off drops the
/// SYN, and a shorter bound lets the next call try a fresh connection (whose SYN is sent
/// at once after a heal) rather than wait out the kernel's SYN retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How often an HTTP/2 connection to a node is pinged, idle or not. A cut or paused peer
/// leaves a connection open whose writes sit in TCP's retransmission backoff, which grows
/// with the length of the cut (a 30 s cut had calls wait 20 s more after the heal); the
/// ping notices the silence, drops the connection, and fails its calls as retryable.
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(1_000);

/// How long a ping may go unanswered before the connection is dropped.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(1_000);

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
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
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
