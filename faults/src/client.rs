//! One lock client's calls to the gateway's REST API, each answered as the checker sees
//! it ([`Answer`]) together with the HTTP status, so the run can count answers outside
//! 200/4xx/503.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use testkit::linear::Answer;

/// The gateway's deadline for a call that does not wait (its commit budget).
pub const COMMIT_BUDGET: Duration = Duration::from_secs(5);

/// What came back for one call.
#[derive(Debug, Clone)]
pub struct Reply {
    /// How the checker reads it.
    pub answer: Answer,
    /// The HTTP status; 0 when no answer came (connection failed, client timeout).
    pub status: u16,
    /// The problem `type` of an error, if any.
    pub problem: Option<String>,
    /// `Retry-After` of a 503, in seconds.
    pub retry_after: Option<u64>,
}

/// A REST client of the gateway.
#[derive(Clone)]
pub struct Gateway {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    base: String,
    api_key: String,
}

/// How long after its own deadline the client stops waiting for an answer (then the
/// outcome is unknown, and the answer counts as late).
const PATIENCE: Duration = Duration::from_secs(10);

impl Gateway {
    /// A client of the gateway at `base` (`http://host:port`) acting with `api_key`.
    pub fn new(base: &str, api_key: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        Self {
            http: HttpClient::builder(TokioExecutor::new()).build(connector),
            base: base.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        budget: Duration,
    ) -> (u16, Value, Option<u64>) {
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.api_key))
            .header("content-type", "application/json")
            .body(Full::new(body));
        let Ok(request) = request else {
            return (0, Value::Null, None);
        };
        let sent = tokio::time::timeout(budget + PATIENCE, async {
            let response = self.http.request(request).await.ok()?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let bytes = response.into_body().collect().await.ok()?.to_bytes();
            let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Some((status, value, retry_after))
        })
        .await;
        sent.ok().flatten().unwrap_or((0, Value::Null, None))
    }

    /// `POST /v1/locks/{key}/acquire`.
    pub async fn acquire(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        wait: Duration,
        request_id: &str,
    ) -> Reply {
        let body = json!({
            "owner": owner,
            "ttl_ms": ttl.as_millis() as u64,
            "wait_ms": wait.as_millis() as u64,
            "request_id": request_id,
        });
        let (status, value, retry_after) = self
            .send(
                "POST",
                &format!("/v1/locks/{key}/acquire"),
                Some(body),
                wait + COMMIT_BUDGET,
            )
            .await;
        let answer = match status {
            200 => value["fencing_token"]
                .as_u64()
                .map_or(Answer::Unknown, Answer::Granted),
            // Only `held` (and a full queue) says someone holds the key; other 409s
            // (lock-delay, a wait that ended, a reused request id) change nothing.
            409 if held(&value) => Answer::Held,
            409 => Answer::Rejected,
            408 => Answer::WaitTimedOut,
            400 | 401 | 403 | 404 | 429 => Answer::Rejected,
            _ => Answer::Unknown,
        };
        reply(answer, status, &value, retry_after)
    }

    /// `POST /v1/locks/{key}/renew`.
    pub async fn renew(&self, key: &str, owner: &str, token: u64, ttl: Duration) -> Reply {
        let body =
            json!({ "owner": owner, "fencing_token": token, "ttl_ms": ttl.as_millis() as u64 });
        self.holder_call(key, "renew", body, Answer::Renewed).await
    }

    /// `POST /v1/locks/{key}/release`.
    pub async fn release(&self, key: &str, owner: &str, token: u64) -> Reply {
        let body = json!({ "owner": owner, "fencing_token": token });
        self.holder_call(key, "release", body, Answer::Released)
            .await
    }

    /// A call only the holder may make (`renew`, `release`): `ok` on 200, `NotHolder` on
    /// 409.
    async fn holder_call(&self, key: &str, verb: &str, body: Value, ok: Answer) -> Reply {
        let path = format!("/v1/locks/{key}/{verb}");
        let (status, value, retry_after) =
            self.send("POST", &path, Some(body), COMMIT_BUDGET).await;
        let answer = match status {
            200 => ok,
            409 => Answer::NotHolder,
            400 | 401 | 403 | 404 | 429 => Answer::Rejected,
            _ => Answer::Unknown,
        };
        reply(answer, status, &value, retry_after)
    }

    /// `GET /v1/locks/{key}?consistency=linearizable`.
    pub async fn status(&self, key: &str) -> Reply {
        let (status, value, retry_after) = self
            .send(
                "GET",
                &format!("/v1/locks/{key}?consistency=linearizable"),
                None,
                COMMIT_BUDGET,
            )
            .await;
        let answer = match status {
            200 => match (
                value["held"].as_bool(),
                value["owner"].as_str(),
                value["fencing_token"].as_u64(),
            ) {
                (Some(false), _, _) => Answer::Free,
                (Some(true), Some(owner), Some(token)) => Answer::HeldBy {
                    owner: owner.to_string(),
                    token,
                },
                _ => Answer::Unknown,
            },
            _ => Answer::Unknown,
        };
        reply(answer, status, &value, retry_after)
    }
}

/// True when a 409's problem type says the key is held (or its queue is full).
fn held(problem: &Value) -> bool {
    problem["type"]
        .as_str()
        .is_some_and(|t| t.ends_with("/held") || t.ends_with("/too-many-waiters"))
}

fn reply(answer: Answer, status: u16, value: &Value, retry_after: Option<u64>) -> Reply {
    Reply {
        answer,
        status,
        problem: value["type"].as_str().map(ToString::to_string),
        retry_after,
    }
}
