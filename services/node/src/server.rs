//! The one gRPC server of a node: Raft messages from peers, the `LockService` for gateways
//! and tools and the `AdminService` for operators, on one port, dispatched by the service
//! name in the request path.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lockplane_proto::ClusterTls;
use lockplane_proto::admin::admin_service_server::AdminServiceServer;
use lockplane_proto::lock::lock_service_server::LockServiceServer;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::grpc::RaftServer;
use crate::host::Node;
use crate::service::{AdminApi, LockApi};

/// Every service a node serves.
#[derive(Clone)]
pub struct NodeServer {
    raft: RaftServer,
    api: LockApi,
    locks: LockServiceServer<LockApi>,
    admin: AdminServiceServer<AdminApi>,
    tls: Option<ClusterTls>,
}

impl NodeServer {
    /// Serves Raft, the lock API and the admin API for `node`'s replicas.
    pub fn new(node: &Node) -> Self {
        let api = LockApi::new(node.groups().cloned(), node.metrics());
        let admin = AdminApi::new(node.id(), node.meta(), node.groups().cloned(), node.log());
        Self {
            raft: RaftServer::new(node.router()),
            locks: api.clone().into_service(),
            api,
            admin: admin.into_service(),
            tls: None,
        }
    }

    /// Serves over mutual TLS: presents the node's certificate and admits only clients with
    /// a certificate from the cluster CA.
    pub fn with_tls(mut self, tls: Option<ClusterTls>) -> Self {
        self.tls = tls;
        self
    }

    /// Serves on `listener` until `shutdown` completes, then ends event streams and
    /// finishes in-flight calls (for at most [`SHUTDOWN_GRACE`]).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        let api = self.api.clone();
        let tls = self.tls.clone();
        let shutdown = async move {
            shutdown.await;
            api.close();
        };
        serve_on(self, listener, tls, shutdown).await
    }
}

/// How long in-flight calls may take to finish once shutdown begins; calls still running
/// then (a proposal waiting for a quorum that is gone, a blocked acquire) are dropped, and
/// their callers see the connection close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `service` on `listener` (with `TCP_NODELAY` on every accepted connection: the
/// server builder's own setting does not reach a listener passed in) until `shutdown`
/// completes, then finishes in-flight calls for at most [`SHUTDOWN_GRACE`].
pub(crate) async fn serve_on<S>(
    service: S,
    listener: tokio::net::TcpListener,
    tls: Option<ClusterTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error>
where
    S: Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let stopping = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::clone(&stopping);
    let shutdown = async move {
        shutdown.await;
        stop.notify_one();
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls.server_config())?;
    }
    let server = builder.serve_with_incoming_shutdown(service, incoming, shutdown);
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => served,
        () = async {
            stopping.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
}

impl NodeServer {
    /// True when `request` may reach Raft: always without TLS (the network is trusted);
    /// with TLS, only from a peer whose certificate is a node's.
    fn admits_raft<B>(&self, request: &http::Request<B>) -> bool {
        let Some(tls) = &self.tls else {
            return true;
        };
        request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs)
            .is_some_and(|chain| tls.admits_as_node(&chain))
    }
}

impl NamedService for NodeServer {
    const NAME: &'static str = "lockplane.node";
}

/// True when `path` (`/package.Service/Method`) calls service `name`.
fn calls(path: &str, name: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(name))
        .is_some_and(|rest| rest.starts_with('/'))
}

impl<B> Service<http::Request<B>> for NodeServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if calls(path, <LockServiceServer<LockApi> as NamedService>::NAME) {
            Box::pin(self.locks.call(request))
        } else if calls(path, <AdminServiceServer<AdminApi> as NamedService>::NAME) {
            Box::pin(self.admin.call(request))
        } else if self.admits_raft(&request) {
            Box::pin(self.raft.call(request))
        } else {
            let refused = tonic::Status::permission_denied(
                "Raft is served to nodes only: the peer's certificate is not valid for server \
                 authentication",
            );
            Box::pin(async move { Ok(refused.into_http()) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::calls;

    #[test]
    fn dispatch_matches_whole_service_names() {
        let name = "lockplane.lock.v1.LockService";
        assert!(calls("/lockplane.lock.v1.LockService/Acquire", name));
        assert!(!calls("/lockplane.lock.v1.LockServiceX/Acquire", name));
        assert!(!calls("/lockplane.raft.v1.RaftTransport/Call", name));
    }
}
