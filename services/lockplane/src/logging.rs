//! Log lines of the long-running commands (`node`, `gateway`, `dev`): `tracing` events
//! with structured fields, written to standard output one line each, filtered by
//! `RUST_LOG` (default [`DEFAULT_FILTER`]: Lockplane's own events from `info`, the libraries'
//! from `warn`, openraft's only errors; e.g. `RUST_LOG=lockplane_gateway=debug,warn`).

use tracing_subscriber::EnvFilter;

/// What is logged when `RUST_LOG` is not set. openraft reports every vote and replication
/// step at `info` and routine vote races at `warn`; Lockplane logs the leader changes and
/// lost quorums that matter itself.
pub const DEFAULT_FILTER: &str =
    "warn,openraft=error,lockplane=info,lockplane_node=info,lockplane_gateway=info";

/// Installs the log subscriber once, before the command starts.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}
