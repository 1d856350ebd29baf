//! The processes of a run: three `lockplane node`s, each on its own host, and a gateway on
//! the edge host (where the harness and its clients run), started from one `lockplane`
//! binary; the cluster's admin token and a tenant; which node leads a group.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lockplane_proto::admin::admin_service_client::AdminServiceClient;
use lockplane_proto::admin::{GetShardMapRequest, StatusRequest};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::disk::NodeDisk;
use crate::netns::Hosts;

/// The port every node serves Raft and the lock API on, on its own host.
const NODE_PORT: u16 = 7101;

/// The gateway's REST port on the edge host's loopback.
pub const GATEWAY_PORT: u16 = 7070;

/// The tenant the clients act as, and its API key.
pub const API_KEY: &str = "lp_faults_0123456789abcdef";
const ADMIN_TOKEN: &str = "faults-admin-token-0123456789";
const TENANT: &str = "faults";

/// One node process.
struct NodeProcess {
    id: u64,
    host: String,
    addr: String,
    child: Option<Child>,
    /// Its data directory, on a disk of its own.
    disk: NodeDisk,
    /// The file holding its wall clock's offset (the clock-jump test hook).
    clock_offset: PathBuf,
}

/// The running cluster.
pub struct Cluster {
    lockplane: PathBuf,
    dir: PathBuf,
    groups: u32,
    nodes: Vec<NodeProcess>,
    gateway: Option<Child>,
    /// The tenant id the API key acts as.
    pub tenant: u64,
}

impl Cluster {
    /// Starts a node on each of `hosts` (`n1`, `n2`, `n3`) and a gateway here (the edge
    /// host), sets the admin token and creates the tenant. Logs go to `dir`.
    pub async fn start(
        lockplane: &Path,
        dir: &Path,
        net: &Hosts,
        groups: u32,
    ) -> anyhow::Result<Self> {
        let names = ["n1", "n2", "n3"];
        let members = names
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{}={}:{NODE_PORT}", i + 1, net.host(h).ip))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, h) in names.iter().enumerate() {
            let id = i as u64 + 1;
            let clock_offset = dir.join(format!("node-{id}.clock-offset"));
            std::fs::write(&clock_offset, "0")
                .with_context(|| format!("cannot write {}", clock_offset.display()))?;
            nodes.push(NodeProcess {
                id,
                host: net.host(h).netns.clone(),
                addr: format!("{}:{NODE_PORT}", net.host(h).ip),
                child: None,
                disk: NodeDisk::mount(&dir.join(format!("node-{id}")))?,
                clock_offset,
            });
        }
        let mut cluster = Self {
            lockplane: lockplane.to_path_buf(),
            dir: dir.to_path_buf(),
            groups,
            nodes,
            gateway: None,
            tenant: 0,
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn_node(i, Some(&members))?;
        }
        cluster.set_up_credentials().await?;
        let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
        let log = log_file(dir, "gateway")?;
        let gateway = Command::new(lockplane)
            .args(["gateway", "--stop-on-stdin-eof", "--listen"])
            .arg(format!("127.0.0.1:{GATEWAY_PORT}"))
            .args(["--endpoint", &endpoints.join(",")])
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start the gateway")?;
        cluster.gateway = Some(gateway);
        Ok(cluster)
    }

    fn spawn_node(&mut self, index: usize, members: Option<&str>) -> anyhow::Result<()> {
        let node = &self.nodes[index];
        let log = log_file(&self.dir, &format!("node-{}", node.id))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &node.host])
            .arg(&self.lockplane)
            .args(["node", "--id", &node.id.to_string(), "--stop-on-stdin-eof"])
            .args(["--listen", &node.addr, "--groups", &self.groups.to_string()])
            .arg("--data-dir")
            .arg(node.disk.path())
            .arg("--test-clock-offset-file")
            .arg(&node.clock_offset);
        if let Some(members) = members {
            command.args(["--initial-cluster", members]);
        }
        let child = command
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {}", node.id))?;
        self.nodes[index].child = Some(child);
        Ok(())
    }

    async fn set_up_credentials(&mut self) -> anyhow::Result<()> {
        let endpoint = self.nodes[0].addr.clone();
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self.shard_map(&endpoint).await.is_ok_and(|m| m.shards > 0);
            if ready {
                break;
            }
            if Instant::now() > until {
                bail!(
                    "the cluster had no shard map within 60 s (logs in {})",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.cli(&[
            "cluster",
            "bootstrap",
            "--endpoint",
            &endpoint,
            "--admin-token",
            ADMIN_TOKEN,
        ])?;
        self.cli(&[
            "tenant",
            "create",
            TENANT,
            "--endpoint",
            &endpoint,
            "--admin-token",
            ADMIN_TOKEN,
            "--api-key",
            API_KEY,
        ])?;
        let hash = shard_map::key_hash(API_KEY);
        let map = self.shard_map(&endpoint).await?;
        self.tenant = map
            .tenants
            .iter()
            .find(|t| t.key_hashes.iter().any(|h| h.as_slice() == hash.as_slice()))
            .map(|t| t.id)
            .context("the tenant just created is not in the shard map")?;
        Ok(())
    }

    fn cli(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(&self.lockplane)
            .args(args)
            .output()
            .context("cannot run lockplane")?;
        if !out.status.success() {
            bail!(
                "lockplane {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The shard map, read from the meta group's leader (following hints from `endpoint`).
    async fn shard_map(&self, endpoint: &str) -> anyhow::Result<lockplane_proto::admin::ShardMap> {
        let dialer = lockplane_proto::Dialer::default();
        let map = lockplane_proto::follow::at_leader(
            &dialer,
            endpoint,
            Duration::from_secs(2),
            |channel| async move {
                let mut request = tonic::Request::new(GetShardMapRequest {});
                request.set_timeout(Duration::from_secs(1));
                AdminServiceClient::new(channel)
                    .get_shard_map(request)
                    .await
            },
        )
        .await?;
        Ok(map)
    }

    /// The node that leads `group` in the highest term any answering node knows of.
    pub async fn leader_of(&self, group: u32) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for node in &self.nodes {
            if node.child.is_none() {
                continue;
            }
            let Ok(channel) = lockplane_proto::Dialer::default().channel(&node.addr) else {
                continue;
            };
            let mut admin = AdminServiceClient::new(channel);
            let mut request = tonic::Request::new(StatusRequest {});
            request.set_timeout(Duration::from_millis(500));
            let asked = tokio::time::timeout(Duration::from_secs(1), admin.status(request)).await;
            let Ok(Ok(reply)) = asked else { continue };
            for g in reply.into_inner().groups {
                if let (true, Some(leader)) = (g.group == group, g.leader) {
                    if best.is_none_or(|(term, _)| g.term > term) {
                        best = Some((g.term, leader));
                    }
                }
            }
        }
        best.map(|(_, leader)| leader)
    }

    /// The host (short name) of node `id`.
    pub fn host_of(id: u64) -> String {
        format!("n{id}")
    }

    fn pid(&self, id: u64) -> Option<Pid> {
        let node = self.nodes.iter().find(|n| n.id == id)?;
        let pid = node.child.as_ref()?.id();
        Some(Pid::from_raw(i32::try_from(pid).ok()?))
    }

    /// Sends `signal` to node `id` (SIGSTOP, SIGCONT).
    pub fn signal(&self, id: u64, signal: Signal) -> anyhow::Result<()> {
        let pid = self.pid(id).context("node not running")?;
        kill(pid, signal).with_context(|| format!("cannot signal node {id}"))
    }

    /// `kill -9` of node `id`.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGKILL)?;
        if let Some(node) = self.nodes.iter_mut().find(|n| n.id == id) {
            if let Some(mut child) = node.child.take() {
                let _ = child.wait();
            }
        }
        Ok(())
    }

    /// Starts node `id` again from its data directory.
    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let index = self
            .nodes
            .iter()
            .position(|n| n.id == id)
            .context("no such node")?;
        self.spawn_node(index, None)
    }

    fn node(&self, id: u64) -> anyhow::Result<&NodeProcess> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .with_context(|| format!("no node {id}"))
    }

    /// Fills node `id`'s disk; returns the bytes taken.
    pub async fn fill_disk(&self, id: u64) -> anyhow::Result<u64> {
        let dir = self.node(id)?.disk.path().to_path_buf();
        tokio::task::spawn_blocking(move || crate::disk::fill(&dir)).await?
    }

    /// Gives node `id`'s disk its space back.
    pub fn free_disk(&self, id: u64) -> anyhow::Result<()> {
        self.node(id)?.disk.free()
    }

    /// Jumps node `id`'s wall clock to `offset_ms` off the real time.
    pub fn set_clock_offset(&self, id: u64, offset_ms: i64) -> anyhow::Result<()> {
        let path = &self.node(id)?.clock_offset;
        std::fs::write(path, offset_ms.to_string())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The ids of every node.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The processes that exited on their own (not killed by the run) since the last
    /// call, by name; each is reported once.
    pub fn crashed(&mut self) -> BTreeMap<String, String> {
        let mut gone = BTreeMap::new();
        for node in &mut self.nodes {
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                gone.insert(format!("node {}", node.id), status.to_string());
                node.child = None;
            }
        }
        if let Some(Ok(Some(status))) = self.gateway.as_mut().map(Child::try_wait) {
            gone.insert("gateway".to_string(), status.to_string());
            self.gateway = None;
        }
        gone
    }
}

impl Drop for Cluster {
    /// Stops every process: SIGCONT (a paused one), closing standard input (a graceful
    /// stop), then SIGKILL after 5 s.
    fn drop(&mut self) {
        let mut children: Vec<Child> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.child.take())
            .chain(self.gateway.take())
            .collect();
        for child in &mut children {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            }
            drop(child.stdin.take());
        }
        let until = Instant::now() + Duration::from_secs(5);
        for child in &mut children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    let path = dir.join(format!("{name}.log"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}
