//! `lockplane tenant …`: tenants and their API keys, over the admin API (every change needs
//! the admin token). `create` makes a tenant (or adds a key to one) and prints the new key
//! once (the cluster keeps only its SHA-256); `list` and `keys` show tenants and the ids of
//! their keys; `revoke-key` stops one key, `rotate-key` replaces all of a tenant's keys with
//! a new one; `set-quota` bounds how many locks a tenant may hold. Gateways see every
//! change with their next shard-map read (within 5 s).

use anyhow::anyhow;
use clap::{Args, Subcommand};
use lockplane_proto::admin::{ShardMap, TenantEntry};
use serde_json::json;

use crate::cluster::EndpointArgs;
use crate::failure::{Failure, failed};
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
    /// List the tenants: id, name, number of keys, quota.
    List(EndpointArgs),
    /// List the ids of a tenant's API keys (the first 12 hex digits of each key's SHA-256).
    Keys(NamedArgs),
    /// Stop one API key of a tenant, named by its id (or a unique prefix of it).
    RevokeKey(RevokeArgs),
    /// Give a tenant a new API key and stop all its others; prints the new key once.
    RotateKey(NamedArgs),
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
struct NamedArgs {
    /// The tenant's name.
    name: String,
    #[command(flatten)]
    cluster: EndpointArgs,
}

#[derive(Debug, Args)]
struct RevokeArgs {
    /// The tenant's name.
    name: String,
    /// The key's id, as `lockplane tenant keys NAME` lists it (a unique prefix will do).
    key_id: String,
    #[command(flatten)]
    cluster: EndpointArgs,
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

/// Runs the chosen `tenant` subcommand; with `json`, prints JSON.
pub fn run(args: TenantArgs, json: bool) -> anyhow::Result<()> {
    let runtime = crate::runtime::command()?;
    match args.command {
        TenantCommand::Create(args) => runtime.block_on(create(args, json)),
        TenantCommand::List(args) => runtime.block_on(list(args, json)),
        TenantCommand::Keys(args) => runtime.block_on(list_keys(args, json)),
        TenantCommand::RevokeKey(args) => runtime.block_on(revoke(args, json)),
        TenantCommand::RotateKey(args) => runtime.block_on(rotate(args, json)),
        TenantCommand::SetQuota(args) => runtime.block_on(set_quota(args, json)),
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    shard_map::tenant::check_name(name)
        .map_err(|e| Failure::usage(format!("tenant name {name:?} {e}")).into())
}

/// Prints a new key: as text with the warning that it is shown once, or as JSON.
fn print_key(name: &str, tenant: u64, key: &str, json: bool) {
    if json {
        println!(
            "{}",
            json!({"tenant": name, "id": tenant, "api_key": key, "key_id": keys::key_id(&shard_map::key_hash(key))})
        );
    } else {
        println!("tenant {name} (id {tenant})");
        println!("api key: {key}");
        println!("(shown once; the cluster keeps only its hash)");
    }
}

async fn create(args: CreateArgs, json: bool) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let key = match args.api_key {
        Some(key) => {
            keys::check(&key)?;
            key
        }
        None => keys::new_api_key()?,
    };
    let admin = args.cluster.admin()?;
    let endpoint = &args.cluster.endpoint;
    let tenant = admin
        .add_tenant_key(&args.name, shard_map::key_hash(&key))
        .await
        .map_err(|e| failed("cannot add the key", endpoint, e))?;
    if let Some(max_locks) = args.max_locks {
        admin
            .set_tenant_quota(&args.name, Some(max_locks))
            .await
            .map_err(|e| failed("cannot set the quota", endpoint, e))?;
        if !json {
            println!("quota: {max_locks} held locks");
        }
    }
    print_key(&args.name, tenant, &key, json);
    Ok(())
}

/// The shard map, read through `cluster`.
async fn shard_map(cluster: &EndpointArgs) -> anyhow::Result<ShardMap> {
    cluster
        .admin()?
        .shard_map()
        .await
        .map_err(|e| failed("cannot read the tenants", &cluster.endpoint, e))
}

/// The tenant named `name` in `map`.
fn tenant<'m>(map: &'m ShardMap, name: &str) -> anyhow::Result<&'m TenantEntry> {
    map.tenants
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Failure::usage(format!("no tenant is named {name:?}")).into())
}

async fn list(args: EndpointArgs, json: bool) -> anyhow::Result<()> {
    let map = shard_map(&args).await?;
    if json {
        let tenants: Vec<_> = map
            .tenants
            .iter()
            .map(|t| json!({"id": t.id, "name": t.name, "keys": t.key_hashes.len(), "max_locks": t.max_locks}))
            .collect();
        println!("{}", json!({ "tenants": tenants }));
        return Ok(());
    }
    println!("{:>4}  {:<24} {:>4}  quota", "id", "name", "keys");
    for t in &map.tenants {
        let quota = t.max_locks.map_or("-".to_string(), |q| q.to_string());
        println!(
            "{:>4}  {:<24} {:>4}  {quota}",
            t.id,
            t.name,
            t.key_hashes.len()
        );
    }
    Ok(())
}

async fn list_keys(args: NamedArgs, json: bool) -> anyhow::Result<()> {
    let map = shard_map(&args.cluster).await?;
    let ids: Vec<String> = tenant(&map, &args.name)?
        .key_hashes
        .iter()
        .map(|h| keys::key_id(h))
        .collect();
    if json {
        println!("{}", json!({"tenant": args.name, "key_ids": ids}));
    } else {
        for id in ids {
            println!("{id}");
        }
    }
    Ok(())
}

async fn revoke(args: RevokeArgs, json: bool) -> anyhow::Result<()> {
    if args.key_id.len() < 4 || !args.key_id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Failure::usage(format!(
            "key id {:?} must be at least 4 hex digits of an id `lockplane tenant keys {}` lists",
            args.key_id, args.name
        ))
        .into());
    }
    let map = shard_map(&args.cluster).await?;
    let matching: Vec<&Vec<u8>> = tenant(&map, &args.name)?
        .key_hashes
        .iter()
        .filter(|h| keys::key_id(h).starts_with(&args.key_id.to_ascii_lowercase()))
        .collect();
    let hash = match matching.as_slice() {
        [one] => shard_map::KeyHash::try_from(one.as_slice())
            .map_err(|_| anyhow!("the shard map holds a malformed key hash"))?,
        [] => {
            return Err(Failure::usage(format!(
                "tenant {} has no key with id {:?} (`lockplane tenant keys {}` lists them)",
                args.name, args.key_id, args.name
            ))
            .into());
        }
        _ => {
            return Err(Failure::usage(format!(
                "key id {:?} matches {} keys of tenant {}; give more of it",
                args.key_id,
                matching.len(),
                args.name
            ))
            .into());
        }
    };
    args.cluster
        .admin()?
        .revoke_tenant_key(&args.name, hash)
        .await
        .map_err(|e| failed("cannot revoke the key", &args.cluster.endpoint, e))?;
    let id = keys::key_id(&hash);
    if json {
        println!("{}", json!({"tenant": args.name, "revoked": id}));
    } else {
        println!(
            "revoked key {id} of tenant {}; gateways refuse it within 5 s",
            args.name
        );
    }
    Ok(())
}

async fn rotate(args: NamedArgs, json: bool) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let key = keys::new_api_key()?;
    let tenant = args
        .cluster
        .admin()?
        .replace_tenant_keys(&args.name, shard_map::key_hash(&key))
        .await
        .map_err(|e| {
            let what = if matches!(e, lockplane_proto::RpcError::Retryable(_)) {
                format!(
                    "cannot tell whether the key was rotated (if it was, the key is now \
                     {key}; running this again rotates once more)"
                )
            } else {
                "cannot rotate the key".to_string()
            };
            failed(&what, &args.cluster.endpoint, e)
        })?;
    if !json {
        println!(
            "every earlier key of {} stops working within 5 s",
            args.name
        );
    }
    print_key(&args.name, tenant, &key, json);
    Ok(())
}

async fn set_quota(args: QuotaArgs, json: bool) -> anyhow::Result<()> {
    let max_locks = if args.unlimited { None } else { args.max_locks };
    args.cluster
        .admin()?
        .set_tenant_quota(&args.name, max_locks)
        .await
        .map_err(|e| failed("cannot set the quota", &args.cluster.endpoint, e))?;
    match (json, max_locks) {
        (true, _) => println!("{}", json!({"tenant": args.name, "max_locks": max_locks})),
        (false, Some(max)) => println!("tenant {}: at most {max} held locks", args.name),
        (false, None) => println!("tenant {}: no quota", args.name),
    }
    Ok(())
}
