//! A one-node cluster with a gateway over it, for the gateway's tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use lockplane_gateway::cluster::ClusterView;
use lockplane_gateway::ratelimit::Limit;
use lockplane_gateway::{AppState, router};
use lockplane_node::clock::SystemClock;
use lockplane_node::grpc::GrpcTransport;
use lockplane_node::host::{Node, NodeConfig};
use lockplane_node::membership::Admin;
use lockplane_node::server::NodeServer;
use lockplane_proto::Dialer;
use openraft::BasicNode;

pub const ALICE: &str = "key-alice";
pub const BOB: &str = "key-bob";
/// The test clusters' admin token.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Admin calls through the node at `addr`, with the test clusters' admin token.
pub fn admin(addr: &str) -> Admin {
    Admin::new(
        Dialer::default().with_admin_token(Some(ADMIN_TOKEN.into())),
        addr,
    )
}

pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A one-node cluster with 4 lock groups and a gateway router over it (re-reading the
/// shard map every 250 ms, as a real gateway does every 5 s).
pub async fn start(name: &str) -> (Router, Node, TempDir) {
    start_limited(name, Limit::default()).await
}

/// [`start`] with every tenant limited to `limit`.
pub async fn start_limited(name: &str, limit: Limit) -> (Router, Node, TempDir) {
    let (mut nodes, addrs, dir) = start_nodes(name, 1, 4).await;
    let cluster = Arc::new(ClusterView::new(addrs, Dialer::default()));
    cluster.refresh(Duration::from_secs(20)).await.unwrap();
    let _refresher = cluster.spawn_refresher(Duration::from_millis(250));
    let (node, _stop) = nodes.remove(0);
    (router(AppState::new(cluster, limit)), node, dir)
}

/// A one-node cluster with 4 lock groups and a gateway router over it whose status reads
/// go through `cache` (kept fresh by the change feeds, which run until the runtime ends).
pub async fn start_cached(
    name: &str,
    cache: Arc<lockplane_gateway::cache::StatusCache>,
) -> (Router, Node, TempDir) {
    let (mut nodes, addrs, dir) = start_nodes(name, 1, 4).await;
    let cluster = Arc::new(ClusterView::new(addrs, Dialer::default()));
    cluster.refresh(Duration::from_secs(20)).await.unwrap();
    let _refresher = cluster.spawn_refresher(Duration::from_millis(250));
    let (node, _stop) = nodes.remove(0);
    let (state, _feeds) = AppState::new(cluster, Limit::default()).with_cache(Some(cache));
    (router(state), node, dir)
}

/// `n` in-process nodes (Raft and the lock API over gRPC on loopback ports) with `groups`
/// lock groups, initialized as one cluster with the admin token [`ADMIN_TOKEN`] and the
/// `alice` and `bob` tenants: each node
/// with the sender that stops its server (dropping it leaves the server running), their
/// addresses, and their directory.
async fn start_nodes(
    name: &str,
    n: u64,
    groups: u32,
) -> (
    Vec<(Node, tokio::sync::oneshot::Sender<()>)>,
    Vec<String>,
    TempDir,
) {
    let dir =
        TempDir(std::env::temp_dir().join(format!("lockplane-gw-{name}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let mut nodes = Vec::new();
    for (id, listener) in (1..).zip(listeners) {
        let mut config =
            NodeConfig::new(id, dir.0.join(format!("node-{id}"))).with_fast_elections();
        config.groups = groups;
        let node = Node::start(
            config,
            Arc::new(GrpcTransport::default()),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(NodeServer::new(&node).serve(listener, async move {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        nodes.push((node, stop));
    }
    let members: BTreeMap<u64, BasicNode> = (1..)
        .zip(&addrs)
        .map(|(id, addr)| (id, BasicNode::new(addr.clone())))
        .collect();
    nodes[0].0.initialize(members).await.unwrap();
    let admin = admin(&addrs[0]);
    admin
        .set_admin_token(shard_map::key_hash(ADMIN_TOKEN), true)
        .await
        .unwrap();
    for (tenant, key) in [("alice", ALICE), ("bob", BOB)] {
        admin
            .add_tenant_key(tenant, shard_map::key_hash(key))
            .await
            .unwrap();
    }
    (nodes, addrs, dir)
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

/// Three in-process nodes (Raft and the lock API over gRPC on loopback ports) with
/// `groups` lock groups, the `alice` and `bob` tenants, and a gateway over them.
pub struct ThreeNodes {
    pub url: String,
    /// The gateway's router (also served at `url`).
    pub app: Router,
    pub nodes: Vec<Option<(Node, tokio::sync::oneshot::Sender<()>)>>,
    pub addrs: Vec<String>,
    _dir: TempDir,
}

impl ThreeNodes {
    pub async fn start(name: &str, groups: u32) -> Self {
        Self::start_limited(name, groups, Limit::default()).await
    }

    /// [`ThreeNodes::start`] with every tenant limited to `limit` requests.
    pub async fn start_limited(name: &str, groups: u32, limit: Limit) -> Self {
        Self::start_with(name, groups, limit, None).await
    }

    /// [`ThreeNodes::start`] whose gateway answers status reads from `cache`.
    pub async fn start_cached(
        name: &str,
        groups: u32,
        cache: Arc<lockplane_gateway::cache::StatusCache>,
    ) -> Self {
        Self::start_with(name, groups, Limit::default(), Some(cache)).await
    }

    async fn start_with(
        name: &str,
        groups: u32,
        limit: Limit,
        cache: Option<Arc<lockplane_gateway::cache::StatusCache>>,
    ) -> Self {
        let (nodes, addrs, dir) = start_nodes(name, 3, groups).await;
        let cluster = Arc::new(ClusterView::new(addrs.clone(), Dialer::default()));
        cluster.refresh(Duration::from_secs(20)).await.unwrap();
        let (state, _feeds) = AppState::new(cluster, limit).with_cache(cache);
        let app = router(state);
        let url = serve_http(app.clone()).await;
        Self {
            url,
            app,
            nodes: nodes.into_iter().map(Some).collect(),
            addrs,
            _dir: dir,
        }
    }

    /// The node (1-based) leading lock group `group`, as the nodes report it.
    pub fn leader_of(&self, group: u32) -> Option<u64> {
        self.nodes.iter().flatten().find_map(|(node, _)| {
            node.group(group)
                .filter(|g| g.check_leader().is_ok())
                .map(|_| node.id())
        })
    }

    /// Stops node `id` (1-based): its server, then its groups.
    pub async fn stop(&mut self, id: u64) {
        if let Some((node, stop)) = self.nodes[id as usize - 1].take() {
            let _ = stop.send(());
            node.shutdown().await;
        }
    }

    pub async fn shutdown(mut self) {
        for id in 1..=3 {
            self.stop(id).await;
        }
    }
}

/// Runs `call` until it succeeds, retrying retryable failures (after the `Retry-After` the
/// gateway gave) for up to 30 s, as the contract asks of clients.
pub async fn retrying<T, F, Fut>(mut call: F) -> Result<T, lockplane_client::ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, lockplane_client::ClientError>>,
{
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Err(e) if e.is_retryable() && std::time::Instant::now() < give_up => {
                let pause = match e {
                    lockplane_client::ClientError::Unavailable { retry_after, .. } => retry_after,
                    _ => Duration::from_millis(100),
                };
                tokio::time::sleep(pause).await;
            }
            done => return done,
        }
    }
}

/// One request through `app`, as `key` when given, with `body` as JSON: the answer's status,
/// headers and JSON body (`Null` when it has none).
pub async fn request(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (
    axum::http::StatusCode,
    axum::http::HeaderMap,
    serde_json::Value,
) {
    use axum::http::header;
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body.to_string())),
        None => request.body(axum::body::Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, value)
}
