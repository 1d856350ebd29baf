//! What every handler shares.

use std::sync::Arc;

use crate::auth::ApiKeys;
use crate::backend::Backend;

/// The gateway's shared state: the cluster it routes to and the keys it accepts.
#[derive(Clone)]
pub struct AppState {
    /// The cluster.
    pub backend: Arc<Backend>,
    /// API keys and their tenants.
    pub keys: ApiKeys,
}
