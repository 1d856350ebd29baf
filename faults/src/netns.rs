//! Network hosts for one run: a Linux network namespace per host, all joined by a bridge
//! that lives in a namespace of its own (nothing is added to the machine's own network).
//! Partitions drop a peer's packets with `ip rule … blackhole` inside a host, both ways;
//! healing deletes the rules. Everything is deleted when the [`Hosts`] are dropped.

use std::fs::File;
use std::process::Command;

use anyhow::{Context, bail};

/// The subnet every run uses inside its own bridge (runs do not share a bridge).
const SUBNET: &str = "10.77.0";

/// Preference of the partition rules: before the `local` table's rule.
const CUT_PREF: &str = "10";

/// Preference the `local` table's rule is moved to in every host.
const LOCAL_PREF: &str = "100";

/// One host of the run.
#[derive(Debug, Clone)]
pub struct Host {
    /// Short name (`n1`, `edge`).
    pub name: String,
    /// The network namespace's name.
    pub netns: String,
    /// Its address on the bridge.
    pub ip: String,
}

/// The namespaces of one run; deleted on drop.
pub struct Hosts {
    hub: String,
    hosts: Vec<Host>,
}

/// Runs `ip` with `args`, failing with what it printed.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (Debian package iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Hosts {
    /// Creates the bridge namespace and one namespace per name in `names`, each with an
    /// address on the bridge (`10.77.0.<10+i>`).
    pub fn create(prefix: &str, names: &[&str]) -> anyhow::Result<Self> {
        let hub = format!("{prefix}-hub");
        let mut hosts = Self {
            hub: hub.clone(),
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &hub]).context(
            "cannot create a network namespace: fault runs need root (see DEVELOPERS.md)",
        )?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for (i, name) in names.iter().enumerate() {
            let netns = format!("{prefix}-{name}");
            let host = Host {
                name: (*name).to_string(),
                netns: netns.clone(),
                ip: format!("{SUBNET}.{}", 10 + i),
            };
            hosts.hosts.push(host.clone());
            let port = format!("v{i}");
            ip(&["netns", "add", &netns])?;
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &netns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                "netns", &hub,
            ])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{}/24", host.ip),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
            // Packets for this host's own addresses are routed by the `local` table, whose
            // rule comes first (preference 0): moved behind the partition rules, so that
            // those drop what a cut-off peer sends to this host.
            ip(&[
                "-n", &netns, "rule", "add", "pref", LOCAL_PREF, "lookup", "local",
            ])?;
            ip(&["-n", &netns, "rule", "del", "pref", "0"])?;
        }
        Ok(hosts)
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// Moves this process (the calling thread, and every thread and child it starts
    /// afterwards) into `name`'s network.
    pub fn enter(&self, name: &str) -> anyhow::Result<()> {
        let path = format!("/run/netns/{}", self.host(name).netns);
        let file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("cannot enter {path}"))?;
        Ok(())
    }

    /// Drops every packet between hosts `a` and `b`, both ways.
    pub fn cut(&self, a: &str, b: &str) -> anyhow::Result<()> {
        self.rules("add", a, b)
    }

    /// Undoes [`Hosts::cut`].
    pub fn heal(&self, a: &str, b: &str) -> anyhow::Result<()> {
        self.rules("del", a, b)
    }

    /// Each host drops what arrives from the other (`from PEER blackhole`, ahead of the
    /// `local` table): both ways are cut and the packets vanish silently, as in a real
    /// partition (a `to PEER` rule would fail the sender's writes at once instead).
    fn rules(&self, verb: &str, a: &str, b: &str) -> anyhow::Result<()> {
        let (a, b) = (self.host(a), self.host(b));
        for (here, there) in [(a, b), (b, a)] {
            ip(&[
                "-n",
                &here.netns,
                "rule",
                verb,
                "pref",
                CUT_PREF,
                "from",
                &there.ip,
                "blackhole",
            ])?;
        }
        Ok(())
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.netns]);
        }
        let _ = ip(&["netns", "del", &self.hub]);
    }
}
