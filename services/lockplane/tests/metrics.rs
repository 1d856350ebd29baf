//! Metrics of `lockplane cluster up`: every node serves `/metrics` (Raft, locks, the
//! write-ahead log, the process), the gateway adds the process's figures to its own, and
//! the `prometheus.yml` it writes lets a real Prometheus (Debian's, on `PATH`) scrape
//! every process.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::metrics::{Prometheus, node_metrics_ports, sample, scrape, total, value_of};
use common::{Process, TempDir, cluster_up, free_ports, http};

#[test]
fn cluster_up_metrics_count_what_clients_did_and_prometheus_scrapes_every_process() {
    let dir = TempDir::new("metrics_cluster");
    let http_port = free_ports(1)[0];
    let key = "metrics-key";
    let up = Process::start(&mut cluster_up(&dir, http_port, key));
    up.wait_for("gateway serving");

    // 20 keys acquired, 5 of them released, and one acquire of a held key refused.
    for i in 0..20 {
        let body = r#"{"owner":"a","ttl_ms":60000}"#;
        let (status, answer) = http(
            http_port,
            "POST",
            &format!("/v1/locks/k{i}/acquire"),
            key,
            body,
        );
        assert_eq!(status, 200, "{answer}");
        if i < 5 {
            let token: serde_json::Value = serde_json::from_str(&answer).unwrap();
            let release = format!(
                r#"{{"owner":"a","fencing_token":{}}}"#,
                token["fencing_token"]
            );
            let path = format!("/v1/locks/k{i}/release");
            assert_eq!(http(http_port, "POST", &path, key, &release).0, 200);
        }
    }
    let body = r#"{"owner":"b","ttl_ms":60000}"#;
    assert_eq!(
        http(http_port, "POST", "/v1/locks/k10/acquire", key, body).0,
        409
    );

    let ports = node_metrics_ports(&dir.0);
    assert_eq!(ports.len(), 3, "{ports:?}");
    // Leader-only figures are summed over scrapes taken one after another: a leader change
    // in between would miscount, so read until one round shows one leader per group.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let texts: Vec<String> = loop {
        let texts: Vec<String> = ports.values().map(|port| scrape(*port)).collect();
        let settled = (0..=2).all(|group| {
            let series = format!("lockplane_raft_leader{{group=\"{group}\"}}");
            texts
                .iter()
                .filter(|t| sample(t, &series) == Some(1.0))
                .count()
                == 1
        });
        if settled {
            break texts;
        }
        assert!(std::time::Instant::now() < deadline, "no settled leaders");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let sum = |series: &str| -> f64 { texts.iter().filter_map(|t| sample(t, series)).sum() };
    let sum_all = |name: &str| -> f64 { texts.iter().map(|t| total(t, name)).sum() };
    assert_eq!(
        sum(r#"lockplane_lock_acquisitions_total{result="granted"}"#),
        20.0
    );
    assert_eq!(
        sum(r#"lockplane_lock_acquisitions_total{result="held"}"#),
        1.0
    );
    assert_eq!(sum("lockplane_lock_contended_total"), 1.0);
    assert_eq!(
        sum_all("lockplane_locks_held"),
        15.0,
        "held, counted once each"
    );
    assert_eq!(sum_all("lockplane_locks_overdue"), 0.0);
    assert!(sum("lockplane_raft_proposal_duration_seconds_count") >= 25.0);
    assert_eq!(sum_all("lockplane_node_info"), 3.0);
    // Every replica counts its group's changes; the largest per group counts each once.
    let mut acquired: BTreeMap<u32, f64> = BTreeMap::new();
    let mut released: BTreeMap<u32, f64> = BTreeMap::new();
    for text in &texts {
        for group in 1..=2 {
            for (kind, seen) in [("acquired", &mut acquired), ("released", &mut released)] {
                let series =
                    format!("lockplane_lock_changes_total{{change=\"{kind}\",group=\"{group}\"}}");
                let n = sample(text, &series).unwrap_or(0.0);
                let most = seen.entry(group).or_default();
                *most = most.max(n);
            }
        }
    }
    assert_eq!(acquired.values().sum::<f64>(), 20.0, "{acquired:?}");
    assert_eq!(released.values().sum::<f64>(), 5.0, "{released:?}");
    for text in &texts {
        assert!(sample(text, "lockplane_wal_fsyncs_total").unwrap() > 0.0);
        assert_eq!(sample(text, "lockplane_wal_healthy"), Some(1.0));
        assert!(sample(text, "lockplane_process_resident_memory_bytes").unwrap() > 1e6);
        let capacity = sample(text, "lockplane_data_dir_capacity_bytes").unwrap();
        let available = sample(text, "lockplane_data_dir_available_bytes").unwrap();
        assert!(
            capacity > 0.0 && available > 0.0 && available <= capacity,
            "{capacity} {available}"
        );
    }
    let gateway = scrape(http_port);
    assert!(sample(&gateway, "lockplane_process_open_fds").unwrap() > 0.0);

    // The scrape config: valid for promtool, and Prometheus reaches every process with it.
    let config = dir.0.join("prometheus.yml");
    let checked = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("promtool (Debian package `prometheus`; scripts/test.sh installs it)");
    assert!(checked.status.success(), "{checked:?}");
    let prometheus = Prometheus::start(&config, &dir.0);
    let up_targets = prometheus.until("up == 1", |r| r.len() == 4);
    let jobs: Vec<&str> = up_targets
        .iter()
        .map(|s| s["metric"]["job"].as_str().unwrap())
        .collect();
    assert_eq!(
        jobs.iter().filter(|j| **j == "lockplane-node").count(),
        3,
        "{jobs:?}"
    );
    assert!(jobs.contains(&"lockplane-gateway"), "{jobs:?}");
    let held = prometheus.until("sum(lockplane_locks_held)", |r| !r.is_empty());
    assert_eq!(value_of(&held[0]), 15.0);
    drop(prometheus);
    up.terminate("all stopped");
}
