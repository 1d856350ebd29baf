//! `lockplane node`: runs one node until SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use lockplane_node::clock::SystemClock;
use lockplane_node::grpc::GrpcTransport;
use lockplane_node::host::{MAX_GROUPS, Node, NodeConfig};
use lockplane_node::raft::NodeId;
use lockplane_node::server::NodeServer;
use openraft::BasicNode;

/// Flags of `lockplane node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This node's id, the same in every lock group (a positive number).
    #[arg(long, env = "LOCKPLANE_NODE_ID")]
    id: NodeId,
    /// Address to serve Raft and the lock API on, as other nodes and gateways reach it.
    #[arg(long, env = "LOCKPLANE_LISTEN", default_value = "127.0.0.1:7101")]
    listen: SocketAddr,
    /// Directory for the write-ahead log and snapshots.
    #[arg(long, env = "LOCKPLANE_DATA_DIR", default_value = "./lockplane-data")]
    data_dir: PathBuf,
    /// Lock groups hosted (1..=1024); every node of a cluster must use the same number.
    #[arg(long, env = "LOCKPLANE_GROUPS", default_value_t = 16)]
    groups: u32,
    /// Members of a new cluster, `ID=HOST:PORT,...`, this node included. Every member
    /// starts with the same list; a node that already has state ignores it.
    #[arg(long, env = "LOCKPLANE_INITIAL_CLUSTER", value_parser = parse_members)]
    initial_cluster: Option<Members>,
}

/// The `--initial-cluster` list.
#[derive(Debug, Clone)]
struct Members(BTreeMap<NodeId, SocketAddr>);

fn parse_members(text: &str) -> Result<Members, String> {
    let mut members = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not ID=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("node id {id:?} in {item:?} is not a number"))?;
        if id == 0 {
            return Err(format!("node id 0 in {item:?}: ids start at 1"));
        }
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("address {addr:?} of node {id} is not HOST:PORT"))?;
        if members.insert(id, addr).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if members.is_empty() {
        return Err("the list is empty".into());
    }
    Ok(Members(members))
}

/// Starts the node and serves until SIGTERM or Ctrl-C, then shuts down cleanly.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    if args.id == 0 {
        bail!("--id must be a positive number");
    }
    if !(1..=MAX_GROUPS).contains(&args.groups) {
        bail!("--groups must be in 1..={MAX_GROUPS}, got {}", args.groups);
    }
    if let Some(Members(members)) = &args.initial_cluster {
        match members.get(&args.id) {
            None => bail!("--initial-cluster does not list this node (id {})", args.id),
            Some(addr) if *addr != args.listen => bail!(
                "--initial-cluster lists node {} at {addr}, but --listen is {}",
                args.id,
                args.listen
            ),
            Some(_) => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: NodeArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut config = NodeConfig::new(args.id, args.data_dir.clone());
    config.groups = args.groups;
    let node = Node::start(
        config,
        Arc::new(GrpcTransport::default()),
        Arc::new(SystemClock),
    )
    .await
    .with_context(|| format!("cannot start the node in {}", args.data_dir.display()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = NodeServer::new(&node);
    let server = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    println!(
        "lockplane node {}: serving Raft and the lock API for {} groups on {}, data in {}",
        args.id,
        args.groups,
        args.listen,
        args.data_dir.display()
    );
    if let Some(Members(members)) = &args.initial_cluster {
        let members = members
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr.to_string())))
            .collect();
        node.initialize(members)
            .await
            .context("cannot initialize the cluster")?;
    }
    for group in node.groups() {
        let (id, mut metrics) = (group.id(), group.raft().metrics());
        tokio::spawn(async move {
            let mut known = None;
            loop {
                let (leader, term) = {
                    let m = metrics.borrow_and_update();
                    (m.current_leader, m.current_term)
                };
                if leader.is_some() && known != Some((leader, term)) {
                    known = Some((leader, term));
                    if let Some(leader) = leader {
                        println!("group {id}: leader is node {leader} (term {term})");
                    }
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    shutdown_signal().await;
    println!("lockplane node {}: stopping", args.id);
    let _ = stop.send(());
    let served = server.await.context("the gRPC server task failed")?;
    node.shutdown().await;
    served.context("the gRPC server failed")?;
    println!("lockplane node {}: stopped", args.id);
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
