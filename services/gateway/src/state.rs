//! What every handler shares.

use std::sync::Arc;

use crate::cache::StatusCache;
use crate::caller::Caller;
use crate::cluster::ClusterView;
use crate::keepalives::KeepAlives;
use crate::metrics::Metrics;
use crate::ratelimit::{Limit, RateLimiter};

/// The gateway's shared state: the cluster it routes to (and whose tenants it serves), the
/// caller that reaches its groups, the keepalive folding queues, and the tenants' rate
/// limits. One `Arc`, so the clone every request's extractors make is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] holds.
#[derive(Clone)]
pub struct Shared {
    /// Where keys and tenants are.
    pub cluster: Arc<ClusterView>,
    /// Sends to group leaders.
    pub caller: Arc<Caller>,
    /// Session keepalives folded per group.
    pub keepalives: Arc<KeepAlives>,
    /// Per-tenant request rates.
    pub limiter: Arc<RateLimiter>,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The Redis status cache, when the gateway has one (`--redis`).
    pub cache: Option<Arc<StatusCache>>,
    /// More text for `/metrics`: the process's own figures, and in `lockplane dev` its
    /// node's.
    pub more_metrics: Option<telemetry::metrics::Render>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// State over `cluster` with every tenant limited to `limit`.
    pub fn new(cluster: Arc<ClusterView>, limit: Limit) -> Self {
        let caller = Arc::new(Caller::new(Arc::clone(&cluster)));
        Self(Arc::new(Shared {
            cluster,
            keepalives: Arc::new(KeepAlives::new(Arc::clone(&caller))),
            caller,
            limiter: Arc::new(RateLimiter::new(limit)),
            metrics: Arc::new(Metrics::default()),
            cache: None,
            more_metrics: None,
        }))
    }

    /// This state, with `render`'s text added to every `/metrics` answer.
    #[must_use]
    pub fn with_more_metrics(self, render: telemetry::metrics::Render) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.0);
        shared.more_metrics = Some(render);
        Self(Arc::new(shared))
    }

    /// This state, answering status reads from `cache` if there is one; the cache is kept
    /// fresh by the groups' change feeds, which run until the returned task is aborted.
    pub fn with_cache(
        self,
        cache: Option<Arc<StatusCache>>,
    ) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        let feeds = cache.as_ref().map(|cache| {
            cache.connect();
            // Wrapped before the task exists: aborting the task, even before it first runs,
            // aborts the feeds' own task too.
            let mut feeds = AbortOnDrop(crate::cache::feed::spawn(
                Arc::clone(&self.caller),
                Arc::clone(cache),
            ));
            let memory = crate::cache::memory::watch(Arc::clone(cache));
            tokio::spawn(async move {
                tokio::select! {
                    _ = &mut feeds.0 => {}
                    () = memory => {}
                }
            })
        });
        let mut shared = Arc::unwrap_or_clone(self.0);
        shared.cache = cache;
        (Self(Arc::new(shared)), feeds)
    }
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
