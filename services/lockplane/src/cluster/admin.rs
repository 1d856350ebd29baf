//! `lockplane cluster status | bootstrap | add-node | remove-node`, over the admin API of
//! any node.

use clap::Args;
use lockplane_node::membership::Admin;

use crate::failure::{Failure, failed};
use crate::tls::ClusterTlsArgs;

/// Where to reach the cluster, and the credentials admin calls carry.
#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// Any node of the cluster.
    #[arg(
        long,
        env = "LOCKPLANE_ENDPOINT",
        default_value = "127.0.0.1:7101",
        value_name = "HOST:PORT"
    )]
    pub endpoint: String,
    /// The cluster's admin token (printed once at bootstrap); every change needs it.
    #[arg(long, env = "LOCKPLANE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[command(flatten)]
    pub tls: ClusterTlsArgs,
}

impl EndpointArgs {
    /// The admin API through `--endpoint`, with these credentials.
    pub fn admin(&self) -> Result<Admin, Failure> {
        let dialer = self
            .tls
            .dialer()?
            .with_admin_token(self.admin_token.clone());
        Ok(Admin::new(dialer, self.endpoint.clone()))
    }
}

/// A node to add or remove.
#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(flatten)]
    cluster: EndpointArgs,
    /// The node's id.
    #[arg(long)]
    id: u64,
    /// Only these groups (0 is the meta group), e.g. `--group 1 --group 2`; every group
    /// when absent.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<u32>,
}

impl NodeArgs {
    fn only(&self) -> Option<&[u32]> {
        (!self.groups.is_empty()).then_some(self.groups.as_slice())
    }
}

/// Prints the shard map and, as the endpoint sees them, each group's leader and term.
pub fn status(args: EndpointArgs) -> anyhow::Result<()> {
    let admin = args.admin()?;
    crate::runtime::command()?.block_on(async {
        let map = admin
            .shard_map()
            .await
            .map_err(|e| failed("cannot read the shard map", &args.endpoint, e))?;
        let status = admin
            .status()
            .await
            .map_err(|e| failed("cannot read the status", &args.endpoint, e))?;
        println!(
            "shard map version {}: {} lock groups, admin token {}",
            map.version,
            map.shards,
            if map.admin_token_set {
                "set"
            } else {
                "not set (run `lockplane cluster bootstrap`)"
            }
        );
        for node in &map.nodes {
            println!("node {:>3}  {}  region {}", node.id, node.addr, node.region);
        }
        println!(
            "node {} log: {} ({} failed writes since start)",
            status.node, status.log_health, status.log_write_errors
        );
        println!(
            "group  leader  term  voters (as node {} sees them)",
            status.node
        );
        for group in &status.groups {
            let leader = group.leader.map_or("-".to_string(), |l| l.to_string());
            let voters: Vec<_> = group.voters.iter().map(u64::to_string).collect();
            println!(
                "{:>5}  {:>6}  {:>4}  {}",
                group.group,
                leader,
                group.term,
                voters.join(",")
            );
        }
        Ok(())
    })
}

/// Creates the cluster's first admin token (`--admin-token`, or a new random one) and
/// prints it once.
pub fn bootstrap(args: EndpointArgs) -> anyhow::Result<()> {
    let chosen = args.admin_token.clone();
    let token = match chosen.clone() {
        Some(token) => token,
        None => crate::keys::new_admin_token()?,
    };
    let admin = args.admin()?;
    crate::runtime::command()?.block_on(async {
        admin
            .set_admin_token(shard_map::key_hash(&token), true)
            .await
            .map_err(|e| failed("cannot create the admin token", &args.endpoint, e))?;
        if chosen.is_some() {
            println!("admin token set");
        } else {
            println!("admin token: {token}");
            println!("(shown once; the cluster keeps only its hash)");
        }
        Ok(())
    })
}

/// Replaces the admin token with a new random one, authorized by the current one, and
/// prints the new one once.
pub fn rotate_admin_token(args: EndpointArgs) -> anyhow::Result<()> {
    let token = crate::keys::new_admin_token()?;
    let admin = args.admin()?;
    crate::runtime::command()?.block_on(async {
        admin
            .set_admin_token(shard_map::key_hash(&token), false)
            .await
            .map_err(|e| {
                let what = if matches!(e, lockplane_proto::RpcError::Retryable(_)) {
                    format!(
                        "cannot tell whether the admin token was replaced (if it was, it is \
                         now {token}; try it, or run this again with the old one)"
                    )
                } else {
                    "cannot replace the admin token".to_string()
                };
                failed(&what, &args.endpoint, e)
            })?;
        println!("admin token: {token}");
        println!("(shown once; the old token no longer works)");
        Ok(())
    })
}

/// Adds a joined node to every group.
pub fn add_node(args: NodeArgs) -> anyhow::Result<()> {
    let admin = args.cluster.admin()?;
    crate::runtime::command()?.block_on(async {
        let changed = admin.add_node(args.id, args.only()).await.map_err(|e| {
            failed(
                &format!("cannot add node {}", args.id),
                &args.cluster.endpoint,
                e,
            )
        })?;
        for (group, voters) in changed.voters {
            println!("group {group}: voters {voters:?}");
        }
        match args.only() {
            None => println!("node {} is a voter of every group", args.id),
            Some(groups) => println!("node {} is a voter of groups {groups:?}", args.id),
        }
        Ok(())
    })
}

/// Removes a node from every group and from the shard map.
pub fn remove_node(args: NodeArgs) -> anyhow::Result<()> {
    let admin = args.cluster.admin()?;
    crate::runtime::command()?.block_on(async {
        let changed = admin.remove_node(args.id, args.only()).await.map_err(|e| {
            failed(
                &format!("cannot remove node {}", args.id),
                &args.cluster.endpoint,
                e,
            )
        })?;
        for (group, voters) in changed.voters {
            println!("group {group}: voters {voters:?}");
        }
        match args.only() {
            None => println!("node {} removed; it can be stopped", args.id),
            Some(groups) => println!("node {} removed from groups {groups:?}", args.id),
        }
        Ok(())
    })
}
