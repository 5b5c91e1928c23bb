//! # ordermeta-dydx
//!
//! Write-ahead placement and cancel-by-id for dYdX v4 orders, on any ordermeta store.
//!
//! [`OrderMetaClient`] (the original design's `DydxV4Client`) holds an [`OrderGateway`] (the
//! chain), an `Arc<dyn MetadataStore>` (any backend), the [`RecordingSwitch`] and
//! [`ChainSettings`]:
//!
//! - [`place_order`](OrderMetaClient::place_order) records the order as `pending` **before**
//!   broadcasting it, then marks it `active` or `failed`. If recording fails, the order is not
//!   broadcast: a live order without metadata is the bug ordermeta removes.
//! - [`cancel_order`](OrderMetaClient::cancel_order) follows the seed's flow: look up, check
//!   status, ownership and expiry against the chain, claim (`active -> cancelling`, exactly one
//!   of many concurrent cancellers wins), broadcast `MsgCancelOrder` with the stored `OrderId`
//!   and good-til, record `cancelled` (with the cancel tx hash) or give the claim back.
//! - [`cancel_all`](OrderMetaClient::cancel_all), [`mark_filled`](OrderMetaClient::mark_filled),
//!   [`sweep_expired`](OrderMetaClient::sweep_expired) with the background [`ExpirySweeper`],
//!   and [`reconcile_pending`](OrderMetaClient::reconcile_pending) for crash recovery.
//!
//! ## The good-til of a cancel
//!
//! A short-term cancel removes the order only if its good-til block is at least the order's,
//! and a stateful cancel is refused (code 29) if its good-til time is below the order's. The
//! order's own stored good-til satisfies both while the order is unexpired, so ordermeta
//! always cancels with exactly that — unlike clients that guess `height + 40` or `now + 90
//! days` after a restart.
//!
//! ## Chain answers
//!
//! Errors are classified by (codespace, code), never by log text ([`gateway::codes`]):
//! clob 9 / 32 → the node already has a cancel (`CancelInProgress`, recorded cancelled);
//! clob 10 / 3003 → expired; clob 3006 → the stateful order is gone (expired if the clock
//! says so, else recorded cancelled — a fill feed may correct it to filled); clob 5001 →
//! `RateLimited`; sdk 32 (sequence mismatch) → the gateway re-syncs and retries once.
//!
//! ## Audit and monitoring
//!
//! Every cancel attempt emits a `tracing` event (order id, outcome, error); every status
//! change is kept in the order's history. `metrics` counters: `ordermeta_cancel_total{outcome}`,
//! `ordermeta_place_total{outcome}`, `ordermeta_recording_failures_total`; histogram
//! `ordermeta_store_seconds{op}`.
#![deny(missing_docs)]

pub mod client;
pub mod gateway;
pub mod sweeper;

pub use client::{
    CancelAllReport, CancelScope, Cancelled, ChainSettings, MAX_BATCH_CANCEL_IDS, OrderDetails,
    OrderMetaClient, PlaceError, Placed, ReconcileReport, SweepError, order_key,
};
#[cfg(any(test, feature = "mock"))]
pub use gateway::MockOrderGateway;
pub use gateway::{
    ChainClock, ChainError, DydxGateway, GatewayError, OrderGateway, from_proto_order_id,
    to_proto_order_id,
};
pub use sweeper::ExpirySweeper;

pub use dydx;
pub use ordermeta_core::{CancelError, RecordingSwitch};
