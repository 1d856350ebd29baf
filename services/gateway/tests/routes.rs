//! Every route of the REST API against a real one-node cluster (node, lock groups, meta
//! group, gRPC on a loopback port), through the gateway's router: success bodies, status
//! codes, problem+json errors, blocking waits, sessions, listings, tenant isolation.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use lockplane_gateway::ratelimit::Limit;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::{ALICE, BOB, admin, request, runtime, start, start_limited};

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, String) {
    let (status, headers, value) = request(app, method, uri, key, body).await;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, value, content_type)
}

#[test]
fn locks_are_acquired_renewed_released_and_refused_with_problem_json() {
    runtime().block_on(async {
        let (app, node, _dir) = start("locks").await;
        let (status, body, _) = call(
            &app,
            "POST",
            "/v1/locks/orders%2F42/acquire",
            None,
            Some(json!({"owner": "a", "ttl_ms": 30000})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["type"], "/problems/unauthenticated");
        let (status, _, _) = call(&app, "GET", "/v1/locks/x", Some("nope"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let node_addr = node.meta().shard_map().nodes[&1].addr.clone();
        let carol = admin(&node_addr)
            .add_tenant_key("carol", shard_map::key_hash("key-carol"))
            .await
            .unwrap();
        assert_eq!(carol, 3);
        let (status, _, _) = call(&app, "GET", "/v1/locks/x", Some("key-carol"), None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a key added after the gateway started works at once"
        );

        let (status, granted, _) = call(
            &app,
            "POST",
            "/v1/locks/orders%2F42/acquire",
            Some(ALICE),
            Some(json!({"owner": "a", "ttl_ms": 30000})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{granted}");
        assert_eq!(granted["key"], "orders/42");
        assert_eq!(granted["owner"], "a");
        let token = granted["fencing_token"].as_u64().unwrap();

        let (status, held, content_type) = call(
            &app,
            "POST",
            "/v1/locks/orders%2F42/acquire",
            Some(ALICE),
            Some(json!({"owner": "b", "ttl_ms": 30000})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(held["type"], "/problems/held");
        assert_eq!(held["status"], 409);
        assert_eq!(
            held["holder"],
            json!({"owner": "a", "fencing_token": token})
        );

        for consistency in ["", "?consistency=linearizable", "?consistency=cached"] {
            let (status, read, _) = call(
                &app,
                "GET",
                &format!("/v1/locks/orders%2F42{consistency}"),
                Some(ALICE),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(read["held"], true);
            assert_eq!(read["owner"], "a");
            assert_eq!(read["fencing_token"], token);
            assert_eq!(read["waiters"], 0);
            assert!(read["ttl_remaining_ms"].as_u64().unwrap() <= 30000);
        }
        let (status, bad, _) = call(
            &app,
            "GET",
            "/v1/locks/orders%2F42?consistency=strong",
            Some(ALICE),
            None,
        )
        .await;
        assert_eq!(
            (status, bad["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("consistency"))
        );

        let (status, other_tenant, _) =
            call(&app, "GET", "/v1/locks/orders%2F42", Some(BOB), None).await;
        assert_eq!(
            (status, other_tenant["held"].as_bool()),
            (StatusCode::OK, Some(false)),
            "tenants are isolated"
        );
        let (status, _, _) = call(
            &app,
            "POST",
            "/v1/locks/orders%2F42/release",
            Some(BOB),
            Some(json!({"owner": "a", "fencing_token": token})),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "bob cannot release alice's lock"
        );

        let (status, renewed, _) = call(
            &app,
            "POST",
            "/v1/locks/orders%2F42/renew",
            Some(ALICE),
            Some(json!({"owner": "a", "fencing_token": token, "ttl_ms": 60000})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            renewed,
            json!({"key": "orders/42", "fencing_token": token, "ttl_ms": 60000})
        );
        let (status, stale, _) = call(
            &app,
            "POST",
            "/v1/locks/orders%2F42/renew",
            Some(ALICE),
            Some(json!({"owner": "a", "fencing_token": token - 1, "ttl_ms": 60000})),
        )
        .await;
        assert_eq!(
            (status, stale["type"].as_str()),
            (StatusCode::CONFLICT, Some("/problems/not-holder"))
        );

        let (status, released, _) = call(
            &app,
            "POST",
            "/v1/locks/orders%2F42/release",
            Some(ALICE),
            Some(json!({"owner": "a", "fencing_token": token})),
        )
        .await;
        assert_eq!(
            (status, released),
            (StatusCode::OK, json!({"released": true}))
        );
        let (status, _, _) = call(
            &app,
            "POST",
            "/v1/locks/orders%2F42/release",
            Some(ALICE),
            Some(json!({"owner": "a", "fencing_token": token})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        for (body, field) in [
            (
                json!({"owner": "a", "ttl_ms": 1000, "wait_ms": 300001}),
                "wait_ms",
            ),
            (json!({"owner": "a", "ttl_ms": 0}), "ttl_ms"),
            (json!({"owner": "", "ttl_ms": 1000}), "owner"),
            (
                json!({"owner": "a", "ttl_ms": 1000, "scope": "galaxy"}),
                "scope",
            ),
            (
                json!({"owner": "a", "ttl_ms": 1000, "color": "red"}),
                "body",
            ),
            (json!({"owner": "a"}), "body"),
            (
                json!({"owner": "a", "ttl_ms": 1000, "session_id": "x"}),
                "session_id",
            ),
        ] {
            let (status, problem, content_type) = call(
                &app,
                "POST",
                "/v1/locks/k/acquire",
                Some(ALICE),
                Some(body.clone()),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
            assert_eq!(content_type, "application/problem+json");
            assert_eq!(problem["field"], field, "{body}: {problem}");
        }
        let (status, problem, _) =
            call(&app, "POST", "/v1/locks/k/acquire", Some(ALICE), None).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("body"))
        );
        let (status, problem, _) = call(&app, "GET", "/v1/nothing", Some(ALICE), None).await;
        assert_eq!(
            (status, problem["type"].as_str()),
            (StatusCode::NOT_FOUND, Some("/problems/not-found"))
        );
        node.shutdown().await;
    });
}

#[test]
fn a_blocking_acquire_is_granted_on_release_and_times_out_with_408() {
    runtime().block_on(async {
        let (app, node, _dir) = start("wait").await;
        let (_, first, _) = call(
            &app,
            "POST",
            "/v1/locks/hot/acquire",
            Some(ALICE),
            Some(json!({"owner": "a", "ttl_ms": 30000})),
        )
        .await;
        let token = first["fencing_token"].as_u64().unwrap();
        let (status, late, _) = call(
            &app,
            "POST",
            "/v1/locks/hot/acquire",
            Some(ALICE),
            Some(json!({"owner": "late", "ttl_ms": 30000, "wait_ms": 200})),
        )
        .await;
        assert_eq!(
            (status, late["type"].as_str()),
            (
                StatusCode::REQUEST_TIMEOUT,
                Some("/problems/wait-timed-out")
            )
        );

        let waiter = {
            let app = app.clone();
            tokio::spawn(async move {
                call(
                    &app,
                    "POST",
                    "/v1/locks/hot/acquire",
                    Some(ALICE),
                    Some(json!({"owner": "b", "ttl_ms": 30000, "wait_ms": 20000})),
                )
                .await
            })
        };
        loop {
            let (_, read, _) = call(
                &app,
                "GET",
                "/v1/locks/hot?consistency=linearizable",
                Some(ALICE),
                None,
            )
            .await;
            if read["waiters"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        call(
            &app,
            "POST",
            "/v1/locks/hot/release",
            Some(ALICE),
            Some(json!({"owner": "a", "fencing_token": token})),
        )
        .await;
        let (status, granted, _) = waiter.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{granted}");
        assert_eq!(granted["owner"], "b");
        assert!(granted["fencing_token"].as_u64().unwrap() > token);
        node.shutdown().await;
    });
}

#[test]
fn listings_page_through_every_group_and_sessions_hold_and_free_locks() {
    runtime().block_on(async {
        let (app, node, _dir) = start("list").await;
        for name in ["jobs/a", "jobs/b", "jobs/c", "other"] {
            let (status, _, _) = call(
                &app,
                "POST",
                &format!("/v1/locks/{}/acquire", name.replace('/', "%2F")),
                Some(ALICE),
                Some(json!({"owner": "o", "ttl_ms": 30000})),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        }
        let (status, page, _) = call(
            &app,
            "GET",
            "/v1/locks?prefix=jobs%2F&limit=2",
            Some(ALICE),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<_> = page["locks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["jobs/a", "jobs/b"]);
        assert_eq!(page["next_cursor"], "jobs/b");
        let (_, rest, _) = call(
            &app,
            "GET",
            "/v1/locks?prefix=jobs%2F&limit=2&cursor=jobs%2Fb",
            Some(ALICE),
            None,
        )
        .await;
        let names: Vec<_> = rest["locks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["jobs/c"]);
        let (_, none, _) = call(&app, "GET", "/v1/locks", Some(BOB), None).await;
        assert_eq!(none["locks"], json!([]));
        let (status, _, _) = call(&app, "GET", "/v1/locks?limit=0", Some(ALICE), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let (status, session, _) = call(
            &app,
            "POST",
            "/v1/sessions",
            Some(ALICE),
            Some(json!({"ttl_ms": 10000})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        let id = session["session_id"].as_str().unwrap().to_string();
        assert_eq!(session["ttl_ms"], 10000);
        let (status, kept, _) = call(
            &app,
            "POST",
            &format!("/v1/sessions/{id}/keepalive"),
            Some(ALICE),
            None,
        )
        .await;
        assert_eq!(
            (status, kept["ttl_ms"].as_u64()),
            (StatusCode::OK, Some(10000))
        );
        let (status, _, _) = call(
            &app,
            "POST",
            &format!("/v1/sessions/{id}/keepalive"),
            Some(BOB),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's session");
        for name in ["s1", "s2", "s3"] {
            let (status, bound, _) = call(
                &app,
                "POST",
                &format!("/v1/locks/{name}/acquire"),
                Some(ALICE),
                Some(json!({"owner": "w", "ttl_ms": 10000, "session_id": id})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{bound}");
            assert_eq!(bound["session_id"], id.as_str());
        }
        let (status, _, _) = call(
            &app,
            "DELETE",
            &format!("/v1/sessions/{id}"),
            Some(ALICE),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        for name in ["s1", "s2", "s3"] {
            let (_, read, _) = call(
                &app,
                "GET",
                &format!("/v1/locks/{name}?consistency=linearizable"),
                Some(ALICE),
                None,
            )
            .await;
            assert_eq!(read["held"], false, "closing the session released {name}");
        }
        let (status, gone, _) = call(
            &app,
            "POST",
            &format!("/v1/sessions/{id}/keepalive"),
            Some(ALICE),
            None,
        )
        .await;
        assert_eq!(
            (status, gone["type"].as_str()),
            (StatusCode::NOT_FOUND, Some("/problems/session-not-found"))
        );
        node.shutdown().await;
    });
}

#[test]
fn a_tenant_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    runtime().block_on(async {
        let limit = Limit {
            per_second: 1.0,
            burst: 3.0,
        };
        let (app, node, _dir) = start_limited("rate", limit).await;
        for _ in 0..3 {
            let (status, _, _) = call(&app, "GET", "/v1/locks/x", Some(ALICE), None).await;
            assert_eq!(status, StatusCode::OK);
        }
        let request = Request::builder()
            .uri("/v1/locks/x")
            .header(header::AUTHORIZATION, format!("Bearer {ALICE}"))
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let (status, _, _) = call(&app, "GET", "/v1/locks/x", Some(BOB), None).await;
        assert_eq!(status, StatusCode::OK, "bob has his own budget");
        node.shutdown().await;
    });
}

#[test]
fn the_openapi_document_lists_every_route_without_a_key() {
    runtime().block_on(async {
        let (app, node, _dir) = start("openapi").await;
        let (status, doc, content_type) = call(&app, "GET", "/v1/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/json");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for route in [
            "/v1/locks",
            "/v1/locks/{key}",
            "/v1/locks/{key}/acquire",
            "/v1/locks/{key}/renew",
            "/v1/locks/{key}/release",
            "/v1/sessions",
            "/v1/sessions/{id}",
            "/v1/sessions/{id}/keepalive",
            "/v1/sessions/{id}/stream",
            "/healthz",
            "/readyz",
        ] {
            assert!(paths.contains(&route), "{route} missing from {paths:?}");
        }
        let acquire = &doc["paths"]["/v1/locks/{key}/acquire"]["post"]["responses"];
        for code in ["200", "400", "401", "404", "408", "409", "429", "503"] {
            assert!(
                acquire.get(code).is_some(),
                "acquire does not document {code}"
            );
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        node.shutdown().await;
    });
}

#[test]
fn a_path_segment_that_is_not_utf8_is_a_400_problem() {
    runtime().block_on(async {
        let (app, node, _dir) = start("bad-segment").await;
        let body = json!({ "owner": "a", "ttl_ms": 1000 });
        let (status, problem, content_type) = call(
            &app,
            "POST",
            "/v1/locks/%FF/acquire",
            Some(ALICE),
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["field"], "key");
        let (status, problem, _) = call(
            &app,
            "POST",
            "/v1/sessions/%FF/keepalive",
            Some(ALICE),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["field"], "session_id");
        node.shutdown().await;
    });
}

#[test]
fn a_tenant_at_its_quota_of_held_locks_gets_429_until_it_releases() {
    runtime().block_on(async {
        let (app, node, _dir) = start("quota").await;
        let node_addr = node.meta().shard_map().nodes[&1].addr.clone();
        let admin = admin(&node_addr);
        admin
            .add_tenant_key("dora", shard_map::key_hash("key-dora"))
            .await
            .unwrap();
        admin.set_tenant_quota("dora", Some(4)).await.unwrap();
        let acquire = |name: String, key: &'static str| {
            let app = app.clone();
            async move {
                let uri = format!("/v1/locks/{name}/acquire");
                let body = json!({ "owner": "o", "ttl_ms": 60_000 });
                call(&app, "POST", &uri, Some(key), Some(body)).await
            }
        };
        let (mut held, mut refused) = (Vec::new(), None);
        for n in 0..8 {
            let name = format!("job-{n}");
            let (status, body, content_type) = acquire(name.clone(), "key-dora").await;
            match status {
                StatusCode::OK => held.push((name, body["fencing_token"].as_u64().unwrap())),
                StatusCode::TOO_MANY_REQUESTS => {
                    assert_eq!(content_type, "application/problem+json");
                    assert_eq!(body["type"], "/problems/quota-exceeded", "{body}");
                    refused = Some(name);
                    break;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        let refused = refused.expect("4 lock groups, a share of 1 each: 5 keys cannot all fit");
        assert!(!held.is_empty() && held.len() <= 4, "{held:?}");
        for n in 0..8 {
            let (status, _, _) = acquire(format!("job-{n}"), ALICE).await;
            assert_eq!(status, StatusCode::OK, "alice has no quota");
        }
        for (name, token) in &held {
            let uri = format!("/v1/locks/{name}/release");
            let body = json!({ "owner": "o", "fencing_token": token });
            let (status, _, _) = call(&app, "POST", &uri, Some("key-dora"), Some(body)).await;
            assert_eq!(status, StatusCode::OK);
        }
        let (status, body, _) = acquire(refused, "key-dora").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        node.shutdown().await;
    });
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    runtime().block_on(async {
        let (app, node, _dir) = start("metrics").await;
        let body = json!({ "owner": "a", "ttl_ms": 60_000 });
        for expected in [StatusCode::OK, StatusCode::CONFLICT] {
            let other = json!({ "owner": "b", "ttl_ms": 60_000 });
            let body = if expected == StatusCode::OK { body.clone() } else { other };
            let (status, _, _) =
                call(&app, "POST", "/v1/locks/m/acquire", Some(ALICE), Some(body)).await;
            assert_eq!(status, expected);
        }
        let text = metrics_text(&app).await;
        for line in [
            r#"lockplane_gateway_requests_total{route="/v1/locks/{key}/acquire",code="200"} 1"#,
            r#"lockplane_gateway_requests_total{route="/v1/locks/{key}/acquire",code="409"} 1"#,
            r#"lockplane_gateway_request_duration_seconds_count{route="/v1/locks/{key}/acquire"} 2"#,
            "lockplane_gateway_session_streams 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(text.contains("lockplane_gateway_shard_map_version "));
        node.shutdown().await;
    });
}

/// The value of an unlabelled counter in a `/metrics` text.
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

/// The `/metrics` text (answered `200`).
async fn metrics_text(app: &Router) -> String {
    let request = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn concurrent_keepalives_are_folded_into_one_call_per_group_and_answered_each() {
    runtime().block_on(async {
        let (app, node, _dir) = start("fold").await;
        let mut ids = Vec::new();
        for _ in 0..40 {
            let (status, body, _) = call(
                &app,
                "POST",
                "/v1/sessions",
                Some(ALICE),
                Some(json!({ "ttl_ms": 60_000 })),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            ids.push(body["session_id"].as_str().unwrap().to_string());
        }
        let closed = ids.pop().unwrap();
        let (status, _, _) = call(
            &app,
            "DELETE",
            &format!("/v1/sessions/{closed}"),
            Some(ALICE),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let before = metrics_text(&app).await;
        let (calls_before, carried_before) = (
            counter(&before, "lockplane_gateway_keepalive_calls_total"),
            counter(&before, "lockplane_gateway_keepalives_total"),
        );
        let keepalive = |id: String, key: &'static str| {
            let app = app.clone();
            tokio::spawn(async move {
                let uri = format!("/v1/sessions/{id}/keepalive");
                call(&app, "POST", &uri, Some(key), None).await
            })
        };
        let mut live = Vec::new();
        for id in &ids {
            live.push(keepalive(id.clone(), ALICE));
        }
        let gone = keepalive(closed, ALICE);
        let foreign = keepalive(ids[0].clone(), BOB);
        for answer in live {
            let (status, body, _) = answer.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["ttl_ms"], 60_000);
        }
        let (status, body, _) = gone.await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body, _) = foreign.await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let after = metrics_text(&app).await;
        let calls = counter(&after, "lockplane_gateway_keepalive_calls_total") - calls_before;
        let carried = counter(&after, "lockplane_gateway_keepalives_total") - carried_before;
        let groups = carried / (ids.len() as u64 + 2);
        assert!(
            groups >= 1 && carried == groups * (ids.len() as u64 + 2),
            "{carried}"
        );
        assert!(
            calls < carried,
            "{calls} calls for {carried} keepalives: nothing was folded"
        );
        node.shutdown().await;
    });
}

#[test]
fn a_key_with_a_raw_slash_gets_a_404_that_says_how_to_encode_it() {
    runtime().block_on(async {
        let (app, node, _dir) = start("raw-slash").await;
        let (status, body, _) = call(
            &app,
            "POST",
            "/v1/locks/reports/daily/acquire",
            Some(ALICE),
            Some(json!({"owner": "a", "ttl_ms": 30000})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["type"], "/problems/not-found");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("percent-encoded")
                && detail.contains("/v1/locks/reports%2Fdaily/acquire"),
            "{detail}"
        );
        let (status, body, _) = call(&app, "GET", "/v2/nothing", Some(ALICE), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["detail"], "no route /v2/nothing");
        node.shutdown().await;
    });
}
