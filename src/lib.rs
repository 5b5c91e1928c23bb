//! # ordermeta
//!
//! Durable dYdX v4 order metadata: record every order's `OrderId` and good-til before it is
//! broadcast, and cancel it later by its own id — after a restart, from another process,
//! from another machine.
//!
//! This is the facade crate: it re-exports [`ordermeta_core`] (model, [`MetadataStore`],
//! state machine, store errors, [`MemoryStore`]) and, behind Cargo features, the stores and
//! the dYdX integration (with its `RecordingSwitch`):
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
//!
//! A bot needs this crate and `tokio`, nothing else: `dydx` re-exports the `dydx` client
//! crate it is built against (0.3; `ordermeta::dydx::DYDX_VERSION`) — the types a bot names
//! (`Wallet`, `NodeConfig`, `OrderBuilder`, `OrderSide`, `ClientId`, …) by name, the whole
//! crate as `ordermeta::dydx::dydx` — and the `chrono` time types of its clock helpers. The
//! README's *Use it in your bot* shows the whole flow; it runs as a test of this crate.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// One path per item: the core types by name at the root, each backend as a module.
pub use ordermeta_core::{
    BoxError, DEFAULT_PAGE_SIZE, EXPIRE_REASON, ErrorKind, ExpireRequest, GoodTil, HistoryEntry,
    InvalidRecord, ListQuery, MAX_ORDER_ID_LEN, MAX_PAGE_SIZE, MemoryStore, MetadataStore,
    MetadataStoreExt, NewOrder, ORDER_FLAGS_CONDITIONAL, ORDER_FLAGS_LONG_TERM,
    ORDER_FLAGS_SHORT_TERM, ORDER_FLAGS_TWAP, ORDER_FLAGS_TWAP_SUBORDER, OrderId, OrderMetadata,
    OrderStatus, OrderType, Page, Side, StoreError, TransitionRequest, UnknownStatus, from_micros,
    now, to_micros, truncate_micros,
};

/// The store conformance suite (feature `conformance`): run it against your own store.
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub use ordermeta_core::conformance;

mod open;
pub use open::{OpenError, open};

/// The embedded SQLite store (feature `sqlite`).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use ordermeta_sqlite as sqlite;

/// The PostgreSQL store (feature `postgres`).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use ordermeta_postgres as postgres;

/// The Redis / Redis Cluster store (feature `redis`).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use ordermeta_redis as redis;

/// Placement and cancel-by-id on dYdX v4 (feature `dydx`), with the `dydx` client crate's
/// types a bot uses re-exported by name (and the crate itself as `dydx::dydx`).
#[cfg(feature = "dydx")]
#[cfg_attr(docsrs, doc(cfg(feature = "dydx")))]
pub use ordermeta_dydx as dydx;

/// The local dYdX node simulator (feature `dydx-sim`).
#[cfg(feature = "dydx-sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "dydx-sim")))]
pub use ordermeta_dydx_sim as dydx_sim;

// The README's examples are compiled and run as doc-tests (its client example needs the
// dYdX client, the simulator and SQLite).
#[cfg(all(doctest, feature = "dydx", feature = "dydx-sim", feature = "sqlite"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
