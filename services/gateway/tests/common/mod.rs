//! A one-node cluster with a gateway over it, for the gateway's tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use lockplane_gateway::backend::Backend;
use lockplane_gateway::ratelimit::Limit;
use lockplane_gateway::{AppState, router};
use lockplane_node::clock::SystemClock;
use lockplane_node::grpc::GrpcTransport;
use lockplane_node::host::{Node, NodeConfig};
use lockplane_node::membership;
use lockplane_node::server::NodeServer;
use openraft::BasicNode;

pub const ALICE: &str = "key-alice";
pub const BOB: &str = "key-bob";

pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A one-node cluster with 4 lock groups and a gateway router over it.
pub async fn start(name: &str) -> (Router, Node, TempDir) {
    start_limited(name, Limit::default()).await
}

/// [`start`] with every tenant limited to `limit`.
pub async fn start_limited(name: &str, limit: Limit) -> (Router, Node, TempDir) {
    let dir =
        TempDir(std::env::temp_dir().join(format!("lockplane-gw-{name}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut config = NodeConfig::new(1, dir.0.clone()).with_fast_elections();
    config.groups = 4;
    let node = Node::start(
        config,
        Arc::new(GrpcTransport::default()),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let server = NodeServer::new(&node);
    tokio::spawn(server.serve(listener, std::future::pending()));
    node.initialize(BTreeMap::from([(1, BasicNode::new(addr.clone()))]))
        .await
        .unwrap();
    for (tenant, key) in [("alice", ALICE), ("bob", BOB)] {
        membership::add_tenant_key(&addr, tenant, ring::key_hash(key))
            .await
            .unwrap();
    }
    let backend = Arc::new(Backend::new(vec![addr]));
    backend.refresh(Duration::from_secs(20)).await.unwrap();
    (router(AppState::new(backend, limit)), node, dir)
}

/// The multi-threaded runtime every gateway test runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Serves `app` on a free loopback port; its base URL.
pub async fn serve_http(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}
