//! What every handler shares.

use std::sync::Arc;

use crate::backend::Backend;
use crate::metrics::Metrics;
use crate::ratelimit::{Limit, RateLimiter};

/// The gateway's shared state: the cluster it routes to (and whose tenants it serves), and
/// the tenants' rate limits.
#[derive(Clone)]
pub struct AppState {
    /// The cluster.
    pub backend: Arc<Backend>,
    /// Per-tenant request rates.
    pub limiter: Arc<RateLimiter>,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// State over `backend` with every tenant limited to `limit`.
    pub fn new(backend: Arc<Backend>, limit: Limit) -> Self {
        Self {
            backend,
            limiter: Arc::new(RateLimiter::new(limit)),
            metrics: Arc::new(Metrics::default()),
        }
    }
}
