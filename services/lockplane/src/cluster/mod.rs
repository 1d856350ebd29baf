//! `lockplane cluster …`: run a local cluster in the foreground (`up`), look at one
//! (`status`), create its admin token (`bootstrap`), and move nodes in and out
//! (`add-node`, `remove-node`).

mod admin;
mod certs;
mod scrape;
mod up;

pub use admin::EndpointArgs;

use clap::{Args, Subcommand};

/// Flags of `lockplane cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Run a local cluster in the foreground: node processes on loopback ports, stopped
    /// together on Ctrl-C or SIGTERM.
    Up(up::UpArgs),
    /// Print the shard map and every group's leader.
    Status(admin::EndpointArgs),
    /// Create the cluster's first admin token and print it once (every admin change needs
    /// it; `lockplane node --bootstrap`, `dev` and `cluster up` do this themselves).
    Bootstrap(admin::EndpointArgs),
    /// Replace the admin token (authorized by the current one) and print the new one once.
    RotateAdminToken(admin::EndpointArgs),
    /// Make a node that joined (`lockplane node --join`) a voter of every group (or of the
    /// `--group`s named).
    AddNode(admin::NodeArgs),
    /// Take a node out of every group and forget it (or out of the `--group`s named); give
    /// an --endpoint other than the node removed.
    RemoveNode(admin::NodeArgs),
}

/// Runs the chosen `cluster` subcommand.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Up(args) => up::run(args),
        ClusterCommand::Status(args) => admin::status(args),
        ClusterCommand::Bootstrap(args) => admin::bootstrap(args),
        ClusterCommand::RotateAdminToken(args) => admin::rotate_admin_token(args),
        ClusterCommand::AddNode(args) => admin::add_node(args),
        ClusterCommand::RemoveNode(args) => admin::remove_node(args),
    }
}
