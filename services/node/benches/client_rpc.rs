//! Acquire+release cycles per second through the client-facing gRPC `LockService` of a
//! three-node cluster (Raft over gRPC too, real write-ahead logs and fsyncs) on loopback:
//! what a gateway sees. Each client owns distinct keys; the clients share one HTTP/2
//! channel per node, as a gateway's would.
//!
//! `cargo bench -p lockplane-node --bench client_rpc`. Environment: `CLIENTS` (64),
//! `GROUPS` (16), `SECONDS` (10), `CONNECTION_PER_CLIENT` (0; 1 gives each client its own
//! HTTP/2 connection).
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lockplane_proto::lock::lock_service_client::LockServiceClient;
use lockplane_proto::lock::{self as pb};
use tonic::transport::Channel;

use common::grpc_cluster::GrpcCluster;
use support::{env, gather, percentile};

fn main() {
    common::runtime().block_on(async {
        let clients = env("CLIENTS", 64);
        let groups = env("GROUPS", 16) as u32;
        let seconds = env("SECONDS", 10);
        let per_client = env("CONNECTION_PER_CLIENT", 0) == 1;
        let cluster = GrpcCluster::start("bench-rpc", groups, |_| {}).await;
        let mut leaders = BTreeMap::new();
        for g in 1..=groups {
            loop {
                if let Some(leader) = cluster.current_leader(g) {
                    leaders.insert(g, leader);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut channels = BTreeMap::new();
        for id in 1..=3 {
            let channel = Channel::from_shared(format!("http://{}", cluster.addr(id)))
                .unwrap()
                .tcp_nodelay(true)
                .connect()
                .await
                .unwrap();
            channels.insert(id, channel);
        }
        let fsyncs_before = cluster.fsyncs();
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let group = (c % u64::from(groups)) as u32 + 1;
                let channel = if per_client {
                    Channel::from_shared(format!("http://{}", cluster.addr(leaders[&group])))
                        .unwrap()
                        .tcp_nodelay(true)
                        .connect_lazy()
                } else {
                    channels[&leaders[&group]].clone()
                };
                let mut client = LockServiceClient::new(channel);
                let stop = Arc::clone(&stop);
                tokio::spawn(async move {
                    let (mut acquires, mut releases, mut failures) = (Vec::new(), Vec::new(), 0u64);
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = Some(pb::Key {
                            tenant: 1,
                            name: format!("bench/{c}/{n}"),
                        });
                        let owner = format!("client-{c}");
                        let t = Instant::now();
                        let acquire = pb::AcquireRequest {
                            group,
                            key: key.clone(),
                            owner: owner.clone(),
                            ttl_ms: 30_000,
                            ..Default::default()
                        };
                        let Ok(granted) = client.acquire(acquire).await else {
                            failures += 1;
                            continue;
                        };
                        acquires.push(t.elapsed());
                        let t = Instant::now();
                        let release = pb::ReleaseRequest {
                            group,
                            key,
                            owner,
                            fencing_token: granted.into_inner().fencing_token,
                        };
                        match client.release(release).await {
                            Ok(_) => releases.push(t.elapsed()),
                            Err(_) => failures += 1,
                        }
                    }
                    (acquires, releases, failures)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let (acquires, releases, failures) = gather(workers).await;
        let elapsed = started.elapsed().as_secs_f64();
        let synced = cluster.fsyncs() - fsyncs_before;
        println!("3 nodes in one process, Raft and LockService over gRPC on loopback, {groups} groups, {clients} clients on distinct keys, {seconds} s");
        println!("| acquire+release cycles/s | acquire p50 / p99 ms | release p50 / p99 ms | fsyncs/s (3 nodes) | failed calls |");
        println!("|---|---|---|---|---|");
        println!(
            "| {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {:.0} | {failures} |",
            releases.len() as f64 / elapsed,
            percentile(&acquires, 0.5),
            percentile(&acquires, 0.99),
            percentile(&releases, 0.5),
            percentile(&releases, 0.99),
            synced as f64 / elapsed,
        );
        cluster.shutdown().await;
    });
}
