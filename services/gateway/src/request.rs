//! What the routes share in reading a request: the body and path extractors that turn
//! axum's rejections into `400` problems naming the field, session ids as the API spells
//! them, the time a write is given to commit, and fresh ids the gateway makes up.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::{JsonRejection, PathRejection};

use crate::problem::Problem;

/// Time for a write to commit, on top of any wait: leader elections included.
pub const COMMIT_BUDGET: Duration = Duration::from_secs(5);

/// The body, or a `400` naming what is wrong with it.
pub fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    body.map(|Json(b)| b)
        .map_err(|e| Problem::invalid("body", e.body_text()))
}

/// A path segment, or a `400` naming `field` when it is not valid percent-encoded UTF-8.
pub fn segment<T>(path: Result<Path<T>, PathRejection>, field: &str) -> Result<T, Problem> {
    path.map(|Path(p)| p)
        .map_err(|e| Problem::invalid(field, e.body_text()))
}

/// A session id as the API spells it (a decimal string), parsed.
pub fn session_id(text: &str) -> Result<u64, Problem> {
    text.parse::<u64>()
        .ok()
        .filter(|id| *id != 0)
        .ok_or_else(|| Problem::invalid("session_id", format!("{text:?} is not a session id")))
}

/// A new, unpredictable, non-zero id (sessions; request ids the gateway adds).
pub fn fresh_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish().max(1)
}
