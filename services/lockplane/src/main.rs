//! The `lockplane` binary: the one command operators and developers run. Its subcommands
//! (`dev`, `node`, `gateway`, `lock`, `hold`, `tenant`, `cluster`) arrive with the issues
//! that build them; for now it answers `--help` and `--version`.

use clap::Parser;

/// Lockplane: a sharded, replicated lock service with fencing tokens, TTL leases and FIFO
/// waiters.
#[derive(Debug, Parser)]
#[command(name = "lockplane", version, arg_required_else_help = true)]
struct Cli {}

fn main() {
    Cli::parse();
}
