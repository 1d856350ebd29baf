//! The async runtimes the subcommands run on: one thread for a command that makes a few
//! calls, all cores for a server.

use anyhow::Context;
use lockplane_proto::RpcError;

/// A single-threaded runtime for one command.
pub fn command() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A multi-threaded runtime for a server (node, gateway, dev).
pub fn server() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The error of a refused or failed call to a cluster: what was tried, where, and why.
pub fn failed(what: &str, endpoint: &str, error: RpcError) -> anyhow::Error {
    anyhow::anyhow!("{what} via {endpoint}: {}", error.detail().message)
}
