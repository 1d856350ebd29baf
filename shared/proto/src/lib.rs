//! # lockplane-proto
//!
//! The gRPC API between Lockplane processes: `proto/lock.proto` (the `LockService` every
//! node serves to gateways and tools), `proto/admin.proto` (the cluster administration API)
//! and the Rust code tonic/prost generate from them.
//!
//! - [`lock`]: the generated messages, client (`lock_service_client`) and server
//!   (`lock_service_server`); [`admin`]: the same for `AdminService`; [`audit`]: the
//!   audit event;
//! - [`error`]: the one table that maps every [`lock::ErrorCode`] to its gRPC code, HTTP
//!   status, problem `type` and retry class, and the `ErrorDetail` carried in a status;
//! - [`dial`]: channels to nodes (plain or mutual TLS) and requests carrying the admin
//!   token; [`tls`]: the cluster's TLS material;
//! - [`follow`]: calling whichever node leads, following `NOT_LEADER` hints;
//! - [`human`]: durations and instants as error messages show them to people.
//!
//! The generated code under `src/generated/` is checked in, so a build needs cargo alone
//! (no `protoc`, no build script); `scripts/gen-proto.sh` regenerates it after a `.proto`
//! change. Never edit the generated files by hand.

pub mod dial;
pub mod error;
pub mod follow;
pub mod human;
pub mod tls;

/// `lockplane.lock.v1`: generated from `proto/lock.proto` by `scripts/gen-proto.sh`.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod lock {
    include!("generated/lockplane.lock.v1.rs");
}

/// `lockplane.admin.v1`: generated from `proto/admin.proto` by `scripts/gen-proto.sh`.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod admin {
    include!("generated/lockplane.admin.v1.rs");
}

/// `lockplane.audit.v1`: generated from `proto/audit.proto` by `scripts/gen-proto.sh`.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod audit {
    include!("generated/lockplane.audit.v1.rs");
}

pub use dial::Dialer;
pub use error::{RpcError, error_status};
pub use tls::ClusterTls;
