//! Log lines of the long-running commands: `tracing` events with structured fields,
//! written to standard output one line each, filtered by `RUST_LOG` (or the service's
//! default filter when it is not set).

use tracing_subscriber::EnvFilter;

/// Installs the log subscriber once, before the service starts; `default_filter` applies
/// when `RUST_LOG` is not set. A second call (a test that starts two services) keeps the
/// first.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}
