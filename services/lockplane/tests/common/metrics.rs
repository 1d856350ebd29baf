//! Reading the `/metrics` of processes a test started, and the scrape config `cluster up`
//! writes.

use std::collections::BTreeMap;
use std::path::Path;

use super::http;

/// The Prometheus text at `http://127.0.0.1:{port}/metrics`.
pub fn scrape(port: u16) -> String {
    let (status, text) = http(port, "GET", "/metrics", "", "");
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of `series` (`name` or `name{label="value",…}`, labels as Prometheus writes
/// them: sorted by name) in `text`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

/// The sum of every series of `name` in `text` (all label values).
pub fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter(|line| line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

/// Each node's metrics port, from the `prometheus.yml` `cluster up` wrote into `dir`.
pub fn node_metrics_ports(dir: &Path) -> BTreeMap<u64, u16> {
    let config = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    let mut ports = BTreeMap::new();
    let mut in_nodes = false;
    let mut port = None;
    for line in config.lines().map(str::trim) {
        if let Some(job) = line.strip_prefix("- job_name: ") {
            in_nodes = job == "lockplane-node";
        } else if let Some(target) = line.strip_prefix("- targets: ['127.0.0.1:") {
            port = target.strip_suffix("']").map(|p| p.parse().unwrap());
        } else if let Some(id) = line.strip_prefix("node: '") {
            if in_nodes {
                ports.insert(id.trim_end_matches('\'').parse().unwrap(), port.unwrap());
            }
        }
    }
    ports
}

/// The node whose metrics say it leads `group`, once one round of scrapes shows exactly
/// one (within 30 s).
pub fn leader_of(ports: &BTreeMap<u64, u16>, group: u32) -> u64 {
    let series = format!("lockplane_raft_leader{{group=\"{group}\"}}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let leaders: Vec<u64> = ports
            .iter()
            .filter(|(_, port)| sample(&scrape(**port), &series) == Some(1.0))
            .map(|(id, _)| *id)
            .collect();
        if let [leader] = leaders[..] {
            return leader;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "leaders of group {group}: {leaders:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A Prometheus server (Debian's `prometheus`, on `PATH`) a test started with a scrape
/// config, on a free port, its data and log in a directory of the test's; killed on drop.
pub struct Prometheus {
    child: std::process::Child,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus with `config`, keeping its data and log under `dir`.
    pub fn start(config: &Path, dir: &Path) -> Self {
        let port = super::free_ports(1)[0];
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package `prometheus`; scripts/test.sh installs it)");
        Self { child, port }
    }

    /// The result vector of the instant query `expr` (`[]` while Prometheus is not up).
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let Some((status, body)) = get_http10(self.port, &format!("/api/v1/query?query={encoded}"))
        else {
            return Vec::new(); // not listening yet
        };
        if status == 503 {
            return Vec::new(); // starting
        }
        assert_eq!(status, 200, "{expr}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["status"], "success", "{expr}: {body}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (60 s at most) until `expr` answers a sample for which `done` holds.
    pub fn until(
        &self,
        expr: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let result = self.query(expr);
            if done(&result) {
                return result;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{expr} answered {result:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

/// A GET in HTTP/1.0, so that the answer comes whole rather than chunked (Prometheus
/// chunks long answers to HTTP/1.1); `None` when nothing listens on `port`.
fn get_http10(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.get(9..12)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// The number a Prometheus result sample holds (`"value": [time, "number"]`).
pub fn value_of(sample: &serde_json::Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
