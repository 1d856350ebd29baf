//! The `lockplane` binary: the one command operators and developers run: `dev`, `gateway`,
//! `node`, `cluster`, `tenant`, `lock`, `hold` and `completions`.
//!
//! Every failure ends with a `sysexits` code (`failure`), printed as text or, with
//! `--json`, as one JSON object on standard output.

mod audit;
mod audit_args;
mod audit_consumer;
mod cache_args;
mod cluster;
mod completions;
mod dev;
mod dev_credentials;
mod failure;
mod gateway;
mod hold;
mod input;
mod keys;
mod lock;
mod logging;
mod node;
mod remote;
mod runtime;
mod shutdown;
mod tenant;
mod test_clock;
mod tls;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::failure::{EXIT_CODES_HELP, Failure};

/// mimalloc instead of glibc malloc: nodes allocate and free small buffers on every request
/// from many threads (see docs/benchmarks.md for what it changed).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Lockplane: a sharded, replicated lock service with fencing tokens, TTL leases and FIFO
/// waiters.
#[derive(Debug, Parser)]
#[command(name = "lockplane", version, arg_required_else_help = true, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// Print results and errors as JSON (one object on standard output).
    #[arg(long, global = true)]
    json: bool,
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
    /// Run an audit consumer: the audit topic (Kafka) into PostgreSQL, one row per event.
    AuditConsumer(audit_consumer::AuditConsumerArgs),
    /// Ask the audit trail in PostgreSQL: a key's history, who held it when, contention.
    Audit(audit::AuditArgs),
    /// Run a local cluster, inspect one, add and remove nodes.
    Cluster(cluster::ClusterArgs),
    /// Manage tenants and their API keys.
    Tenant(tenant::TenantArgs),
    /// Acquire, renew, release, inspect and list locks through a gateway.
    Lock(lock::LockArgs),
    /// Run a command while holding a lock (renewed while it runs).
    Hold(hold::HoldArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
}

fn main() -> ExitCode {
    let json = std::env::args().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, json),
    };
    let done = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Dev(args) => {
            logging::init();
            done(dev::run(args))
        }
        Command::Gateway(args) => {
            logging::init();
            done(gateway::run(args))
        }
        Command::Node(args) => {
            logging::init();
            done(node::run(args))
        }
        Command::AuditConsumer(args) => {
            logging::init();
            done(audit_consumer::run_consumer(args))
        }
        Command::Audit(args) => done(audit::run(args, cli.json)),
        Command::Cluster(args) => done(cluster::run(args)),
        Command::Tenant(args) => done(tenant::run(args, cli.json)),
        Command::Lock(args) => done(lock::run(args, cli.json)),
        Command::Hold(args) => hold::run(args),
        Command::Completions(args) => done(completions::run(&args, Cli::command())),
    };
    match result {
        Ok(code) => code,
        Err(e) => failure::report(&e, cli.json),
    }
}

/// Help and version print and succeed; anything else clap refuses is a usage error (64).
fn usage_error(error: &clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(failure::exit::USAGE)
        } else {
            ExitCode::SUCCESS
        };
    }
    if json {
        let message = error.render().to_string();
        let message = message
            .trim()
            .strip_prefix("error: ")
            .unwrap_or(message.trim())
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        println!("{}", Failure::usage(message).to_json());
    } else {
        let _ = error.print();
    }
    ExitCode::from(failure::exit::USAGE)
}
