//! # testkit
//!
//! Tools for testing Lockplane under concurrency and faults. Dependency-free, so any
//! crate's tests can use it.
//!
//! - [`history`]: a recorder that concurrent clients write their lock operations into
//!   (invocation and completion times, outcomes), and a checker of the lock contract over a
//!   finished history: no key granted while an earlier grant of it may still be valid,
//!   fencing tokens strictly increasing per key, and no acknowledged grant lost.
//! - [`linear`]: a linearizability checker (Wing–Gong search with Lowe's memoisation) for
//!   histories of acquire, renew, release and status over many keys, leases included.
//! - [`rng`]: a small seeded random generator, so a failing run is replayed from its seed.
//! - [`wall`]: the wall clock in Unix milliseconds, as audit events carry it.
//! - [`broker`]: a throwaway Kafka-protocol broker (tansu) to stop and restart;
//!   [`postgres`]: a database of a test's own on the machine's PostgreSQL.

pub mod broker;
pub mod history;
pub mod linear;
pub mod postgres;
pub mod rng;
pub mod wall;
