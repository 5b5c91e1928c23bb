//! # ordermeta-core
//!
//! The storage-independent heart of ordermeta: the order metadata model, the
//! [`MetadataStore`] trait every backend implements, the order state machine, the store's
//! errors, the [`OrderId`] codec and the reference [`MemoryStore`]. With the `conformance`
//! feature, the [`conformance`] suite every store must pass.
//!
//! This crate depends on no database and no network crate.
//!
//! ## The state machine
//!
//! One transition table ([`OrderStatus::successors`]); every store enforces it through an
//! atomic compare-and-set ([`MetadataStore::transition`]).
//!
//! ```text
//!                 broadcast ok              claim                 cancel accepted
//!   (record) ──► pending ───────► active ─────────► cancelling ──────────────► cancelled
//!                  │  │             │  ▲  cancel failed  │                         │
//!      rejected ◄──┘  │             │  └─────────────────┤                         │
//!      = failed       │             │                    │                         │
//!                     │   good-til passed (any open status)                        │
//!                     └────────────►├──────────────────► expired ◄─────────────────┼──┐
//!                                   │                       │                      │  │
//!                                   └──── fill ──────► filled ◄── late fill ───────┘  │
//!                                                           ▲─── late fill ───────────┘
//! ```
//!
//! | from        | to                                             |
//! |-------------|------------------------------------------------|
//! | pending     | active, failed, cancelling, expired, filled    |
//! | active      | cancelling, cancelled, expired, filled, failed |
//! | cancelling  | cancelled, active, expired, filled             |
//! | cancelled   | filled                                         |
//! | expired     | filled                                         |
//! | filled      | —                                              |
//! | failed      | —                                              |
//!
//! `active -> failed`: a stateful placement the node accepted at CheckTx can still fail when
//! its block executes it; the client records that when it confirms the placement.
//!
//! `pending` exists because ordermeta records **before** broadcasting (write-ahead): a crash
//! between broadcast and recording could otherwise leave a live order nobody can cancel by id,
//! which is the very bug ordermeta fixes. The original design recorded after placement.
//! `cancelling` is the claim one canceller takes so that concurrent cancels of one order send
//! one transaction; `pending -> cancelling` lets reconciliation cancel an order whose
//! broadcast outcome a crash left unknown. `cancelled -> filled` and `expired -> filled` let a fill feed correct the
//! record: short-term cancels are best effort and can lose the race to a fill.
//!
//! ## Example: the store level
//!
//! What `ordermeta-dydx`'s client does with a store for every order, written out: record
//! `pending` before the broadcast (write-ahead), mark it `active` with the tx hash, and later —
//! in any process that opens the same store — claim it for cancelling. A bot does not write
//! this: it calls the client's `place` and `cancel_order` (see the `ordermeta` README, *Use it
//! in your bot*). The order id is the client's printable form
//! (`owner/subaccount/clob_pair/order_flags/client_id@b<good-til block>`).
//!
//! ```
//! use std::sync::Arc;
//! use ordermeta_core::*;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), StoreError> {
//! let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
//! let owner = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn";
//! let id = format!("{owner}/0/0/0/42@b1000");
//! let order = NewOrder {
//!     order_id: id.clone(),
//!     dydx_order_id: OrderId {
//!         owner: owner.into(),
//!         subaccount_number: 0,
//!         client_id: 42,
//!         order_flags: ORDER_FLAGS_SHORT_TERM,
//!         clob_pair_id: 0,
//!     },
//!     good_til: GoodTil::Block(1_000),
//!     symbol: "BTC-USD".into(),
//!     side: Side::Buy,
//!     quantity: "0.01".into(),
//!     price: Some("65000".into()),
//!     order_type: OrderType::Limit,
//! };
//! // Write-ahead: record as pending, broadcast, then mark active.
//! store.record(&OrderMetadata::new(order, OrderStatus::Pending, now())).await?;
//! store
//!     .transition(
//!         &TransitionRequest::new(&id, &[OrderStatus::Pending], OrderStatus::Active)
//!             .tx_hash("A1B2C3"),
//!     )
//!     .await?;
//! // Later, in any process: read it back and claim it for cancelling.
//! let claimed = store.claim_for_cancel(&id).await?;
//! assert_eq!(claimed.status, OrderStatus::Cancelling);
//! assert_eq!(claimed.good_til, GoodTil::Block(1_000));
//! // A second canceller loses, and learns why.
//! let err = store.claim_for_cancel(&id).await.unwrap_err();
//! assert_eq!(err.current_status(), Some(OrderStatus::Cancelling));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod backend;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod memory;
mod model;
mod order_id;
mod status;
mod store;
mod update;

pub use error::{BoxError, ErrorKind, StoreError};
pub use memory::MemoryStore;
pub use model::{
    GoodTil, HistoryEntry, Lease, MAX_INDEXER_ID_LEN, MAX_LABEL_LEN, MAX_LEASE_TOKEN_LEN,
    MAX_ORDER_ID_LEN, NewOrder, OrderMetadata, OrderType, Side, check_filled_quantity,
    check_indexer_id, check_label, from_micros, now, to_micros, truncate_micros,
};
pub use order_id::{
    ORDER_FLAGS_CONDITIONAL, ORDER_FLAGS_LONG_TERM, ORDER_FLAGS_SHORT_TERM, ORDER_FLAGS_TWAP,
    ORDER_FLAGS_TWAP_SUBORDER, OrderId,
};
pub use status::{OrderStatus, UnknownStatus};
pub use store::{
    ANONYMOUS_CLAIM, DEFAULT_LEASE, DEFAULT_PAGE_SIZE, EXPIRE_REASON, ExpireRequest, InvalidRecord,
    LeaseCondition, ListQuery, MAX_PAGE_SIZE, MetadataStore, MetadataStoreExt, Page,
    TransitionRequest,
};
pub use update::{ClientIdKey, FieldPatch, UpdateRequest, is_newer};
