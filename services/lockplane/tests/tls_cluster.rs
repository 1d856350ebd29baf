//! A 3-node cluster with `lockplane cluster up --tls` as real processes: nodes speak mutual
//! TLS to each other and admit only holders of a cluster certificate, the gateway serves
//! HTTPS that the CLI checks against the cluster CA, admin changes need the admin token,
//! a revoked or rotated key stops working at every gateway (two here) within seconds, a
//! rotated admin token replaces the old one, and Raft is served to node certificates only.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Process, TempDir, admin_token, free_ports};

const BIN: &str = env!("CARGO_BIN_EXE_lockplane");

/// A `lockplane` command with the local cluster's client certificate for calls to nodes.
fn with_cluster_certs(tls: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env("LOCKPLANE_CLUSTER_CA", tls.join("ca.pem"))
        .env("LOCKPLANE_CLUSTER_CERT", tls.join("client.pem"))
        .env("LOCKPLANE_CLUSTER_KEY", tls.join("client-key.pem"));
    command
}

/// `lockplane lock status KEY` through the gateway at `url` with `key`, trusting the CA.
fn status(url: &str, ca: &Path, key: &str) -> Output {
    Command::new(BIN)
        .args(["lock", "status", "probe", "--url", url])
        .arg("--ca-cert")
        .arg(ca)
        .env("LOCKPLANE_API_KEY", key)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `--json` answer of a command that must succeed.
fn json_of(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Waits until `check` holds at every gateway; how long it took.
fn until_every(urls: &[&str], within: Duration, check: impl Fn(&str) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if urls.iter().all(|url| check(url)) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not at every gateway within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_tls_cluster_admits_only_certificates_and_tokens_and_revocations_reach_every_gateway() {
    let dir = TempDir::new("tls-cluster");
    let ports = free_ports(2);
    let url = format!("https://127.0.0.1:{}", ports[0]);
    let up = Process::start(
        Command::new(BIN)
            .args(["cluster", "up", "--nodes", "3", "--groups", "4", "--tls"])
            .args(["--http", &format!("127.0.0.1:{}", ports[0])])
            .arg("--data-dir")
            .arg(&dir.0),
    );
    let lines = up.wait_for("cluster ready");
    let nodes: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("node ") && l.contains("(data in"))
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .collect();
    assert_eq!(nodes.len(), 3, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("transport=\"mutual TLS\"")),
        "{lines:#?}"
    );
    let gateway = up.wait_for("gateway serving url=https://");
    let dev_key = gateway
        .iter()
        .find_map(|l| l.split("API key ").nth(1))
        .map(|k| k.trim_end_matches(')').to_string())
        .unwrap_or_else(|| panic!("{gateway:#?}"));
    let tls = dir.0.join("tls");
    let ca = tls.join("ca.pem");
    let token = admin_token(&dir.0);

    // The REST API over HTTPS: trusted with the cluster CA, refused without it or in plain.
    let acquired = Command::new(BIN)
        .args(["--json", "lock", "acquire", "probe", "--url", &url])
        .arg("--ca-cert")
        .arg(&ca)
        .env("LOCKPLANE_API_KEY", &dev_key)
        .output()
        .unwrap();
    assert!(acquired.status.success(), "{}", stderr(&acquired));
    let untrusted = Command::new(BIN)
        .args(["lock", "status", "probe", "--url", &url])
        .env("LOCKPLANE_API_KEY", &dev_key)
        .env_remove("LOCKPLANE_CA_CERT")
        .output()
        .unwrap();
    assert_eq!(untrusted.status.code(), Some(69));
    assert!(
        stderr(&untrusted).contains("invalid peer certificate"),
        "{}",
        stderr(&untrusted)
    );
    let plain = status(&url.replace("https", "http"), &ca, &dev_key);
    assert_eq!(plain.status.code(), Some(69), "{}", stderr(&plain));

    // Nodes admit only holders of a cluster certificate.
    let no_cert = Command::new(BIN)
        .args(["cluster", "status", "--endpoint", &nodes[0]])
        .env_remove("LOCKPLANE_CLUSTER_CA")
        .output()
        .unwrap();
    assert!(
        !no_cert.status.success(),
        "a plain client reaches a TLS node"
    );
    let with_cert = with_cluster_certs(&tls)
        .args(["cluster", "status", "--endpoint", &nodes[1]])
        .output()
        .unwrap();
    assert!(with_cert.status.success(), "{}", stderr(&with_cert));
    assert!(
        stdout(&with_cert).contains("admin token set"),
        "{}",
        stdout(&with_cert)
    );

    // Raft is served to node certificates only: the gateway's and tools' one is refused.
    let client_tls = lockplane_proto::ClusterTls::from_files(
        &ca,
        &tls.join("client.pem"),
        &tls.join("client-key.pem"),
    )
    .unwrap();
    let raft_call = |tls: lockplane_proto::ClusterTls| {
        let node = nodes[0].clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let channel = lockplane_proto::Dialer::new(Some(tls))
                    .channel(&node)
                    .unwrap();
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready().await.unwrap();
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/lockplane.raft.v1.RaftTransport/Call",
                );
                let codec = tonic_prost::ProstCodec::<
                    lockplane_node::grpc::RaftMessage,
                    lockplane_node::grpc::RaftReply,
                >::default();
                let message = tonic::Request::new(lockplane_node::grpc::RaftMessage::default());
                grpc.unary(message, path, codec).await.map(|_| ())
            })
    };
    let refused = raft_call(client_tls).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
    let node_tls = lockplane_proto::ClusterTls::from_files(
        &ca,
        &tls.join("node.pem"),
        &tls.join("node-key.pem"),
    )
    .unwrap();
    if let Err(status) = raft_call(node_tls) {
        assert_ne!(status.code(), tonic::Code::PermissionDenied, "{status}");
    }

    // Admin changes need the admin token, certificate or not.
    let denied = with_cluster_certs(&tls)
        .args(["tenant", "create", "team-a", "--endpoint", &nodes[0]])
        .env_remove("LOCKPLANE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(77), "{}", stderr(&denied));
    assert!(stderr(&denied).contains("needs the cluster's admin token"));
    let admin_json = |args: &[&str]| {
        json_of(
            &with_cluster_certs(&tls)
                .arg("--json")
                .args(args)
                .args(["--endpoint", &nodes[0]])
                .env("LOCKPLANE_ADMIN_TOKEN", &token)
                .output()
                .unwrap(),
        )
    };
    let created = admin_json(&["tenant", "create", "team-a"]);
    let team_key = created["api_key"].as_str().unwrap().to_string();
    let key_id = created["key_id"].as_str().unwrap().to_string();

    // A second gateway, started by hand with the cluster's certificates.
    let second_url = format!("https://127.0.0.1:{}", ports[1]);
    let second = Process::start(
        with_cluster_certs(&tls)
            .args(["gateway", "--stop-on-stdin-eof"])
            .args(["--listen", &format!("127.0.0.1:{}", ports[1])])
            .args(["--endpoint", &nodes.join(",")])
            .arg("--tls-cert")
            .arg(tls.join("rest.pem"))
            .arg("--tls-key")
            .arg(tls.join("rest-key.pem")),
    );
    second.wait_for("url=https://");
    let gateways = [url.as_str(), second_url.as_str()];
    until_every(&gateways, Duration::from_secs(10), |g| {
        status(g, &ca, &team_key).status.success()
    });

    let listed = with_cluster_certs(&tls)
        .args(["tenant", "keys", "team-a", "--endpoint", &nodes[2]])
        .output()
        .unwrap();
    assert_eq!(stdout(&listed).trim(), key_id, "{}", stderr(&listed));
    let revoked = with_cluster_certs(&tls)
        .args([
            "tenant",
            "revoke-key",
            "team-a",
            &key_id[..6],
            "--endpoint",
            &nodes[2],
        ])
        .env("LOCKPLANE_ADMIN_TOKEN", &token)
        .output()
        .unwrap();
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let took = until_every(&gateways, Duration::from_secs(10), |g| {
        status(g, &ca, &team_key).status.code() == Some(77)
    });
    println!("a revoked key was refused at both gateways after {took:?}");

    let rotated = admin_json(&["tenant", "rotate-key", "team-a"]);
    let new_key = rotated["api_key"].as_str().unwrap().to_string();
    until_every(&gateways, Duration::from_secs(10), |g| {
        status(g, &ca, &new_key).status.success()
    });

    // The admin token is replaced only with the current one; the old one then stops.
    let rotated = with_cluster_certs(&tls)
        .args(["cluster", "rotate-admin-token", "--endpoint", &nodes[1]])
        .env("LOCKPLANE_ADMIN_TOKEN", &token)
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let new_token = stdout(&rotated)
        .lines()
        .find_map(|l| l.strip_prefix("admin token: "))
        .unwrap()
        .to_string();
    let quota = |admin: &str| {
        with_cluster_certs(&tls)
            .args([
                "tenant",
                "set-quota",
                "team-a",
                "--max-locks",
                "9",
                "--endpoint",
                &nodes[0],
            ])
            .env("LOCKPLANE_ADMIN_TOKEN", admin)
            .output()
            .unwrap()
    };
    assert_eq!(quota(&token).status.code(), Some(77), "the old admin token");
    assert!(quota(&new_token).status.success());

    let mut second = second;
    drop(second.child.stdin.take());
    assert!(second.child.wait().unwrap().success());
    up.terminate("all stopped");
}
