//! What every conformance function runs on: the [`TestStore`] harness, deterministic records
//! (also used by the stores' own tests: [`t0`], [`short_term`], [`long_term`]) and small
//! assertion helpers.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use futures::FutureExt as _;
use futures::future::BoxFuture;

use crate::error::{ErrorKind, StoreError};
use crate::model::{GoodTil, NewOrder, OrderMetadata, OrderType, Side};
use crate::order_id::{ORDER_FLAGS_LONG_TERM, OrderId};
use crate::status::OrderStatus;
use crate::store::MetadataStore;

/// A store under test plus what removes its data afterwards (drop a schema, delete keys).
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn MetadataStore>,
    cleanup: Option<BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore").finish_non_exhaustive()
    }
}

impl TestStore {
    /// A store that needs no cleanup.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        TestStore {
            store,
            cleanup: None,
        }
    }

    /// A store whose data `cleanup` removes; it runs even when the test body panics.
    pub fn with_cleanup(
        store: Arc<dyn MetadataStore>,
        cleanup: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        TestStore {
            store,
            cleanup: Some(Box::pin(cleanup)),
        }
    }

    /// Runs `body` on the store, then the cleanup, then re-raises a panic of `body`.
    pub async fn run<F, Fut>(self, body: F)
    where
        F: FnOnce(Arc<dyn MetadataStore>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let outcome = AssertUnwindSafe(body(self.store.clone()))
            .catch_unwind()
            .await;
        drop(self.store);
        if let Some(c) = self.cleanup {
            c.await;
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// A fixed, microsecond-precise base time for deterministic records.
pub fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600, 123_456_000)
        .single()
        .unwrap_or_default()
}

pub(super) const OWNER_A: &str = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn";
pub(super) const OWNER_B: &str = "dydx1zg69v7ys40x77y352eufp27daufrg4ncnjqz7q";

/// A valid short-term order record in `status`.
pub fn short_term(order_id: &str, status: OrderStatus, good_til_block: u32) -> OrderMetadata {
    OrderMetadata::new(
        NewOrder {
            order_id: order_id.to_owned(),
            dydx_order_id: OrderId {
                owner: OWNER_A.to_owned(),
                subaccount_number: 0,
                client_id: 7,
                order_flags: 0,
                clob_pair_id: 0,
            },
            good_til: GoodTil::Block(good_til_block),
            symbol: "BTC-USD".to_owned(),
            side: Side::Buy,
            quantity: "0.001".to_owned(),
            price: Some("65000.5".to_owned()),
            order_type: OrderType::Limit,
        },
        status,
        t0(),
    )
}

/// A valid short-term order record at the limits, which a store must keep exactly:
/// `u32::MAX` good-til-block and ids, a unicode symbol, no price, a market sell.
pub fn short_term_at_limits(order_id: &str, status: OrderStatus) -> OrderMetadata {
    let mut m = short_term(order_id, status, u32::MAX);
    m.dydx_order_id.client_id = u32::MAX;
    m.dydx_order_id.subaccount_number = u32::MAX;
    m.dydx_order_id.clob_pair_id = u32::MAX;
    m.symbol = "ÉTH-USD 🚀 市场".to_owned();
    m.price = None;
    m.order_type = OrderType::Market;
    m.side = Side::Sell;
    m
}

/// A valid long-term (stateful) order record in `status`.
pub fn long_term(order_id: &str, status: OrderStatus, good_til_time: u32) -> OrderMetadata {
    let mut m = short_term(order_id, status, 0);
    m.dydx_order_id.order_flags = ORDER_FLAGS_LONG_TERM;
    m.good_til = GoodTil::BlockTime(good_til_time);
    m
}

pub(super) fn kind<T>(r: &Result<T, StoreError>) -> Option<ErrorKind> {
    r.as_ref().err().map(StoreError::kind)
}

pub(super) async fn must_get(store: &dyn MetadataStore, id: &str) -> OrderMetadata {
    match store.get(id).await {
        Ok(Some(m)) => m,
        other => panic!("get({id}) = {other:?}"),
    }
}
