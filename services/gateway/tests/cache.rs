//! The Redis status cache against real servers: the machine's Redis (`LOCKPLANE_TEST_REDIS`,
//! default `redis://127.0.0.1:6379`) and a 3-master Redis Cluster
//! (`LOCKPLANE_TEST_REDIS_CLUSTER`, `redis-cluster://…`, started by `scripts/test.sh`).
//! Each test uses its own key prefix. Without the cluster's URL the tests fail, unless
//! `LOCKPLANE_SKIP_REDIS_CLUSTER=1` says to test against the single server only.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use lockplane_gateway::cache::link::RedisTarget;
use lockplane_gateway::cache::stats::CacheEvent;
use lockplane_gateway::cache::{CacheConfig, Lookup, Source, StatusCache, Written};
use lockplane_proto::lock as pb;
use serde_json::{Value, json};

use common::{ALICE, BOB, ThreeNodes, request, runtime, start, start_cached};

/// The Redis deployments every test runs against: `(name, url)`.
fn targets() -> Vec<(&'static str, String)> {
    let single = std::env::var("LOCKPLANE_TEST_REDIS")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let mut all = vec![("single", single)];
    match std::env::var("LOCKPLANE_TEST_REDIS_CLUSTER") {
        Ok(url) => all.push(("cluster", url)),
        Err(_) if std::env::var("LOCKPLANE_SKIP_REDIS_CLUSTER").as_deref() == Ok("1") => {}
        Err(_) => panic!(
            "LOCKPLANE_TEST_REDIS_CLUSTER is not set: run ./scripts/test.sh (it starts a Redis \
             Cluster), or set LOCKPLANE_SKIP_REDIS_CLUSTER=1 to test the single server only"
        ),
    }
    all
}

/// The settings of a cache under a prefix of its own.
fn config_of(test: &str, max_staleness: Duration) -> CacheConfig {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    CacheConfig {
        prefix: format!("lockplane-test:{test}:{}:{nanos}:", std::process::id()),
        max_staleness,
        ..CacheConfig::default()
    }
}

/// A cache in `url` under a prefix of its own.
fn cache_in(url: &str, test: &str, max_staleness: Duration) -> Arc<StatusCache> {
    let config = config_of(test, max_staleness);
    StatusCache::new(RedisTarget::parse(url).unwrap(), config)
}

/// Stores `status` at `version`, waiting (up to 5 s) for the first connection.
async fn store_when_connected(
    cache: &StatusCache,
    status: &pb::LockStatus,
    version: u64,
) -> Written {
    cache.connect();
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let written = cache
            .store(7, status, version, Instant::now(), Source::Feed)
            .await;
        if written != Written::Skipped {
            return written;
        }
        assert!(Instant::now() < give_up, "no Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request to the router: status, the `Lockplane-Cache` header, the JSON body.
async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, String, Value) {
    let (status, headers, value) = request(app, method, uri, Some(key), body).await;
    let cache = headers
        .get("lockplane-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status.as_u16(), cache, value)
}

async fn status(app: &Router, key: &str, name: &str) -> (String, Value) {
    let (code, cache, body) = call(app, "GET", &format!("/v1/locks/{name}"), key, None).await;
    assert_eq!(code, 200, "{body}");
    (cache, body)
}

async fn acquire(app: &Router, key: &str, name: &str, owner: &str, ttl_ms: u64) -> u64 {
    let body = json!({"owner": owner, "ttl_ms": ttl_ms});
    let uri = format!("/v1/locks/{name}/acquire");
    let (code, _, body) = call(app, "POST", &uri, key, Some(body)).await;
    assert_eq!(code, 200, "{body}");
    body["fencing_token"].as_u64().unwrap()
}

/// Waits (up to 2 s, reading every 10 ms) for a cache hit whose body satisfies `wanted`.
/// With `first_read` a miss is allowed until the first hit (the feed may not have written
/// the entry yet; the miss fills it); otherwise any miss fails: the tests' entries live 60 s,
/// so a miss means the entry was lost instead of updated.
async fn hit_showing(
    app: &Router,
    key: &str,
    name: &str,
    first_read: bool,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let give_up = Instant::now() + Duration::from_secs(2);
    let mut last = (String::new(), Value::Null);
    let mut hit_before = !first_read;
    while Instant::now() < give_up {
        last = status(app, key, name).await;
        match last.0.as_str() {
            "hit" if wanted(&last.1) => return last.1,
            "hit" => hit_before = true,
            other => assert!(!hit_before, "a {other} where the entry should be: {last:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no hit showing the change within 2 s; last: {last:?}");
}

#[test]
fn a_miss_fills_the_entry_and_the_next_read_hits() {
    for (kind, url) in targets() {
        runtime().block_on(async {
            let cache = cache_in(&url, "miss-hit", Duration::from_secs(60));
            let (app, _node, _dir) =
                start_cached(&format!("cache-miss-{kind}"), Arc::clone(&cache)).await;
            let token = acquire(&app, ALICE, "orders%2F1", "w1", 30_000).await;
            let held = hit_showing(&app, ALICE, "orders%2F1", true, |b| b["held"] == true).await;
            assert_eq!(held["fencing_token"], token, "{kind}");
            assert!(held["version"].as_u64().unwrap() > 0, "{kind}: {held}");
            // A key nobody touched: a miss (read at the leader), then a hit.
            let (first, body) = status(&app, ALICE, "never-touched").await;
            assert_eq!(first, "miss", "{kind}: {body}");
            let second = hit_showing(&app, ALICE, "never-touched", false, |_| true).await;
            assert_eq!(second["held"], false);
            assert_eq!(second["version"], body["version"], "{kind}");
            // Other consistencies never touch the cache.
            for query in ["leader", "linearizable"] {
                let uri = format!("/v1/locks/orders%2F1?consistency={query}");
                let (code, header, body) = call(&app, "GET", &uri, ALICE, None).await;
                assert_eq!(
                    (code, header.as_str()),
                    (200, "bypass"),
                    "{kind} {query}: {body}"
                );
                assert_eq!(body["fencing_token"], token);
            }
            assert!(cache.stats().total(CacheEvent::Hit) >= 2);
            assert!(cache.stats().total(CacheEvent::Miss) >= 1);
        });
    }
}

#[test]
fn every_committed_change_updates_the_entry() {
    for (kind, url) in targets() {
        runtime().block_on(async {
            let cache = cache_in(&url, "changes", Duration::from_secs(60));
            let (app, _node, _dir) =
                start_cached(&format!("cache-changes-{kind}"), Arc::clone(&cache)).await;
            let first = acquire(&app, ALICE, "job", "a", 30_000).await;
            let held = hit_showing(&app, ALICE, "job", true, |b| b["fencing_token"] == first).await;
            // A waiter joins the queue: the entry shows it.
            let waiter = {
                let app = app.clone();
                tokio::spawn(async move {
                    let body = json!({"owner": "b", "ttl_ms": 1_000, "wait_ms": 10_000});
                    call(&app, "POST", "/v1/locks/job/acquire", ALICE, Some(body)).await
                })
            };
            let queued = hit_showing(&app, ALICE, "job", false, |b| b["waiters"] == 1).await;
            assert!(
                queued["version"].as_u64() > held["version"].as_u64(),
                "{kind}"
            );
            // Release: the waiter is granted, and the entry shows the new holder.
            let release = json!({"owner": "a", "fencing_token": first});
            let (code, _, body) =
                call(&app, "POST", "/v1/locks/job/release", ALICE, Some(release)).await;
            assert_eq!(code, 200, "{body}");
            let granted = waiter.await.unwrap();
            assert_eq!(granted.0, 200, "{granted:?}");
            let second = granted.2["fencing_token"].as_u64().unwrap();
            let handed = hit_showing(&app, ALICE, "job", false, |b| {
                b["owner"] == "b" && b["waiters"] == 0
            })
            .await;
            assert_eq!(handed["fencing_token"], second, "{kind}");
            // Renew: the entry shows the longer lease.
            let renew = json!({"owner": "b", "fencing_token": second, "ttl_ms": 60_000});
            let (code, _, body) =
                call(&app, "POST", "/v1/locks/job/renew", ALICE, Some(renew)).await;
            assert_eq!(code, 200, "{body}");
            let renewed = hit_showing(&app, ALICE, "job", false, |b| {
                b["ttl_remaining_ms"].as_u64() > Some(30_000)
            })
            .await;
            assert!(
                renewed["version"].as_u64() > handed["version"].as_u64(),
                "{kind}"
            );
            // Expiry: a 300 ms lease ends; its entry (whose Redis TTL was the lease) is
            // rewritten by the expiry itself, as a versioned free key, with no read between.
            let short = acquire(&app, ALICE, "short", "c", 300).await;
            let shown =
                hit_showing(&app, ALICE, "short", true, |b| b["fencing_token"] == short).await;
            tokio::time::sleep(Duration::from_millis(700)).await;
            match cache.lookup(1, "short").await {
                Lookup::Hit(entry, version) => {
                    assert!(entry.holder.is_none(), "{kind}: {entry:?}");
                    assert!(Some(version) > shown["version"].as_u64(), "{kind}");
                }
                other => panic!("{kind}: the expiry left no entry: {other:?}"),
            }
            let expired = hit_showing(&app, ALICE, "short", false, |b| b["held"] == false).await;
            assert!(
                expired["version"].as_u64() > shown["version"].as_u64(),
                "{kind}"
            );
            assert!(cache.stats().total(CacheEvent::Updated) >= 5, "{kind}");
        });
    }
}

fn held_by(name: &str, owner: &str, token: u64, ttl_ms: u64) -> pb::LockStatus {
    pb::LockStatus {
        name: name.to_string(),
        holder: Some(pb::Holder {
            owner: owner.to_string(),
            fencing_token: token,
            session: None,
        }),
        ttl_remaining_ms: Some(ttl_ms),
        waiters: 0,
    }
}

#[test]
fn an_older_write_never_replaces_a_newer_one() {
    // With the gateway's own copy and without it (every read asks Redis).
    let runs = targets()
        .into_iter()
        .flat_map(|(kind, url)| [(kind, url.clone(), 100_000), (kind, url, 0)]);
    for (kind, url, local_entries) in runs {
        let kind = format!("{kind}, {local_entries} local entries");
        runtime().block_on(async {
            let config = CacheConfig {
                local_entries,
                ..config_of("race", Duration::from_secs(60))
            };
            let cache = StatusCache::new(RedisTarget::parse(&url).unwrap(), config);
            cache.connect();
            let give_up = Instant::now() + Duration::from_secs(5);
            let now = Instant::now();
            // Wait for the connection.
            while cache
                .store(
                    7,
                    &held_by("race", "new", 12, 30_000),
                    20,
                    now,
                    Source::Feed,
                )
                .await
                == Written::Skipped
            {
                assert!(Instant::now() < give_up, "{kind}: no Redis");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // A slow fill of an older state arrives after the newer update: refused.
            let old = cache
                .store(
                    7,
                    &held_by("race", "old", 11, 30_000),
                    19,
                    now,
                    Source::Fill,
                )
                .await;
            assert_eq!(old, Written::Refused, "{kind}");
            let same = cache
                .store(
                    7,
                    &held_by("race", "new", 12, 30_000),
                    20,
                    now,
                    Source::Feed,
                )
                .await;
            assert_eq!(same, Written::Current, "{kind}");
            match cache.lookup(7, "race").await {
                Lookup::Hit(status, 20) => assert_eq!(status.holder.unwrap().owner, "new"),
                other => panic!("{kind}: {other:?}"),
            }
            // A release leaves a versioned tombstone: the old holder cannot come back.
            let free = pb::LockStatus {
                name: "race".to_string(),
                ..Default::default()
            };
            assert_eq!(
                cache.store(7, &free, 21, now, Source::Feed).await,
                Written::Stored
            );
            let late = cache
                .store(
                    7,
                    &held_by("race", "new", 12, 30_000),
                    20,
                    now,
                    Source::Fill,
                )
                .await;
            assert_eq!(late, Written::Refused, "{kind}");
            match cache.lookup(7, "race").await {
                Lookup::Hit(status, 21) => assert!(status.holder.is_none(), "{kind}"),
                other => panic!("{kind}: {other:?}"),
            }
            // A newer state replaces it.
            assert_eq!(
                cache
                    .store(
                        7,
                        &held_by("race", "next", 13, 30_000),
                        22,
                        now,
                        Source::Feed
                    )
                    .await,
                Written::Stored
            );
            assert!(cache.stats().total(CacheEvent::StaleRefused) >= 2);
            // A status read too long ago to cache is not written at all.
            let stale = Instant::now() - Duration::from_secs(61);
            assert_eq!(
                cache.store(7, &free, 30, stale, Source::Fill).await,
                Written::Skipped
            );
            // A lease's entry is served no longer than the lease it shows; its version is
            // kept after that, so an older write still cannot land.
            let brief = held_by("brief", "a", 1, 200);
            let stored = cache
                .store(7, &brief, 40, Instant::now(), Source::Feed)
                .await;
            assert_eq!(stored, Written::Stored, "{kind}");
            assert!(
                matches!(cache.lookup(7, "brief").await, Lookup::Hit(_, 40)),
                "{kind}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                matches!(cache.lookup(7, "brief").await, Lookup::Miss),
                "{kind}"
            );
            let older = held_by("brief", "z", 0, 30_000);
            let late = cache
                .store(7, &older, 39, Instant::now(), Source::Fill)
                .await;
            assert_eq!(late, Written::Refused, "{kind}");
            // The same version read again (a quiet group's index does not move) serves again.
            let again = cache
                .store(7, &brief, 40, Instant::now(), Source::Fill)
                .await;
            assert_eq!(again, Written::Current, "{kind}");
            assert!(
                matches!(cache.lookup(7, "brief").await, Lookup::Hit(_, 40)),
                "{kind}"
            );
        });
    }
}

#[test]
fn a_gateways_own_copy_never_outlives_a_newer_redis_entry_it_was_told_of() {
    for (kind, url) in targets() {
        runtime().block_on(async {
            // Two gateways sharing one Redis.
            let config = config_of("copies", Duration::from_secs(60));
            let target = RedisTarget::parse(&url).unwrap();
            let one = StatusCache::new(target.clone(), config.clone());
            let two = StatusCache::new(target, config);
            let v20 = held_by("copied", "a", 1, 30_000);
            assert_eq!(store_when_connected(&one, &v20, 20).await, Written::Stored);
            let local = one.stats().total(CacheEvent::LocalHit);
            assert!(matches!(one.lookup(7, "copied").await, Lookup::Hit(_, 20)));
            assert_eq!(
                one.stats().total(CacheEvent::LocalHit),
                local + 1,
                "{kind}: a write Redis stored is kept by the gateway"
            );
            // The other gateway writes a newer state; the first one's own late write of an
            // older one is refused, and its copy goes with it: it reads Redis's.
            let v22 = held_by("copied", "b", 2, 30_000);
            assert_eq!(store_when_connected(&two, &v22, 22).await, Written::Stored);
            let v21 = held_by("copied", "a", 1, 10_000);
            let late = one.store(7, &v21, 21, Instant::now(), Source::Feed).await;
            assert_eq!(late, Written::Refused, "{kind}");
            match one.lookup(7, "copied").await {
                Lookup::Hit(status, 22) => assert_eq!(status.holder.unwrap().owner, "b"),
                other => panic!("{kind}: {other:?}"),
            }
            // What it read from Redis it keeps, with Redis's version.
            let local = one.stats().total(CacheEvent::LocalHit);
            assert!(matches!(one.lookup(7, "copied").await, Lookup::Hit(_, 22)));
            assert_eq!(one.stats().total(CacheEvent::LocalHit), local + 1, "{kind}");
        });
    }
}

#[test]
fn nothing_older_than_a_leader_answer_is_shown_after_it() {
    for (kind, url) in targets() {
        runtime().block_on(async {
            let cache = cache_in(&url, "floor", Duration::from_secs(60));
            let v20 = held_by("floored", "a", 1, 30_000);
            assert_eq!(
                store_when_connected(&cache, &v20, 20).await,
                Written::Stored
            );
            assert!(matches!(
                cache.lookup(7, "floored").await,
                Lookup::Hit(_, 20)
            ));
            // Redis could not be asked, and the leader showed version 22: neither the
            // gateway's copy nor Redis's entry of version 20 is shown any more.
            cache.shown_from_leader(7, "floored", 22);
            let misses = cache.stats().total(CacheEvent::Miss);
            assert!(
                matches!(cache.lookup(7, "floored").await, Lookup::Miss),
                "{kind}"
            );
            assert_eq!(cache.stats().total(CacheEvent::Miss), misses + 1, "{kind}");
            // The fill of what the leader shows then serves again.
            let v22 = held_by("floored", "b", 2, 30_000);
            let filled = cache.store(7, &v22, 22, Instant::now(), Source::Fill).await;
            assert_eq!(filled, Written::Stored, "{kind}");
            assert!(matches!(
                cache.lookup(7, "floored").await,
                Lookup::Hit(_, 22)
            ));
        });
    }
}

#[test]
fn a_released_key_leaves_a_versioned_tombstone() {
    for (kind, url) in targets() {
        runtime().block_on(async {
            let cache = cache_in(&url, "tombstone", Duration::from_secs(60));
            let (app, _node, _dir) =
                start_cached(&format!("cache-tomb-{kind}"), Arc::clone(&cache)).await;
            let token = acquire(&app, ALICE, "t", "a", 30_000).await;
            let held = hit_showing(&app, ALICE, "t", true, |b| b["held"] == true).await;
            let release = json!({"owner": "a", "fencing_token": token});
            let (code, _, _) =
                call(&app, "POST", "/v1/locks/t/release", ALICE, Some(release)).await;
            assert_eq!(code, 200);
            let free = hit_showing(&app, ALICE, "t", false, |b| b["held"] == false).await;
            let (old, new) = (
                held["version"].as_u64().unwrap(),
                free["version"].as_u64().unwrap(),
            );
            assert!(new > old, "{kind}");
            // A fill that read the held state before the release and arrives now loses.
            let late = cache
                .store(
                    1,
                    &held_by("t", "a", token, 30_000),
                    old,
                    Instant::now(),
                    Source::Fill,
                )
                .await;
            assert_eq!(late, Written::Refused, "{kind}");
            let (header, body) = status(&app, ALICE, "t").await;
            assert_eq!(
                (header.as_str(), &body["held"]),
                ("hit", &json!(false)),
                "{kind}"
            );
        });
    }
}

#[test]
fn tenants_never_read_each_others_entries() {
    for (kind, url) in targets() {
        runtime().block_on(async {
            let cache = cache_in(&url, "tenants", Duration::from_secs(60));
            let (app, _node, _dir) =
                start_cached(&format!("cache-tenants-{kind}"), Arc::clone(&cache)).await;
            acquire(&app, ALICE, "shared-name", "alice-worker", 30_000).await;
            hit_showing(&app, ALICE, "shared-name", true, |b| {
                b["owner"] == "alice-worker"
            })
            .await;
            let (_, bob) = status(&app, BOB, "shared-name").await;
            assert_eq!(bob["held"], false, "{kind}: {bob}");
            let bobs = hit_showing(&app, BOB, "shared-name", false, |_| true).await;
            assert_eq!(bobs["held"], false, "{kind}");
            acquire(&app, BOB, "shared-name", "bob-worker", 30_000).await;
            hit_showing(&app, BOB, "shared-name", false, |b| {
                b["owner"] == "bob-worker"
            })
            .await;
            let alices = hit_showing(&app, ALICE, "shared-name", false, |_| true).await;
            assert_eq!(alices["owner"], "alice-worker", "{kind}");
        });
    }
}

#[test]
fn without_a_cache_every_read_is_a_bypass() {
    runtime().block_on(async {
        let (app, _node, _dir) = start("cache-none").await;
        let (header, body) = status(&app, ALICE, "k").await;
        assert_eq!(header, "bypass", "{body}");
        assert!(body["version"].is_u64());
    });
}

/// A Redis server of this test's own on a free port, killed when dropped.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let give_up = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < give_up,
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn reads_survive_redis_dying_and_hits_resume_when_it_returns() {
    runtime().block_on(async {
        let mut redis = OwnRedis::start(free_port());
        let url = format!("redis://127.0.0.1:{}", redis.port);
        let cache = cache_in(&url, "restart", Duration::from_secs(60));
        let (app, _node, _dir) = start_cached("cache-restart", Arc::clone(&cache)).await;
        let token = acquire(&app, ALICE, "k", "a", 60_000).await;
        hit_showing(&app, ALICE, "k", true, |b| b["fencing_token"] == token).await;
        let local_before = cache.stats().total(CacheEvent::LocalHit);
        redis.kill();
        // What the gateway kept of Redis's entries still serves, within its bounds.
        let (code, header, body) = call(&app, "GET", "/v1/locks/k", ALICE, None).await;
        assert_eq!((code, header.as_str()), (200, "hit"), "{body}");
        assert!(cache.stats().total(CacheEvent::LocalHit) > local_before);
        // A change Redis cannot take removes the gateway's copy: reads go to the leader
        // and show the change.
        let release = json!({"owner": "a", "fencing_token": token});
        let (code, _, body) = call(&app, "POST", "/v1/locks/k/release", ALICE, Some(release)).await;
        assert_eq!(code, 200, "{body}");
        let give_up = Instant::now() + Duration::from_secs(2);
        while call(&app, "GET", "/v1/locks/k", ALICE, None).await.2["held"] != false {
            assert!(Instant::now() < give_up, "the release never showed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..50 {
            let started = Instant::now();
            let (code, header, body) = call(&app, "GET", "/v1/locks/k", ALICE, None).await;
            assert_eq!(code, 200, "{body}");
            assert_ne!(header, "hit");
            assert_eq!(body["held"], false, "{body}");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
        }
        assert!(cache.stats().total(CacheEvent::Fallback) >= 1);
        let _again = OwnRedis::start(redis.port);
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, header, body) = call(&app, "GET", "/v1/locks/k", ALICE, None).await;
            assert_eq!(body["held"], false, "{body}");
            if header == "hit" {
                break;
            }
            assert!(
                Instant::now() < give_up,
                "no hit within 10 s of Redis returning"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn the_feed_follows_a_new_leader() {
    let (_, url) = targets().remove(0);
    runtime().block_on(async {
        let cache = cache_in(&url, "failover", Duration::from_secs(60));
        let mut cluster = ThreeNodes::start_cached("cache-failover", 1, Arc::clone(&cache)).await;
        let app = cluster.app.clone();
        let give_up = Instant::now() + Duration::from_secs(20);
        let token = loop {
            let body = json!({"owner": "a", "ttl_ms": 30_000});
            let (code, _, body) =
                call(&app, "POST", "/v1/locks/f/acquire", ALICE, Some(body)).await;
            if code == 200 {
                break body["fencing_token"].as_u64().unwrap();
            }
            assert!(Instant::now() < give_up, "{code}: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        hit_showing(&app, ALICE, "f", true, |b| b["fencing_token"] == token).await;
        let leader = cluster.leader_of(1).unwrap();
        cluster.stop(leader).await;
        // The feed breaks with the old leader and opens again at the new one.
        let give_up = Instant::now() + Duration::from_secs(20);
        while cache.stats().total(CacheEvent::FeedRestarted) == 0 {
            assert!(
                Instant::now() < give_up,
                "the feed did not open at a new leader"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A change the new leader commits reaches the cache through it.
        let release = json!({"owner": "a", "fencing_token": token});
        let (code, _, body) = call(&app, "POST", "/v1/locks/f/release", ALICE, Some(release)).await;
        assert_eq!(code, 200, "{body}");
        let free = hit_showing(&app, ALICE, "f", false, |b| b["held"] == false).await;
        assert!(free["version"].as_u64() > Some(0));
        cluster.shutdown().await;
    });
}
