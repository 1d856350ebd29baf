//! `lockplane tenant create NAME`: creates a tenant (if new) with a new API key, printed
//! once; the cluster keeps only the key's SHA-256.

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use lockplane_node::membership;

use crate::cluster::EndpointArgs;
use crate::keys;

/// Flags of `lockplane tenant`.
#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant (or add a key to an existing one) and print its new API key.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The tenant's name: lowercase letters, digits, `-` and `_`.
    name: String,
    #[command(flatten)]
    cluster: EndpointArgs,
    /// Use this key instead of a random one.
    #[arg(long)]
    api_key: Option<String>,
}

/// Runs the chosen `tenant` subcommand.
pub fn run(args: TenantArgs) -> anyhow::Result<()> {
    let TenantCommand::Create(args) = args.command;
    ring::tenant::check_name(&args.name).map_err(|e| anyhow!("tenant name {:?} {e}", args.name))?;
    let key = match args.api_key {
        Some(key) => {
            keys::check(&key)?;
            key
        }
        None => keys::new_api_key(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let tenant = runtime
        .block_on(membership::add_tenant_key(
            &args.cluster.endpoint,
            &args.name,
            ring::key_hash(&key),
        ))
        .map_err(|e| {
            anyhow!(
                "cannot add the key via {}: {}",
                args.cluster.endpoint,
                e.detail().message
            )
        })?;
    println!("tenant {} (id {tenant})", args.name);
    println!("api key: {key}");
    println!("(shown once; the cluster keeps only its hash)");
    Ok(())
}
