//! # testkit
//!
//! Tools for testing Lockplane under concurrency and faults. Dependency-free, so any
//! crate's tests can use it.
//!
//! - [`history`]: a recorder that concurrent clients write their lock operations into
//!   (invocation and completion times, outcomes), and a checker of the lock contract over a
//!   finished history: no key granted while an earlier grant of it may still be valid,
//!   fencing tokens strictly increasing per key, and no acknowledged grant lost.
//! - [`rng`]: a small seeded random generator, so a failing run is replayed from its seed.

pub mod history;
pub mod rng;
