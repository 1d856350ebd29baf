//! Log lines of the long-running commands (`node`, `gateway`, `dev`): `tracing` events
//! with structured fields, written to standard output one line each, filtered by
//! `RUST_LOG` (default [`DEFAULT_FILTER`]: Lockplane's own events from `info`, the libraries'
//! from `warn`, openraft's only errors; e.g. `RUST_LOG=lockplane_gateway=debug,warn`).

/// What is logged when `RUST_LOG` is not set. openraft reports every vote and replication
/// step at `info` and routine vote races at `warn`; Lockplane logs the leader changes and
/// lost quorums that matter itself.
pub const DEFAULT_FILTER: &str =
    "warn,openraft=error,lockplane=info,lockplane_node=info,lockplane_gateway=info";

/// Installs the log subscriber once, before the command starts.
pub fn init() {
    telemetry::logging::init(DEFAULT_FILTER);
}
