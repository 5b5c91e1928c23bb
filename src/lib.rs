//! # ordermeta
//!
//! Durable dYdX v4 order metadata: record every order's `OrderId` and good-til before it is
//! broadcast, and cancel it later by its own id — after a restart, from another process,
//! from another machine.
//!
//! This is the facade crate: it re-exports [`ordermeta_core`] (model, [`MetadataStore`],
//! state machine, errors, [`MemoryStore`], [`RecordingSwitch`]) and, behind Cargo features,
//! the stores and the dYdX integration:
//!
//! | feature      | module       | what                                                |
//! |--------------|--------------|-----------------------------------------------------|
//! | `sqlite`     | [`sqlite`]   | embedded SQLite store (default)                     |
//! | `postgres`   | `postgres`   | PostgreSQL store                                    |
//! | `redis`      | `redis`      | Redis / Redis Cluster store                         |
//! | `dydx`       | `dydx`       | write-ahead placement and cancel-by-id on dYdX v4   |
//! | `dydx-sim`   | `dydx_sim`   | local dYdX node over real gRPC, for tests and CI    |
//! | `recording`  | —            | compile metadata recording in (default)             |
//! | `conformance`| —            | the store conformance suite                         |
//!
//! [`open`] opens whichever store a URL names (`sqlite:…`, `postgres://…`, `redis://…`,
//! `memory:`), so the backend can be a configuration value.
#![deny(missing_docs)]

pub use ordermeta_core::*;

mod open;
pub use open::{OpenError, open};

/// The embedded SQLite store (feature `sqlite`).
#[cfg(feature = "sqlite")]
pub use ordermeta_sqlite as sqlite;

/// The PostgreSQL store (feature `postgres`).
#[cfg(feature = "postgres")]
pub use ordermeta_postgres as postgres;

/// The Redis / Redis Cluster store (feature `redis`).
#[cfg(feature = "redis")]
pub use ordermeta_redis as redis;

/// Placement and cancel-by-id on dYdX v4 (feature `dydx`).
#[cfg(feature = "dydx")]
pub use ordermeta_dydx as dydx;

/// The local dYdX node simulator (feature `dydx-sim`).
#[cfg(feature = "dydx-sim")]
pub use ordermeta_dydx_sim as dydx_sim;

// The README's examples are compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
