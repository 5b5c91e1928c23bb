//! The dYdX indexer, as ordermeta needs it: [`IndexerApi`] (a subaccount's orders, one order
//! by its indexer id, fills, the indexer's height and time, and the `v4_subaccounts` feed),
//! its types, and [`DydxIndexer`], the implementation over the unmodified `dydx` crate's
//! `IndexerClient` (REST in `rest.rs`, websocket in `ws.rs`). [`IndexerSync`] (in `sync.rs`,
//! with the rules of `apply.rs`) keeps the records true to what the indexer reports.
//!
//! The indexer's id of an order is a UUID v5 of its chain identity
//! ([`indexer_order_id`]); the indexer reports the order's exact `OrderId` parts and good-til,
//! so every report maps to exactly one record: the one [`order_key`](crate::order_key) names.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use ordermeta_core::{BoxError, GoodTil, OrderId, OrderType, Side};

mod apply;
mod rest;
mod sync;
#[cfg(test)]
mod tests;
mod ws;

pub use self::rest::{DEFAULT_INDEXER_TIMEOUT, DydxIndexer, IndexerOptions};
pub use self::sync::{IndexerSync, SyncConfig, SyncReport};

pub(crate) use self::apply::Applied;

/// The namespace of the indexer's UUID v5 ids (`indexer/packages/postgres/src/helpers/uuid.ts`
/// in dydxprotocol/v4-chain).
const INDEXER_UUID_NAMESPACE: uuid::Uuid = uuid::uuid!("0f9da948-a6fb-4c45-9edc-4685c3f3317d");

/// The indexer's id of a subaccount: UUID v5 of `"<owner>-<number>"`.
pub fn indexer_subaccount_id(owner: &str, number: u32) -> String {
    uuid::Uuid::new_v5(
        &INDEXER_UUID_NAMESPACE,
        format!("{owner}-{number}").as_bytes(),
    )
    .to_string()
}

/// The indexer's id of an order (what `GET /v4/orders/{id}` takes): UUID v5 of
/// `"<subaccount uuid>-<client id>-<clob pair>-<flags>"`, computed the way the indexer does.
/// It names the chain identity, not one placement: an order replaced with the same `OrderId`
/// keeps it.
pub fn indexer_order_id(id: &OrderId) -> String {
    let sub = indexer_subaccount_id(&id.owner, id.subaccount_number);
    uuid::Uuid::new_v5(
        &INDEXER_UUID_NAMESPACE,
        format!(
            "{sub}-{}-{}-{}",
            id.client_id, id.clob_pair_id, id.order_flags
        )
        .as_bytes(),
    )
    .to_string()
}

/// A subaccount, as the indexer names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexerSubaccount {
    /// Owner address (`dydx1…`).
    pub owner: String,
    /// Subaccount number.
    pub number: u32,
}

impl IndexerSubaccount {
    /// Subaccount `number` of `owner`.
    pub fn new(owner: impl Into<String>, number: u32) -> Self {
        IndexerSubaccount {
            owner: owner.into(),
            number,
        }
    }
}

impl fmt::Display for IndexerSubaccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.number)
    }
}

/// An order's status as the indexer reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IndexerOrderStatus {
    /// On the book (`OPEN`).
    Open,
    /// A short-term order the indexer saw opened, best effort (`BEST_EFFORT_OPENED`).
    BestEffortOpened,
    /// A conditional order not triggered yet (`UNTRIGGERED`): live, not on the book.
    Untriggered,
    /// Fully filled (`FILLED`).
    Filled,
    /// Removed by the chain: cancelled, expired or otherwise removed (`CANCELED`); final.
    Canceled,
    /// A short-term cancel gossiped but not yet final (`BEST_EFFORT_CANCELED`): the order may
    /// still fill until its good-til block.
    BestEffortCanceled,
}

impl IndexerOrderStatus {
    /// Whether the order may still rest on the book or trigger.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            IndexerOrderStatus::Open
                | IndexerOrderStatus::BestEffortOpened
                | IndexerOrderStatus::Untriggered
        )
    }

    /// The indexer's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            IndexerOrderStatus::Open => "OPEN",
            IndexerOrderStatus::BestEffortOpened => "BEST_EFFORT_OPENED",
            IndexerOrderStatus::Untriggered => "UNTRIGGERED",
            IndexerOrderStatus::Filled => "FILLED",
            IndexerOrderStatus::Canceled => "CANCELED",
            IndexerOrderStatus::BestEffortCanceled => "BEST_EFFORT_CANCELED",
        }
    }
}

impl fmt::Display for IndexerOrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One order as the indexer reports it (REST, the feed's snapshot, or an update).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexerOrder {
    /// The indexer's id (see [`indexer_order_id`]).
    pub indexer_id: String,
    /// The chain identity.
    pub order_id: OrderId,
    /// The good-til, when reported (an update may leave it out).
    pub good_til: Option<GoodTil>,
    /// The status.
    pub status: IndexerOrderStatus,
    /// How much has filled, exact decimal text, when reported.
    pub total_filled: Option<String>,
    /// The order's size, exact decimal text, when reported.
    pub size: Option<String>,
    /// The limit price, exact decimal text, when reported.
    pub price: Option<String>,
    /// Buy or sell, when reported.
    pub side: Option<Side>,
    /// The market's ticker (`BTC-USD`), when reported.
    pub ticker: Option<String>,
    /// The order type, when reported and one ordermeta records.
    pub order_type: Option<OrderType>,
    /// Why the chain removed the order (`ORDER_REMOVAL_REASON_EXPIRED`, …): websocket
    /// updates only.
    pub removal_reason: Option<String>,
    /// The block of the last change, when reported.
    pub height: Option<u32>,
}

impl IndexerOrder {
    /// Whether the chain removed the order because its good-til passed.
    pub fn removed_as_expired(&self) -> bool {
        self.removal_reason
            .as_deref()
            .is_some_and(|r| r.contains("EXPIRED"))
    }
}

/// A fill of one of the subaccount's orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexerFill {
    /// The fill's id.
    pub id: String,
    /// The indexer id of the order that filled, when reported.
    pub order_indexer_id: Option<String>,
    /// Size filled, exact decimal text.
    pub size: String,
    /// Block of the fill.
    pub height: u32,
}

/// The indexer's latest block: its height and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexerClock {
    /// Latest block height the indexer processed.
    pub height: u32,
    /// That block's time.
    pub time: DateTime<Utc>,
}

impl IndexerClock {
    /// Whether `good_til` has passed at this block.
    pub fn has_passed(&self, good_til: GoodTil) -> bool {
        let secs = u32::try_from(self.time.timestamp().max(0)).unwrap_or(u32::MAX);
        good_til.is_expired(Some(self.height), Some(secs))
    }
}

/// What the `v4_subaccounts` feed of one subaccount delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEvent {
    /// The `subscribed` message: the subaccount's open orders at `height`. A second one on
    /// the same stream means the connection was re-established underneath: updates may have
    /// been lost in between.
    Snapshot {
        /// The subaccount.
        subaccount: IndexerSubaccount,
        /// Its open orders.
        orders: Vec<IndexerOrder>,
        /// The block of the snapshot.
        height: u32,
    },
    /// A `channel_data` message: order updates and fills.
    Update {
        /// The subaccount.
        subaccount: IndexerSubaccount,
        /// Changed orders.
        orders: Vec<IndexerOrder>,
        /// New fills.
        fills: Vec<IndexerFill>,
        /// The block, when reported.
        height: Option<u32>,
    },
}

/// A subscription to the feed: ends when the connection is lost for good.
pub type FeedStream = BoxStream<'static, FeedEvent>;

/// What an indexer call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexerError {
    /// The indexer could not be reached, answered with an error status, or the feed's
    /// connection failed.
    #[error("indexer unavailable: {source}")]
    Unavailable {
        /// Cause.
        #[source]
        source: BoxError,
    },
    /// The call did not complete within its deadline.
    #[error("indexer call `{operation}` did not complete within {after:?}")]
    Timeout {
        /// The call.
        operation: &'static str,
        /// The deadline it missed.
        after: Duration,
    },
    /// The indexer answered with something ordermeta cannot read.
    #[error("unreadable indexer answer to `{operation}`: {reason}")]
    Invalid {
        /// The call.
        operation: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// What ordermeta needs from the dYdX indexer. Mock it with `MockIndexerApi` (feature
/// `mock`) to test logic; use [`DydxIndexer`] for a real indexer.
///
/// Every call must complete or fail within a deadline ([`IndexerError::Timeout`]): callers
/// add none of their own.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait IndexerApi: Send + Sync + 'static {
    /// The subaccount's open orders (open, best-effort opened, untriggered).
    async fn open_orders(
        &self,
        subaccount: &IndexerSubaccount,
    ) -> Result<Vec<IndexerOrder>, IndexerError>;

    /// The subaccount's most recently changed orders, any status, at most `limit`.
    async fn latest_orders(
        &self,
        subaccount: &IndexerSubaccount,
        limit: u32,
    ) -> Result<Vec<IndexerOrder>, IndexerError>;

    /// One order of `owner` by its indexer id; `Ok(None)` if the indexer does not know it.
    /// (The indexer's answer names the subaccount by number only: the owner is the caller's.)
    async fn order(
        &self,
        owner: &str,
        indexer_id: &str,
    ) -> Result<Option<IndexerOrder>, IndexerError>;

    /// The subaccount's fills made after block `after_height`, at most `limit`, newest first.
    async fn fills_since(
        &self,
        subaccount: &IndexerSubaccount,
        after_height: u32,
        limit: u32,
    ) -> Result<Vec<IndexerFill>, IndexerError>;

    /// The indexer's latest block height and time.
    async fn clock(&self) -> Result<IndexerClock, IndexerError>;

    /// Subscribes to the subaccount's `v4_subaccounts` feed. The first event is the
    /// [snapshot](FeedEvent::Snapshot).
    async fn subscribe(&self, subaccount: &IndexerSubaccount) -> Result<FeedStream, IndexerError>;
}

/// Exact decimal text (what the records store) of an indexer amount.
pub(crate) fn decimal_text(d: &bigdecimal::BigDecimal) -> String {
    d.normalized().to_plain_string()
}
