//! # lockplane-client
//!
//! The Rust SDK for Lockplane's REST API v1. [`Client::acquire`] returns a [`LockGuard`]
//! that renews the lease at about a third of its TTL, exposes the fencing token, fires
//! [`LockGuard::lost`] when the lock can no longer be trusted, and releases the lock when
//! dropped. Errors are typed ([`ClientError`]), read from the gateway's problem+json.
//!
//! Sessions ([`Client::open_session`]) share one lease among many locks and keep it alive
//! the same way.
//!
//! Modules: `client` (the calls), `guard` (the renewing guard), `session`, `lease` (keeping
//! a lease and when to stop trusting it), `wait` (waits longer than one call, keeping the
//! place in the queue), `releaser` (releases from `Drop` that cannot be lost), `error`,
//! `http` (one JSON request over HTTP/1.1).
//!
//! ```no_run
//! # async fn demo() -> Result<(), lockplane_client::ClientError> {
//! use std::time::Duration;
//! use lockplane_client::{AcquireOptions, Client};
//!
//! let client = Client::new("http://127.0.0.1:7070", "my-api-key");
//! let guard = client
//!     .acquire("orders/42", AcquireOptions::new("worker-1", Duration::from_secs(30)).wait(Duration::from_secs(10)))
//!     .await?;
//! let token = guard.fencing_token(); // send it with every write to the protected resource
//! # let _ = token;
//! guard.release().await?;
//! # Ok(()) }
//! ```

mod client;
mod error;
mod guard;
mod http;
mod lease;
mod releaser;
mod session;
mod wait;

pub use client::{AcquireOptions, Client, Grant, LockInfo, MAX_CALL_WAIT};
pub use error::{ClientError, Holder};
pub use guard::LockGuard;
pub use releaser::DROP_WAIT;
pub use session::Session;
