//! The `lockplane` binary: the one command operators and developers run. Subcommands arrive
//! with the issues that build them: today `dev`, `gateway`, `node`, `cluster`,
//! `tenant`, `lock` and `hold`.

mod cluster;
mod dev;
mod gateway;
mod hold;
mod keys;
mod lock;
mod node;
mod remote;
mod runtime;
mod tenant;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: nodes allocate and free small buffers on every request
/// from many threads (see docs/benchmarks.md for what it changed).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Lockplane: a sharded, replicated lock service with fencing tokens, TTL leases and FIFO
/// waiters.
#[derive(Debug, Parser)]
#[command(name = "lockplane", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Lockplane on this machine: a node and the REST gateway in one process, data on
    /// local disk, a printed dev API key.
    Dev(dev::DevArgs),
    /// Run the REST gateway in front of a cluster.
    Gateway(gateway::GatewayArgs),
    /// Run a node: replicas of the cluster's lock groups, Raft over gRPC.
    Node(node::NodeArgs),
    /// Run a local cluster, inspect one, add and remove nodes.
    Cluster(cluster::ClusterArgs),
    /// Manage tenants and their API keys.
    Tenant(tenant::TenantArgs),
    /// Acquire, release, inspect and list locks through a gateway.
    Lock(lock::LockArgs),
    /// Run a command while holding a lock (renewed while it runs).
    Hold(hold::HoldArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Dev(args) => done(dev::run(args)),
        Command::Gateway(args) => done(gateway::run(args)),
        Command::Node(args) => done(node::run(args)),
        Command::Cluster(args) => done(cluster::run(args)),
        Command::Tenant(args) => done(tenant::run(args)),
        Command::Lock(args) => done(lock::run(args)),
        Command::Hold(args) => hold::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lockplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}
