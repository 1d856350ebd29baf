//! The `lockplane` binary: the one command operators and developers run. Subcommands arrive
//! with the issues that build them: today `dev`, `gateway`, `node`, `cluster` and
//! `tenant`; later `lock` and `hold`.

mod cluster;
mod dev;
mod gateway;
mod keys;
mod node;
mod tenant;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev(args) => dev::run(args),
        Command::Gateway(args) => gateway::run(args),
        Command::Node(args) => node::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Tenant(args) => tenant::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lockplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}
