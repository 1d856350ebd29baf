//! The session stream (`GET /v1/sessions/{id}/stream`, a WebSocket) against real clusters:
//! refusals before the upgrade, heartbeats, `granted` for a queued acquire of the session,
//! a bad message closing the socket; and on three nodes, heartbeats keep a session alive
//! past its TTL; a watch broken by a leader failure is reopened, the client is told to
//! `resync`, and grants still arrive; and once heartbeats stop the session ends, its locks
//! go to their waiters, and the stream pushes `lost` for each of them, then
//! `session_ended`, then closes; a stream whose API key is revoked is closed.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lockplane_client::{AcquireOptions, Client};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use common::{ALICE, BOB, ThreeNodes, admin, retrying, runtime, serve_http, start, start_limited};
use lockplane_gateway::ratelimit::Limit;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the stream of `session` as the tenant of `key`.
async fn connect(url: &str, key: &str, session: &str) -> Result<Socket, WsError> {
    let ws_url = format!("{}/v1/sessions/{session}/stream", url.replace("http", "ws"));
    let mut request = ws_url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// The HTTP status a refused upgrade got.
fn refused_with(result: Result<Socket, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("not an HTTP refusal: {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// The next JSON message (within 20 s), or `None` once the server closed the socket (with
/// the close code it gave).
async fn next(socket: &mut Socket) -> Result<Value, Option<CloseCode>> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("no message within 20 s");
        match message {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code)),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Err(None),
        }
    }
}

/// The next message whose type is not `heartbeat_ack`.
async fn next_event(socket: &mut Socket) -> Result<Value, Option<CloseCode>> {
    loop {
        let message = next(socket).await?;
        if message["type"] != "heartbeat_ack" {
            return Ok(message);
        }
    }
}

async fn heartbeat(socket: &mut Socket) {
    let beat = json!({ "type": "heartbeat" }).to_string();
    socket.send(Message::Text(beat.into())).await.unwrap();
}

#[test]
fn the_stream_refuses_strangers_acks_heartbeats_pushes_grants_and_closes_on_bad_input() {
    runtime().block_on(async {
        let (app, node, _dir) = start("stream-protocol").await;
        let url = serve_http(app).await;
        let alice = Client::new(&url, ALICE);
        let session = alice.create_session(Duration::from_secs(30)).await.unwrap();

        assert_eq!(refused_with(connect(&url, ALICE, "12345").await), 404);
        assert_eq!(refused_with(connect(&url, BOB, &session).await), 404);
        assert_eq!(refused_with(connect(&url, "nobody", &session).await), 401);
        assert_eq!(
            refused_with(connect(&url, ALICE, "not-a-number").await),
            400
        );
        let plain = raw_get(&url, &format!("/v1/sessions/{session}/stream")).await;
        assert!(plain.starts_with("HTTP/1.1 400"), "{plain}");
        assert!(plain.contains("application/problem+json"), "{plain}");

        let mut socket = connect(&url, ALICE, &session).await.unwrap();
        assert_eq!(next(&mut socket).await.unwrap()["type"], "ready");
        heartbeat(&mut socket).await;
        let ack = next(&mut socket).await.unwrap();
        assert_eq!(ack, json!({ "type": "heartbeat_ack", "ttl_ms": 30_000 }));

        let holder = alice
            .try_acquire(
                "job",
                &AcquireOptions::new("holder", Duration::from_secs(30)),
            )
            .await
            .unwrap();
        let waiter = tokio::spawn({
            let (alice, session) = (alice.clone(), session.clone());
            async move {
                let options = AcquireOptions::new("waiter", Duration::from_secs(30))
                    .wait(Duration::from_secs(20))
                    .session(session);
                alice.try_acquire("job", &options).await
            }
        });
        while alice.status("job", true).await.unwrap().waiters == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        alice
            .release("job", "holder", holder.fencing_token)
            .await
            .unwrap();
        let grant = waiter.await.unwrap().unwrap();
        let pushed = next_event(&mut socket).await.unwrap();
        assert_eq!(
            pushed,
            json!({
                "type": "granted",
                "key": "job",
                "owner": "waiter",
                "fencing_token": grant.fencing_token,
                "ttl_ms": 30_000,
                "session_id": session,
            })
        );

        socket
            .send(Message::Text("hello".to_string().into()))
            .await
            .unwrap();
        let error = next(&mut socket).await.unwrap();
        assert_eq!(error["type"], "error");
        assert!(error["detail"].as_str().unwrap().contains("heartbeat"));
        assert_eq!(next(&mut socket).await, Err(Some(CloseCode::Policy)));

        node.shutdown().await;
    });
}

/// A plain `GET` (no upgrade) with alice's key: the raw HTTP answer.
async fn raw_get(url: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ALICE}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[test]
fn a_session_that_stops_heartbeating_ends_its_locks_go_to_waiters_and_lost_is_pushed() {
    runtime().block_on(async {
        let cluster = ThreeNodes::start("stream-expiry", 4).await;
        let alice = Client::new(&cluster.url, ALICE);
        let session = alice
            .create_session(Duration::from_millis(1_500))
            .await
            .unwrap();
        let mut socket = connect(&cluster.url, ALICE, &session).await.unwrap();
        assert_eq!(next(&mut socket).await.unwrap()["type"], "ready");

        let keys = ["orders", "invoices", "refunds", "payouts"];
        let mut tokens = Vec::new();
        for key in keys {
            let options =
                AcquireOptions::new("worker", Duration::from_secs(60)).session(session.clone());
            tokens.push(
                alice
                    .try_acquire(key, &options)
                    .await
                    .unwrap()
                    .fencing_token,
            );
        }
        let waiter = tokio::spawn({
            let alice = alice.clone();
            async move {
                let options = AcquireOptions::new("next", Duration::from_secs(60))
                    .wait(Duration::from_secs(30));
                alice.try_acquire("orders", &options).await
            }
        });
        while alice.status("orders", true).await.unwrap().waiters == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..8 {
            heartbeat(&mut socket).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        for key in keys {
            let status = alice.status(key, true).await.unwrap();
            assert!(status.held, "heartbeats kept {key} past the session's TTL");
        }

        let mut lost = BTreeSet::new();
        let ended = loop {
            let event = next_event(&mut socket).await.unwrap();
            match event["type"].as_str().unwrap() {
                "lost" => {
                    assert_eq!(event["reason"], "session_expired", "{event}");
                    assert_eq!(event["owner"], "worker");
                    let key = event["key"].as_str().unwrap().to_string();
                    let at = keys.iter().position(|k| *k == key).unwrap();
                    assert_eq!(event["fencing_token"], tokens[at]);
                    assert!(lost.insert(key), "{event} pushed twice");
                }
                "session_ended" => break event,
                other => panic!("unexpected {other}: {event}"),
            }
        };
        assert_eq!(ended["session_id"], session.as_str());
        while lost.len() < keys.len() {
            let event = next_event(&mut socket).await.unwrap();
            assert_eq!(event["type"], "lost", "{event}");
            assert!(lost.insert(event["key"].as_str().unwrap().to_string()));
        }
        assert_eq!(next(&mut socket).await, Err(Some(CloseCode::Normal)));

        let handed_over = waiter.await.unwrap().unwrap();
        assert!(handed_over.fencing_token > tokens[0]);
        for key in &keys[1..] {
            assert!(!alice.status(key, true).await.unwrap().held, "{key}");
        }
        cluster.shutdown().await;
    });
}

#[test]
fn a_watch_broken_by_a_leader_failure_is_reopened_with_resync_and_grants_still_arrive() {
    runtime().block_on(async {
        let mut cluster = ThreeNodes::start("stream-failover", 1).await;
        let alice = Client::new(&cluster.url, ALICE);
        let session = alice.create_session(Duration::from_secs(60)).await.unwrap();
        let holder = alice
            .try_acquire("k", &AcquireOptions::new("holder", Duration::from_secs(60)))
            .await
            .unwrap();
        let mut socket = connect(&cluster.url, ALICE, &session).await.unwrap();
        assert_eq!(next(&mut socket).await.unwrap()["type"], "ready");

        let leader = cluster.leader_of(1).unwrap();
        cluster.stop(leader).await;
        assert_eq!(next_event(&mut socket).await.unwrap()["type"], "resync");

        let waiter = tokio::spawn({
            let (alice, session) = (alice.clone(), session.clone());
            async move {
                let options = AcquireOptions::new("waiter", Duration::from_secs(60))
                    .wait(Duration::from_secs(20))
                    .session(session)
                    .request_id("stream-failover-wait");
                retrying(|| alice.try_acquire("k", &options)).await
            }
        });
        while retrying(|| alice.status("k", true)).await.unwrap().waiters == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        retrying(|| alice.release("k", "holder", holder.fencing_token))
            .await
            .unwrap();
        let grant = waiter.await.unwrap().unwrap();
        let pushed = next_event(&mut socket).await.unwrap();
        assert_eq!(pushed["type"], "granted", "{pushed}");
        assert_eq!(pushed["fencing_token"], grant.fencing_token);
        cluster.shutdown().await;
    });
}

/// Serves `app`, opens a 30 s session of alice's and its stream, and waits for `ready`.
async fn ready_stream(app: axum::Router) -> Socket {
    let url = serve_http(app).await;
    let session = Client::new(&url, ALICE)
        .create_session(Duration::from_secs(30))
        .await
        .unwrap();
    let mut socket = connect(&url, ALICE, &session).await.unwrap();
    assert_eq!(next(&mut socket).await.unwrap()["type"], "ready");
    socket
}

/// Messages until none arrives for a second.
async fn drain(socket: &mut Socket) -> Vec<Value> {
    let mut messages = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(1), socket.next()).await
    {
        if let Message::Text(text) = message {
            messages.push(serde_json::from_str(&text).unwrap());
        }
    }
    messages
}

#[test]
fn a_flood_of_heartbeats_is_folded_and_charged_to_the_tenants_rate() {
    runtime().block_on(async {
        let (app, node, _dir) = start("stream-flood").await;
        let mut socket = ready_stream(app).await;
        for _ in 0..50 {
            heartbeat(&mut socket).await;
        }
        let acks = drain(&mut socket).await;
        assert!(
            acks.iter().all(|m| m["type"] == "heartbeat_ack"),
            "{acks:?}"
        );
        assert!(
            !acks.is_empty() && acks.len() < 25,
            "50 heartbeats at once are folded into a few keepalives, got {} acks",
            acks.len()
        );
        node.shutdown().await;

        let limit = Limit {
            per_second: 0.001,
            burst: 3.0,
        };
        let (app, node, _dir) = start_limited("stream-rate", limit).await;
        let mut socket = ready_stream(app).await;
        heartbeat(&mut socket).await;
        assert_eq!(next(&mut socket).await.unwrap()["type"], "heartbeat_ack");
        heartbeat(&mut socket).await;
        let limited = next(&mut socket).await.unwrap();
        assert_eq!(limited["type"], "rate_limited", "{limited}");
        assert!(limited["retry_after_ms"].as_u64().unwrap() > 0);
        node.shutdown().await;
    });
}

#[test]
fn a_stream_closes_once_its_api_key_is_revoked() {
    runtime().block_on(async {
        let (app, node, _dir) = start("stream-revoked").await;
        let url = serve_http(app).await;
        let node_addr = node.meta().shard_map().nodes[&1].addr.clone();
        let admin = admin(&node_addr);
        let second = shard_map::key_hash("alice-second-key");
        admin.add_tenant_key("alice", second).await.unwrap();
        let client = Client::new(&url, "alice-second-key");
        let session = client
            .create_session(Duration::from_secs(30))
            .await
            .unwrap();
        let mut socket = connect(&url, "alice-second-key", &session).await.unwrap();
        assert_eq!(next_event(&mut socket).await.unwrap()["type"], "ready");

        admin.revoke_tenant_key("alice", second).await.unwrap();
        let said = next_event(&mut socket).await.unwrap();
        assert_eq!(said["type"], "error", "{said}");
        assert!(
            said["detail"].as_str().unwrap().contains("revoked"),
            "{said}"
        );
        assert_eq!(next(&mut socket).await, Err(Some(CloseCode::Policy)));
        node.shutdown().await;
    });
}
