//! [`Client`]: the REST API v1 as typed calls.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::Method;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::error::ClientError;
use crate::http::Http;

/// How long a call may take on top of any wait it asks for.
const CALL_BUDGET: Duration = Duration::from_secs(10);

/// The longest wait one call may ask the server for (`wait_ms` ≤ 300,000); longer waits are
/// made of several calls (see [`AcquireOptions::wait_step`]).
pub const MAX_CALL_WAIT: Duration = Duration::from_secs(300);

/// How to acquire a lock.
#[derive(Debug, Clone)]
pub struct AcquireOptions {
    /// Who is asking; renew and release must present it again.
    pub owner: String,
    /// The lease: the lock ends this long after its last renew.
    pub ttl: Duration,
    /// How long to wait in the FIFO queue when the lock is held (zero: fail at once;
    /// `Duration::MAX`: for ever).
    pub wait: Duration,
    /// Waits longer than this are made of calls of this length each, every one renewing
    /// the place in the queue before the previous one ends (at most [`MAX_CALL_WAIT`], the
    /// default).
    pub wait_step: Duration,
    /// Bind the lock to this session.
    pub session: Option<String>,
    /// Idempotency key: a retry with the same id gets the same outcome.
    pub request_id: Option<String>,
}

impl AcquireOptions {
    /// Acquire as `owner` with a lease of `ttl`, no waiting.
    pub fn new(owner: impl Into<String>, ttl: Duration) -> Self {
        Self {
            owner: owner.into(),
            ttl,
            wait: Duration::ZERO,
            wait_step: MAX_CALL_WAIT,
            session: None,
            request_id: None,
        }
    }

    /// Wait up to `wait` in the queue.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Wait in the queue for as long as it takes.
    pub fn wait_forever(self) -> Self {
        self.wait(Duration::MAX)
    }

    /// Make long waits of calls of `step` each (capped at [`MAX_CALL_WAIT`]).
    pub fn wait_step(mut self, step: Duration) -> Self {
        self.wait_step = step.min(MAX_CALL_WAIT);
        self
    }

    /// Make the acquire idempotent under `id`: a retry with the same id (after a timeout or
    /// a `503`, when the first outcome is unknown) gets the first one's outcome.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Bind the lock (or the wait) to the session with id `session`: it ends with it.
    pub fn session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }
}

/// A granted lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The key.
    pub key: String,
    /// The holder's owner string.
    pub owner: String,
    /// The fencing token: present it to every resource the lock protects.
    pub fencing_token: u64,
    /// The lease length.
    pub ttl: Duration,
    /// The session the lock is bound to.
    pub session: Option<String>,
}

/// A key's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The key.
    pub key: String,
    /// Whether someone holds it.
    pub held: bool,
    /// The holder.
    pub owner: Option<String>,
    /// The holder's token.
    pub fencing_token: Option<u64>,
    /// Time left on the holder's lease.
    pub ttl_remaining: Option<Duration>,
    /// Callers queued.
    pub waiters: u64,
    /// The log index of the key's group whose state this shows (0 from a server that does
    /// not say): a later read of the key never shows a lower one from the same place.
    pub version: u64,
}

impl LockInfo {
    fn from_json(value: &Value) -> Self {
        Self {
            key: value["key"].as_str().unwrap_or_default().to_string(),
            held: value["held"].as_bool().unwrap_or(false),
            owner: value["owner"].as_str().map(str::to_string),
            fencing_token: value["fencing_token"].as_u64(),
            ttl_remaining: value["ttl_remaining_ms"]
                .as_u64()
                .map(Duration::from_millis),
            waiters: value["waiters"].as_u64().unwrap_or(0),
            version: value["version"].as_u64().unwrap_or(0),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn lock_path(key: &str, action: &str) -> String {
    let key = utf8_percent_encode(key, NON_ALPHANUMERIC);
    if action.is_empty() {
        format!("/v1/locks/{key}")
    } else {
        format!("/v1/locks/{key}/{action}")
    }
}

/// A Lockplane gateway, as one tenant (its API key) sees it. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: Arc<Http>,
    /// The pool releases from `Drop` use, on the release thread (see `releaser`).
    drop_http: Arc<OnceLock<Http>>,
}

impl Client {
    /// A client of the gateway at `url` (`http://host:port`, or `https://…` checked
    /// against the Mozilla CA roots) using `api_key`.
    pub fn new(url: &str, api_key: &str) -> Self {
        Self::with_tls(url, api_key, crate::http::public_roots())
    }

    /// A client of the gateway at an `https://` `url` whose certificate is signed by one
    /// of the CAs in `ca_pem` (PEM), trusted instead of the public roots (as `curl
    /// --cacert`); the error names what is wrong with `ca_pem`.
    pub fn with_ca_cert(url: &str, api_key: &str, ca_pem: &[u8]) -> Result<Self, ClientError> {
        let tls = crate::http::private_roots(ca_pem)
            .map_err(|e| ClientError::Config(format!("the CA certificate holds {e}")))?;
        Ok(Self::with_tls(url, api_key, tls))
    }

    fn with_tls(url: &str, api_key: &str, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            http: Arc::new(Http::new(url, api_key, tls)),
            drop_http: Arc::default(),
        }
    }

    /// Sends the release of `(owner, token)` from a `Drop`, where it cannot be awaited: on
    /// the release thread, blocking at most [`crate::DROP_WAIT`]. True when answered.
    pub(crate) fn release_from_drop(&self, key: &str, owner: &str, token: u64) -> bool {
        let (path, body) = release_request(key, owner, token);
        let http = self.drop_http.get_or_init(|| self.http.fresh_pool());
        crate::releaser::send_and_wait(http, Method::POST, path, Some(body))
    }

    /// Closes session `id` from a `Drop`, like [`Client::release_from_drop`].
    pub(crate) fn close_from_drop(&self, id: &str) -> bool {
        let path = format!("/v1/sessions/{}", session_segment(id));
        let http = self.drop_http.get_or_init(|| self.http.fresh_pool());
        crate::releaser::send_and_wait(http, Method::DELETE, path, None)
    }

    /// Acquires `key`, waiting in the queue up to `options.wait` (a wait longer than
    /// `options.wait_step` keeps its place over several calls): the grant, with no renewing.
    /// See [`Client::acquire`] for a guard that renews.
    pub async fn try_acquire(
        &self,
        key: &str,
        options: &AcquireOptions,
    ) -> Result<Grant, ClientError> {
        if options.wait > options.wait_step.min(MAX_CALL_WAIT) {
            return self.acquire_in_steps(key, options).await;
        }
        self.acquire_once(key, options, options.wait).await
    }

    /// One acquire call that waits at most `wait` in the queue.
    pub(crate) async fn acquire_once(
        &self,
        key: &str,
        options: &AcquireOptions,
        wait: Duration,
    ) -> Result<Grant, ClientError> {
        let mut body = json!({
            "owner": options.owner,
            "ttl_ms": millis(options.ttl),
            "wait_ms": millis(wait),
        });
        if let Some(session) = &options.session {
            body["session_id"] = json!(session);
        }
        if let Some(id) = &options.request_id {
            body["request_id"] = json!(id);
        }
        let answer = self
            .http
            .call(
                Method::POST,
                &lock_path(key, "acquire"),
                Some(&body),
                wait + CALL_BUDGET,
            )
            .await?;
        Ok(Grant {
            key: key.to_string(),
            owner: options.owner.clone(),
            fencing_token: answer["fencing_token"].as_u64().unwrap_or(0),
            ttl: Duration::from_millis(answer["ttl_ms"].as_u64().unwrap_or(0)),
            session: answer["session_id"].as_str().map(str::to_string),
        })
    }

    /// Extends the lease of the holder `(owner, token)` to `ttl` from now.
    pub async fn renew(
        &self,
        key: &str,
        owner: &str,
        token: u64,
        ttl: Duration,
    ) -> Result<Duration, ClientError> {
        self.renew_within(key, owner, token, ttl, CALL_BUDGET).await
    }

    pub(crate) async fn renew_within(
        &self,
        key: &str,
        owner: &str,
        token: u64,
        ttl: Duration,
        deadline: Duration,
    ) -> Result<Duration, ClientError> {
        let body = json!({ "owner": owner, "fencing_token": token, "ttl_ms": millis(ttl) });
        let answer = self
            .http
            .call(
                Method::POST,
                &lock_path(key, "renew"),
                Some(&body),
                deadline,
            )
            .await?;
        Ok(Duration::from_millis(
            answer["ttl_ms"].as_u64().unwrap_or(0),
        ))
    }

    /// Gives the lock up.
    pub async fn release(&self, key: &str, owner: &str, token: u64) -> Result<(), ClientError> {
        let (path, body) = release_request(key, owner, token);
        self.http
            .call(Method::POST, &path, Some(&body), CALL_BUDGET)
            .await
            .map(|_| ())
    }

    /// A key's status: `linearizable` reads after confirming the group's leadership.
    pub async fn status(&self, key: &str, linearizable: bool) -> Result<LockInfo, ClientError> {
        let mut path = lock_path(key, "");
        if linearizable {
            path.push_str("?consistency=linearizable");
        }
        let answer = self
            .http
            .call(Method::GET, &path, None, CALL_BUDGET)
            .await?;
        Ok(LockInfo::from_json(&answer))
    }

    /// A page of held or waited-on keys starting with `prefix`, in key order, after
    /// `cursor`; the cursor of the next page, if any.
    pub async fn list(
        &self,
        prefix: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<LockInfo>, Option<String>), ClientError> {
        let mut path = format!(
            "/v1/locks?limit={limit}&prefix={}",
            utf8_percent_encode(prefix, NON_ALPHANUMERIC)
        );
        if let Some(cursor) = cursor {
            path.push_str(&format!(
                "&cursor={}",
                utf8_percent_encode(cursor, NON_ALPHANUMERIC)
            ));
        }
        let answer = self
            .http
            .call(Method::GET, &path, None, CALL_BUDGET)
            .await?;
        let locks = answer["locks"]
            .as_array()
            .map(|locks| locks.iter().map(LockInfo::from_json).collect())
            .unwrap_or_default();
        Ok((locks, answer["next_cursor"].as_str().map(str::to_string)))
    }

    /// Creates a session with lease `ttl` and no keepalives (see [`Client::keepalive`]);
    /// its id. [`Client::open_session`] keeps one alive for you.
    pub async fn create_session(&self, ttl: Duration) -> Result<String, ClientError> {
        let answer = self
            .http
            .call(
                Method::POST,
                "/v1/sessions",
                Some(&json!({ "ttl_ms": millis(ttl) })),
                CALL_BUDGET,
            )
            .await?;
        answer["session_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::Transport("the answer has no session_id".into()))
    }

    /// Keeps session `id` alive for another TTL; the TTL.
    pub async fn keepalive(&self, id: &str) -> Result<Duration, ClientError> {
        self.keepalive_within(id, CALL_BUDGET).await
    }

    pub(crate) async fn keepalive_within(
        &self,
        id: &str,
        deadline: Duration,
    ) -> Result<Duration, ClientError> {
        let path = format!("/v1/sessions/{}/keepalive", session_segment(id));
        let answer = self.http.call(Method::POST, &path, None, deadline).await?;
        Ok(Duration::from_millis(
            answer["ttl_ms"].as_u64().unwrap_or(0),
        ))
    }

    /// Closes session `id`: its locks are released and its waits end.
    pub async fn close_session(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/sessions/{}", session_segment(id));
        self.http
            .call(Method::DELETE, &path, None, CALL_BUDGET)
            .await
            .map(|_| ())
    }
}

/// The path and body of a release.
fn release_request(key: &str, owner: &str, token: u64) -> (String, Value) {
    (
        lock_path(key, "release"),
        json!({ "owner": owner, "fencing_token": token }),
    )
}

fn session_segment(id: &str) -> impl std::fmt::Display + '_ {
    utf8_percent_encode(id, NON_ALPHANUMERIC)
}
