//! The async runtimes the subcommands run on: one thread for a command that makes a few
//! calls, all cores for a server.

use anyhow::Context;

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
