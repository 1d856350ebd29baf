//! `lockplane cluster status | add-node | remove-node`, over the admin API of any node.

use clap::Args;
use lockplane_node::membership;
use lockplane_proto::admin::StatusRequest;
use lockplane_proto::admin::admin_service_client::AdminServiceClient;

use crate::runtime::failed;

/// Where to reach the cluster.
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
    crate::runtime::command()?.block_on(async {
        let map = membership::shard_map(&args.endpoint)
            .await
            .map_err(|e| failed("cannot read the shard map", &args.endpoint, e))?;
        let status = AdminServiceClient::new(lockplane_proto::follow::channel(&args.endpoint)?)
            .status(StatusRequest {})
            .await
            .map_err(|e| failed("cannot read the status", &args.endpoint, e.into()))?
            .into_inner();
        println!(
            "shard map version {}: {} lock groups",
            map.version, map.shards
        );
        for node in &map.nodes {
            println!("node {:>3}  {}  region {}", node.id, node.addr, node.region);
        }
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

/// Adds a joined node to every group.
pub fn add_node(args: NodeArgs) -> anyhow::Result<()> {
    crate::runtime::command()?.block_on(async {
        let changed = membership::add_node(&args.cluster.endpoint, args.id, args.only())
            .await
            .map_err(|e| {
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
    crate::runtime::command()?.block_on(async {
        let changed = membership::remove_node(&args.cluster.endpoint, args.id, args.only())
            .await
            .map_err(|e| {
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
