//! The Grafana dashboards (`dashboards/*.json`) and the alert rules
//! (`infra/prometheus/alerts.yml`) against a live cluster: `cluster up` with Redis (the
//! machine's, `LOCKPLANE_TEST_REDIS`, under a key prefix of the test's own), a Kafka-
//! protocol broker (tansu, `LOCKPLANE_TEST_TANSU`) and an audit database (PostgreSQL,
//! `LOCKPLANE_TEST_POSTGRES`) under a steady load, scraped by Debian's Prometheus with the
//! scrape config `cluster up` wrote. Every PromQL expression of every panel must parse and
//! return data; every SQL panel must return rows of the audit trail; every alert
//! expression must parse.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::metrics::{Prometheus, value_of};
use common::{Process, TempDir, cluster_up, free_ports, http};
use testkit::broker::Broker;
use testkit::postgres::Database;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every query of every panel of the committed dashboards: `(dashboard, panel, kind,
/// query)`, kind being `prometheus` or `grafana-postgresql-datasource`.
fn dashboard_queries() -> Vec<(String, String, String, String)> {
    let mut queries = Vec::new();
    let dir = repo().join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    for file in files {
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let name = board["title"].as_str().unwrap().to_string();
        for panel in board["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let kind = target["datasource"]["type"].as_str().unwrap().to_string();
                let query = match kind.as_str() {
                    "prometheus" => target["expr"].as_str(),
                    _ => target["rawSql"].as_str(),
                }
                .unwrap()
                .to_string();
                queries.push((name.clone(), title.clone(), kind, query));
            }
        }
    }
    queries
}

/// The `expr` of every rule in `alerts.yml` (inline, or a `|` block).
fn alert_expressions() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("infra/prometheus/alerts.yml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        if rest.trim() == "|" {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            exprs.push(block.join(" "));
        } else {
            exprs.push(rest.trim().to_string());
        }
    }
    exprs
}

/// Grafana's PostgreSQL macro `$__timeFilter(col)` as plain SQL over the last hour.
fn without_macros(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find("$__timeFilter(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "$__timeFilter(".len()..];
        let end = after.find(')').unwrap();
        out.push_str(&format!("{} > now() - interval '1 hour'", &after[..end]));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Acquires and releases `job:N` keys, reads their status through the cache, and every
/// tenth round makes callers queue and be refused on a held `hot:K` key, until `stop`.
fn load(http_port: u16, key: &str, stop: &AtomicBool) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let name = format!("job:{i}");
        let (status, answer) = http(
            http_port,
            "POST",
            &format!("/v1/locks/{name}/acquire"),
            key,
            r#"{"owner":"worker","ttl_ms":60000}"#,
        );
        if status == 200 {
            let token: serde_json::Value = serde_json::from_str(&answer).unwrap();
            for _ in 0..3 {
                http(http_port, "GET", &format!("/v1/locks/{name}"), key, "");
            }
            let release = format!(
                r#"{{"owner":"worker","fencing_token":{}}}"#,
                token["fencing_token"]
            );
            http(
                http_port,
                "POST",
                &format!("/v1/locks/{name}/release"),
                key,
                &release,
            );
        }
        if i % 10 == 0 {
            let hot = format!("/v1/locks/hot:{}/acquire", i / 10);
            http(
                http_port,
                "POST",
                &hot,
                key,
                r#"{"owner":"a","ttl_ms":1000}"#,
            );
            http(
                http_port,
                "POST",
                &hot,
                key,
                r#"{"owner":"b","ttl_ms":1000}"#,
            );
            http(
                http_port,
                "POST",
                &hot,
                key,
                r#"{"owner":"c","ttl_ms":1000,"wait_ms":300}"#,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_dashboard_query_and_alert_expression_works_against_a_live_cluster() {
    let broker = Broker::start();
    let database = Database::create("dashboards");
    let url = database.url();
    let redis = std::env::var("LOCKPLANE_TEST_REDIS")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let dir = TempDir::new("dashboards");
    let http_port = free_ports(1)[0];
    let key = "dashboards-key";
    let up = Process::start(
        cluster_up(&dir, http_port, key)
            .args(["--kafka", &broker.address(), "--redis", &redis])
            .args([
                "--cache-prefix",
                &format!("dashboards-{}:", std::process::id()),
            ])
            .env("LOCKPLANE_POSTGRES_URL", &url),
    );
    up.wait_for("gateway serving");
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || load(http_port, key, &stop))
    };
    // The scrape config lists the consumer once it listens.
    let config = dir.0.join("prometheus.yml");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&config)
        .unwrap()
        .contains("lockplane-audit-consumer")
    {
        assert!(Instant::now() < deadline, "no audit consumer in {config:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let prometheus = Prometheus::start(&config, &dir.0);
    prometheus.until("up == 1", |r| r.len() == 5);

    for (board, panel, kind, query) in dashboard_queries() {
        if kind == "prometheus" {
            let expr = query.replace("$__rate_interval", "1m");
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                // Data is a number: a NaN (0/0, a quantile of nothing) shows nothing.
                let answered = prometheus.query(&expr);
                if answered.iter().any(|sample| !value_of(sample).is_nan()) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{board} / {panel}: no data for {expr}"
                );
                std::thread::sleep(Duration::from_secs(1));
            }
        } else {
            assert_eq!(kind, "grafana-postgresql-datasource", "{board} / {panel}");
            let sql = without_macros(&query);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let rows = runtime.block_on(async {
                    use sqlx::Connection as _;
                    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::query(&sql).fetch_all(&mut db).await
                });
                match rows {
                    Ok(rows) if !rows.is_empty() => break,
                    Ok(_) => {}
                    // The table exists once the consumer ran its migrations.
                    Err(e) if e.to_string().contains("does not exist") => {}
                    Err(e) => panic!("{board} / {panel}: {e}\n{sql}"),
                }
                assert!(
                    Instant::now() < deadline,
                    "{board} / {panel}: no rows for\n{sql}"
                );
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    let alerts = alert_expressions();
    assert!(alerts.len() >= 12, "{alerts:?}");
    for expr in &alerts {
        // Parses and evaluates (when each fires is promtool's rule tests' business).
        prometheus.query(expr);
    }
    // The alerts that watch for breakage are quiet on this healthy cluster.
    for watched in [
        "lockplane_locks_overdue",
        "lockplane_raft_leader",
        r#"up{job="lockplane-node"}"#,
        "lockplane_audit_dropped_events",
    ] {
        let expr = alerts.iter().find(|e| e.contains(watched)).unwrap();
        assert_eq!(
            prometheus.query(expr),
            Vec::<serde_json::Value>::new(),
            "{expr}"
        );
    }

    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();
    drop(prometheus);
    up.terminate("all stopped");
}
