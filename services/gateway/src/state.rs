//! What every handler shares.

use std::sync::Arc;

use crate::backend::Backend;

/// The gateway's shared state: the cluster it routes to (and whose tenants it serves).
#[derive(Clone)]
pub struct AppState {
    /// The cluster.
    pub backend: Arc<Backend>,
}
