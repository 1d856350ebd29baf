//! `lockplane tenant create NAME` creates a tenant (if new) with a new API key, printed
//! once (the cluster keeps only the key's SHA-256), optionally with a quota of held locks;
//! `lockplane tenant set-quota NAME` sets or lifts that quota.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use lockplane_node::membership;

use crate::cluster::EndpointArgs;
use crate::keys;
use crate::runtime::failed;

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
    /// Set the most locks a tenant may hold at once (each lock group enforces its share).
    SetQuota(QuotaArgs),
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
    /// The most locks the tenant may hold at once (no bound when absent).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_locks: Option<u64>,
}

#[derive(Debug, Args)]
struct QuotaArgs {
    /// The tenant's name.
    name: String,
    #[command(flatten)]
    cluster: EndpointArgs,
    /// The most locks the tenant may hold at once.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), required_unless_present = "unlimited")]
    max_locks: Option<u64>,
    /// Lift the quota.
    #[arg(long, conflicts_with = "max_locks")]
    unlimited: bool,
}

/// Runs the chosen `tenant` subcommand.
pub fn run(args: TenantArgs, _json: bool) -> anyhow::Result<()> {
    let runtime = crate::runtime::command()?;
    match args.command {
        TenantCommand::Create(args) => runtime.block_on(create(args)),
        TenantCommand::SetQuota(args) => runtime.block_on(set_quota(args)),
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    shard_map::tenant::check_name(&args.name)
        .map_err(|e| anyhow!("tenant name {:?} {e}", args.name))?;
    let key = match args.api_key {
        Some(key) => {
            keys::check(&key)?;
            key
        }
        None => keys::new_api_key(),
    };
    let endpoint = &args.cluster.endpoint;
    let tenant = membership::add_tenant_key(endpoint, &args.name, shard_map::key_hash(&key))
        .await
        .map_err(|e| failed("cannot add the key", endpoint, e))?;
    if let Some(max_locks) = args.max_locks {
        membership::set_tenant_quota(endpoint, &args.name, Some(max_locks))
            .await
            .map_err(|e| failed("cannot set the quota", endpoint, e))?;
    }
    println!("tenant {} (id {tenant})", args.name);
    if let Some(max_locks) = args.max_locks {
        println!("quota: {max_locks} held locks");
    }
    println!("api key: {key}");
    println!("(shown once; the cluster keeps only its hash)");
    Ok(())
}

async fn set_quota(args: QuotaArgs) -> anyhow::Result<()> {
    let endpoint = &args.cluster.endpoint;
    let max_locks = if args.unlimited { None } else { args.max_locks };
    membership::set_tenant_quota(endpoint, &args.name, max_locks)
        .await
        .map_err(|e| failed("cannot set the quota", endpoint, e))?;
    match max_locks {
        Some(max) => println!("tenant {}: at most {max} held locks", args.name),
        None => println!("tenant {}: no quota", args.name),
    }
    Ok(())
}
