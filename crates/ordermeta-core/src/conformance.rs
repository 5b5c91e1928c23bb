//! The behaviour every [`MetadataStore`] must show, as plain async functions.
//!
//! Each function takes an **empty** store, panics (like `assert!`) on the first deviation, and
//! leaves data behind for the caller to clean up. A backend crate runs the whole suite with
//! [`conformance_tests!`](crate::conformance_tests) against a real server; a new backend is
//! done when the suite passes.
//!
//! ```
//! use std::sync::Arc;
//! use ordermeta_core::MemoryStore;
//! use ordermeta_core::conformance::TestStore;
//!
//! async fn setup() -> TestStore {
//!     // A real backend connects to a fresh, isolated schema or namespace here, and passes
//!     // its removal to `TestStore::with_cleanup`.
//!     TestStore::new(Arc::new(MemoryStore::new()))
//! }
//! ordermeta_core::conformance_tests!(setup);
//! # fn main() {}
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::error::{ErrorKind, StoreError};
use crate::model::{GoodTil, NewOrder, OrderMetadata, OrderType, Side};
use crate::order_id::{ORDER_FLAGS_CONDITIONAL, ORDER_FLAGS_LONG_TERM, OrderId};
use crate::status::OrderStatus;
use crate::store::{
    EXPIRE_REASON, ExpireRequest, ListQuery, MetadataStore, MetadataStoreExt, Page,
    TransitionRequest,
};

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

/// Generates one `#[tokio::test]` per conformance function plus the model-based property
/// test, each on a fresh store from `$setup` (an `async fn() -> TestStore`).
///
/// The calling crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($setup:path) => {
        $crate::conformance_tests!(@each $setup;
            round_trip, record_many_all_or_nothing, duplicate_ids, legal_transitions,
            illegal_transitions, transition_patch_and_conflicts, paging, list_filters,
            expire_by_height, expire_by_time, purge, claim_race, health);
        #[test]
        fn conformance_model_based() {
            $crate::conformance::model_based($setup, $crate::conformance::MODEL_CASES);
        }
    };
    (@each $setup:path; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $setup()
                    .await
                    .run(|s| async move { $crate::conformance::$name(&*s).await })
                    .await;
            }
        )*
    };
}

/// Cases the model-based test runs by default (`ORDERMETA_MODEL_CASES` overrides).
pub const MODEL_CASES: u32 = 48;

// ---------------------------------------------------------------------------------------
// Fixtures

/// A fixed, microsecond-precise base time for deterministic records.
pub fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600, 123_456_000)
        .single()
        .unwrap_or_default()
}

const OWNER_A: &str = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn";
const OWNER_B: &str = "dydx1zg69v7ys40x77y352eufp27daufrg4ncnjqz7q";

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

/// A valid long-term (stateful) order record in `status`.
pub fn long_term(order_id: &str, status: OrderStatus, good_til_time: u32) -> OrderMetadata {
    let mut m = short_term(order_id, status, 0);
    m.dydx_order_id.order_flags = ORDER_FLAGS_LONG_TERM;
    m.good_til = GoodTil::BlockTime(good_til_time);
    m
}

fn kind<T>(r: &Result<T, StoreError>) -> Option<ErrorKind> {
    r.as_ref().err().map(StoreError::kind)
}

async fn must_get(store: &dyn MetadataStore, id: &str) -> OrderMetadata {
    match store.get(id).await {
        Ok(Some(m)) => m,
        other => panic!("get({id}) = {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The suite

/// Every field survives a write and a read: unicode symbols, `u32::MAX` ids, no price, both
/// good-til kinds, every order type, hashes, and a long history.
pub async fn round_trip(store: &dyn MetadataStore) {
    let mut records = Vec::new();
    let mut a = short_term("rt-short", OrderStatus::Pending, u32::MAX);
    a.dydx_order_id.client_id = u32::MAX;
    a.dydx_order_id.subaccount_number = u32::MAX;
    a.dydx_order_id.clob_pair_id = u32::MAX;
    a.symbol = "ÉTH-USD 🚀 市场".to_owned();
    a.price = None;
    a.order_type = OrderType::Market;
    a.side = Side::Sell;
    a.quantity = "123456789012345678901234567890.000000000000000001".to_owned();
    records.push(a);
    let mut b = long_term("rt-long/ünïcödé id", OrderStatus::Active, u32::MAX);
    b.dydx_order_id.owner = OWNER_B.to_owned();
    b.dydx_order_id.order_flags = ORDER_FLAGS_CONDITIONAL;
    b.order_type = OrderType::TakeProfitMarket;
    b.tx_hash = Some("A1B2C3".repeat(10));
    b.cancel_tx_hash = Some("ff".to_owned());
    b.cancelled_at = Some(t0() + Duration::microseconds(1));
    records.push(b);
    for (i, ot) in OrderType::ALL.into_iter().enumerate() {
        let mut m = short_term(&format!("rt-type-{i}"), OrderStatus::Active, i as u32);
        m.order_type = ot;
        m.dydx_order_id.client_id = i as u32;
        records.push(m);
    }
    for m in &records {
        store.record(m).await.expect("record");
    }
    for m in &records {
        assert_eq!(
            &must_get(store, &m.order_id).await,
            m,
            "round trip of {}",
            m.order_id
        );
    }

    // A long history: 60 transitions between active and cancelling.
    let id = "rt-type-1";
    let mut expected = must_get(store, id).await;
    for i in 0..60u32 {
        let (from, to) = if i % 2 == 0 {
            (OrderStatus::Active, OrderStatus::Cancelling)
        } else {
            (OrderStatus::Cancelling, OrderStatus::Active)
        };
        let req = TransitionRequest::new(id, &[from], to)
            .at(t0() + Duration::milliseconds(i64::from(i) + 1))
            .reason(format!("step {i} — ü"));
        req.apply(&mut expected);
        let got = store.transition(&req).await.expect("transition");
        assert_eq!(got, expected, "transition {i} returns the updated record");
    }
    assert_eq!(expected.history.len(), 61);
    assert_eq!(
        must_get(store, id).await,
        expected,
        "long history reads back"
    );
    let page = store
        .list(&ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert!(page.invalid.is_empty());
    assert_eq!(page.items.len(), records.len());
    assert!(page.items.contains(&expected), "list returns full records");
}

/// `record_many` writes all or nothing.
pub async fn record_many_all_or_nothing(store: &dyn MetadataStore) {
    store.record_many(&[]).await.expect("empty batch is fine");
    let batch: Vec<_> = (0..50)
        .map(|i| short_term(&format!("rm-{i:03}"), OrderStatus::Pending, 100 + i))
        .collect();
    store.record_many(&batch).await.expect("record_many");
    for m in &batch {
        assert_eq!(&must_get(store, &m.order_id).await, m);
    }
    // One existing id poisons the whole batch.
    let mut clash = vec![short_term("rm-new-1", OrderStatus::Pending, 1)];
    clash.push(short_term("rm-007", OrderStatus::Active, 1));
    clash.push(short_term("rm-new-2", OrderStatus::Pending, 1));
    let r = store.record_many(&clash).await;
    assert_eq!(kind(&r), Some(ErrorKind::AlreadyExists), "{r:?}");
    assert_eq!(store.get("rm-new-1").await.expect("get"), None);
    assert_eq!(store.get("rm-new-2").await.expect("get"), None);
    assert_eq!(must_get(store, "rm-007").await.status, OrderStatus::Pending);
    // A duplicate inside the batch.
    let dup = vec![
        short_term("rm-dup", OrderStatus::Pending, 1),
        short_term("rm-dup", OrderStatus::Active, 2),
    ];
    let r = store.record_many(&dup).await;
    assert_eq!(kind(&r), Some(ErrorKind::AlreadyExists), "{r:?}");
    assert_eq!(store.get("rm-dup").await.expect("get"), None);
    // An invalid record.
    let mut bad = short_term("rm-bad", OrderStatus::Pending, 1);
    bad.quantity = "1e9".to_owned();
    let r = store
        .record_many(&[short_term("rm-ok", OrderStatus::Pending, 1), bad])
        .await;
    assert_eq!(kind(&r), Some(ErrorKind::InvalidMetadata), "{r:?}");
    assert_eq!(store.get("rm-ok").await.expect("get"), None);
}

/// A taken id is `AlreadyExists` and the original is untouched; invalid records are refused.
pub async fn duplicate_ids(store: &dyn MetadataStore) {
    let first = short_term("dup-1", OrderStatus::Pending, 10);
    store.record(&first).await.expect("record");
    let second = long_term("dup-1", OrderStatus::Active, 99);
    let r = store.record(&second).await;
    match &r {
        Err(StoreError::AlreadyExists { order_id }) => assert_eq!(order_id, "dup-1"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(must_get(store, "dup-1").await, first);

    let mut invalid = Vec::new();
    let mut m = short_term("", OrderStatus::Pending, 1);
    invalid.push(m.clone());
    m.order_id = "x".repeat(crate::model::MAX_ORDER_ID_LEN + 1);
    invalid.push(m);
    let mut m = short_term("inv-gt", OrderStatus::Pending, 1);
    m.good_til = GoodTil::BlockTime(5);
    invalid.push(m);
    let mut m = long_term("inv-gt2", OrderStatus::Pending, 1);
    m.good_til = GoodTil::Block(5);
    invalid.push(m);
    let mut m = short_term("inv-price", OrderStatus::Pending, 1);
    m.price = Some("NaN".to_owned());
    invalid.push(m);
    let mut m = short_term("inv-hist", OrderStatus::Pending, 1);
    m.status = OrderStatus::Active;
    invalid.push(m);
    for m in invalid {
        let r = store.record(&m).await;
        assert_eq!(
            kind(&r),
            Some(ErrorKind::InvalidMetadata),
            "{}: {r:?}",
            m.order_id
        );
        if !m.order_id.is_empty() && m.order_id.len() <= crate::model::MAX_ORDER_ID_LEN {
            assert_eq!(store.get(&m.order_id).await.expect("get"), None);
        }
    }
    assert_eq!(store.get("never-recorded").await.expect("get"), None);
}

/// Every legal transition succeeds and does exactly what [`TransitionRequest::apply`] says.
pub async fn legal_transitions(store: &dyn MetadataStore) {
    for from in OrderStatus::ALL {
        for &to in from.successors() {
            let id = format!("legal-{from}-{to}");
            let rec = short_term(&id, from, 50);
            store.record(&rec).await.expect("record");
            let req = TransitionRequest::new(&id, &[from], to)
                .at(t0() + Duration::seconds(5))
                .reason(format!("{from} to {to}"));
            let mut expected = rec.clone();
            req.apply(&mut expected);
            let got = store.transition(&req).await.expect("legal transition");
            assert_eq!(got, expected, "{from} -> {to}");
            assert_eq!(got.version, 2);
            assert_eq!(must_get(store, &id).await, expected);
        }
    }
}

/// Every transition outside the table is `IllegalTransition` and changes nothing, even when
/// mixed into a set of otherwise legal starting statuses.
pub async fn illegal_transitions(store: &dyn MetadataStore) {
    for from in OrderStatus::ALL {
        for to in OrderStatus::ALL {
            if from.can_transition_to(to) {
                continue;
            }
            let id = format!("illegal-{from}-{to}");
            let rec = short_term(&id, from, 50);
            store.record(&rec).await.expect("record");
            let r = store
                .transition(&TransitionRequest::new(&id, &[from], to))
                .await;
            match r {
                Err(StoreError::IllegalTransition { from: f, to: t }) => {
                    assert_eq!((f, t), (from, to));
                }
                other => panic!("{from} -> {to}: expected IllegalTransition, got {other:?}"),
            }
            assert_eq!(
                must_get(store, &id).await,
                rec,
                "{from} -> {to} changed the record"
            );
        }
    }
    // Mixed: one legal and one illegal starting status is still illegal.
    store
        .record(&short_term("illegal-mixed", OrderStatus::Active, 5))
        .await
        .expect("record");
    let r = store
        .transition(&TransitionRequest::new(
            "illegal-mixed",
            &[OrderStatus::Active, OrderStatus::Filled],
            OrderStatus::Cancelling,
        ))
        .await;
    assert_eq!(kind(&r), Some(ErrorKind::IllegalTransition), "{r:?}");
    let r = store
        .transition(&TransitionRequest::new(
            "illegal-mixed",
            &[],
            OrderStatus::Cancelling,
        ))
        .await;
    assert_eq!(kind(&r), Some(ErrorKind::InvalidMetadata), "{r:?}");
}

/// Patches set only what they name; conflicts report the current status; unknown ids are
/// `NotFound`.
pub async fn transition_patch_and_conflicts(store: &dyn MetadataStore) {
    let id = "patch-1";
    store
        .record(&short_term(id, OrderStatus::Pending, 100))
        .await
        .expect("record");
    let t1 = t0() + Duration::seconds(1);
    let got = store
        .transition(
            &TransitionRequest::new(id, &[OrderStatus::Pending], OrderStatus::Active)
                .at(t1)
                .tx_hash("PLACEHASH"),
        )
        .await
        .expect("activate");
    assert_eq!(got.tx_hash.as_deref(), Some("PLACEHASH"));
    assert_eq!(got.updated_at, t1);
    assert_eq!(got.placed_at, t0());
    assert_eq!(got.cancelled_at, None);
    assert_eq!(got.history.last().map(|h| h.reason.clone()), Some(None));

    // Wrong expected status: conflict carrying the current one, nothing changes.
    let r = store
        .transition(&TransitionRequest::new(
            id,
            &[OrderStatus::Pending],
            OrderStatus::Failed,
        ))
        .await;
    assert_eq!(
        r.as_ref().err().and_then(StoreError::current_status),
        Some(OrderStatus::Active),
        "{r:?}"
    );
    assert_eq!(must_get(store, id).await, got);

    let t2 = t0() + Duration::seconds(2);
    let got = store
        .transition(
            &TransitionRequest::new(
                id,
                &[OrderStatus::Active, OrderStatus::Cancelling],
                OrderStatus::Cancelled,
            )
            .at(t2)
            .cancel_tx_hash("CANCELHASH")
            .reason("cancel accepted"),
        )
        .await
        .expect("cancel");
    assert_eq!(got.status, OrderStatus::Cancelled);
    assert_eq!(
        got.tx_hash.as_deref(),
        Some("PLACEHASH"),
        "unnamed fields stay"
    );
    assert_eq!(got.cancel_tx_hash.as_deref(), Some("CANCELHASH"));
    assert_eq!(got.cancelled_at, Some(t2));
    assert_eq!(got.version, 3);
    assert_eq!(got.history.len(), 3);

    let r = store
        .transition(&TransitionRequest::new(
            "no-such-order",
            &[OrderStatus::Active],
            OrderStatus::Cancelling,
        ))
        .await;
    match r {
        Err(StoreError::NotFound { order_id }) => assert_eq!(order_id, "no-such-order"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Keyset paging visits every matching record exactly once, in byte order.
pub async fn paging(store: &dyn MetadataStore) {
    let statuses = [
        OrderStatus::Active,
        OrderStatus::Pending,
        OrderStatus::Filled,
    ];
    let mut all = Vec::new();
    for i in 0..25u32 {
        // Out-of-order ids and a mixed-case one exercise byte ordering.
        let id = format!(
            "{}page-{:03}",
            if i % 5 == 0 { "P" } else { "p" },
            (i * 7) % 25
        );
        all.push(short_term(&id, statuses[(i % 3) as usize], i));
    }
    store.record_many(&all).await.expect("record_many");
    let mut ids: Vec<String> = all.iter().map(|m| m.order_id.clone()).collect();
    ids.sort();

    for limit in [1u32, 7, 25, 26, 1000] {
        let mut seen = Vec::new();
        let mut q = ListQuery {
            limit,
            ..ListQuery::default()
        };
        let mut pages = 0;
        loop {
            let page = store.list(&q).await.expect("list");
            pages += 1;
            assert!(page.items.len() <= limit as usize);
            assert!(page.invalid.is_empty());
            seen.extend(page.items.iter().map(|m| m.order_id.clone()));
            match page.next {
                Some(next) => {
                    assert_eq!(
                        Some(&next),
                        seen.last(),
                        "cursor is the last id of the page"
                    );
                    q.after = Some(next);
                }
                None => break,
            }
            assert!(pages <= 30, "paging does not terminate");
        }
        assert_eq!(seen, ids, "limit {limit}");
        assert_eq!(
            pages,
            ids.len().div_ceil(limit as usize).max(1),
            "limit {limit}"
        );
    }
    // Limit 0 is clamped to 1.
    let page = store
        .list(&ListQuery {
            limit: 0,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    // A cursor that is not an id still works (strictly greater).
    let page = store
        .list(&ListQuery::default().after("p"))
        .await
        .expect("list");
    assert!(page.items.iter().all(|m| m.order_id.as_str() > "p"));
    assert_eq!(
        page.items.len(),
        ids.iter().filter(|i| i.as_str() > "p").count()
    );
    // Filtered paging.
    let q = ListQuery {
        statuses: vec![OrderStatus::Active],
        limit: 3,
        ..ListQuery::default()
    };
    let got = store.list_all(&q).await.expect("list_all");
    let want: Vec<_> = ids
        .iter()
        .filter(|i| {
            all.iter()
                .any(|m| &&m.order_id == i && m.status == OrderStatus::Active)
        })
        .cloned()
        .collect();
    assert_eq!(
        got.items
            .iter()
            .map(|m| m.order_id.clone())
            .collect::<Vec<_>>(),
        want
    );
}

/// Filters by status set, owner, subaccount and symbol, alone and combined.
pub async fn list_filters(store: &dyn MetadataStore) {
    let mut recs = Vec::new();
    for i in 0..12u32 {
        let mut m = short_term(&format!("f-{i:02}"), OrderStatus::ALL[(i % 7) as usize], i);
        if i % 2 == 1 {
            m.dydx_order_id.owner = OWNER_B.to_owned();
        }
        m.dydx_order_id.subaccount_number = i % 3;
        m.symbol = if i % 4 == 0 { "ΞTH-USD" } else { "BTC-USD" }.to_owned();
        recs.push(m);
    }
    store.record_many(&recs).await.expect("record_many");
    let queries = [
        ListQuery {
            statuses: vec![OrderStatus::Active, OrderStatus::Pending],
            ..ListQuery::default()
        },
        ListQuery {
            owner: Some(OWNER_B.to_owned()),
            ..ListQuery::default()
        },
        ListQuery {
            subaccount_number: Some(2),
            ..ListQuery::default()
        },
        ListQuery {
            symbol: Some("ΞTH-USD".to_owned()),
            ..ListQuery::default()
        },
        ListQuery {
            owner: Some(OWNER_A.to_owned()),
            subaccount_number: Some(0),
            symbol: Some("ΞTH-USD".to_owned()),
            ..ListQuery::default()
        },
        ListQuery {
            owner: Some("dydx1nobody".to_owned()),
            ..ListQuery::default()
        },
    ];
    for q in queries {
        let got = store.list(&q).await.expect("list");
        let want: Vec<_> = recs.iter().filter(|m| q.matches(m)).cloned().collect();
        assert_eq!(got.items, want, "{q:?}");
        assert_eq!(got.next, None);
    }
}

async fn check_expired(
    store: &dyn MetadataStore,
    id: &str,
    at: DateTime<Utc>,
    from: &OrderMetadata,
) {
    let m = must_get(store, id).await;
    assert_eq!(m.status, OrderStatus::Expired, "{id}");
    assert_eq!(m.updated_at, at, "{id}");
    assert_eq!(m.version, from.version + 1, "{id}");
    let last = m.history.last().expect("history");
    assert_eq!(last.reason.as_deref(), Some(EXPIRE_REASON));
    assert_eq!(last.at, at);
}

/// Open short-term orders expire once the height reaches their good-til block.
pub async fn expire_by_height(store: &dyn MetadataStore) {
    let recs = vec![
        short_term("eh-pending", OrderStatus::Pending, 100),
        short_term("eh-active", OrderStatus::Active, 100),
        short_term("eh-cancelling", OrderStatus::Cancelling, 99),
        short_term("eh-later", OrderStatus::Active, 101),
        short_term("eh-cancelled", OrderStatus::Cancelled, 10),
        short_term("eh-filled", OrderStatus::Filled, 10),
        long_term("eh-stateful", OrderStatus::Active, 100),
    ];
    store.record_many(&recs).await.expect("record_many");
    let at = t0() + Duration::seconds(30);
    let n = store
        .expire(&ExpireRequest::new(Some(99), None).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 1, "only eh-cancelling (GTB 99) at height 99");
    let n = store
        .expire(&ExpireRequest::new(Some(100), None).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 2);
    for r in &recs[..3] {
        check_expired(store, &r.order_id, at, r).await;
    }
    for r in &recs[3..] {
        assert_eq!(
            &must_get(store, &r.order_id).await,
            r,
            "{} untouched",
            r.order_id
        );
    }
    let n = store
        .expire(&ExpireRequest::new(Some(100), None).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 0, "idempotent");
    let n = store
        .expire(&ExpireRequest::new(None, None).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 0, "no clock, no expiry");
}

/// Open stateful orders expire once the block time reaches their good-til time.
pub async fn expire_by_time(store: &dyn MetadataStore) {
    let recs = vec![
        long_term("et-active", OrderStatus::Active, 1_000),
        long_term("et-pending", OrderStatus::Pending, 999),
        long_term("et-later", OrderStatus::Active, 1_001),
        long_term("et-failed", OrderStatus::Failed, 1),
        short_term("et-short", OrderStatus::Active, 1),
    ];
    store.record_many(&recs).await.expect("record_many");
    let at = t0() + Duration::seconds(60);
    let n = store
        .expire(&ExpireRequest::new(None, Some(1_000)).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 2);
    for r in &recs[..2] {
        check_expired(store, &r.order_id, at, r).await;
    }
    for r in &recs[2..] {
        assert_eq!(
            &must_get(store, &r.order_id).await,
            r,
            "{} untouched",
            r.order_id
        );
    }
    // Both clocks at once.
    let n = store
        .expire(&ExpireRequest::new(Some(1), Some(u32::MAX)).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 2, "et-later by time and et-short by height");
}

/// Purge deletes terminal records last updated before the cut-off, and nothing else.
pub async fn purge(store: &dyn MetadataStore) {
    let mut recs = Vec::new();
    for (i, st) in OrderStatus::ALL.into_iter().enumerate() {
        recs.push(short_term(&format!("pg-old-{i}"), st, 1));
        let mut m = short_term(&format!("pg-new-{i}"), st, 1);
        m.updated_at = t0() + Duration::days(2);
        m.history[0].at = m.updated_at;
        recs.push(m);
    }
    store.record_many(&recs).await.expect("record_many");
    let cut = t0() + Duration::days(1);
    let n = store.purge(cut).await.expect("purge");
    assert_eq!(n, 4, "the four terminal statuses, old ones only");
    for r in &recs {
        let gone = r.status.is_terminal() && r.updated_at < cut;
        assert_eq!(
            store.get(&r.order_id).await.expect("get").is_none(),
            gone,
            "{}",
            r.order_id
        );
    }
    assert_eq!(store.purge(cut).await.expect("purge"), 0);
    // Exactly at the cut-off is kept (strictly older only).
    assert_eq!(
        store.purge(t0() + Duration::days(2)).await.expect("purge"),
        0
    );
    assert_eq!(
        store
            .purge(t0() + Duration::days(2) + Duration::microseconds(1))
            .await
            .expect("purge"),
        4
    );
}

/// 32 concurrent claims of one order: exactly one wins, every other sees `cancelling`.
pub async fn claim_race(store: &dyn MetadataStore) {
    for round in 0..3 {
        let id = format!("race-{round}");
        store
            .record(&short_term(&id, OrderStatus::Active, 100))
            .await
            .expect("record");
        let results = futures::future::join_all((0..32).map(|_| store.claim_for_cancel(&id))).await;
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "exactly one claim wins: {results:?}");
        for r in results.iter().filter(|r| r.is_err()) {
            assert_eq!(
                r.as_ref().err().and_then(StoreError::current_status),
                Some(OrderStatus::Cancelling),
                "{r:?}"
            );
        }
        let m = must_get(store, &id).await;
        assert_eq!(
            (m.status, m.version, m.history.len()),
            (OrderStatus::Cancelling, 2, 2)
        );
    }
}

/// `health` answers Ok on a working store.
pub async fn health(store: &dyn MetadataStore) {
    store.health().await.expect("health");
}

// ---------------------------------------------------------------------------------------
// Model-based test

/// One operation of the model-based test.
#[derive(Clone, Debug)]
pub enum Op {
    /// [`MetadataStore::record`].
    Record(OrderMetadata),
    /// [`MetadataStore::record_many`].
    RecordMany(Vec<OrderMetadata>),
    /// [`MetadataStore::get`].
    Get(String),
    /// [`MetadataStore::transition`].
    Transition(TransitionRequest),
    /// [`MetadataStore::list`].
    List(ListQuery),
    /// [`MetadataStore::expire`].
    Expire(ExpireRequest),
    /// [`MetadataStore::purge`].
    Purge(DateTime<Utc>),
}

const IDS: [&str; 6] = ["m-a", "m-b", "m-c", "M-d", "m-é", "m-f/1"];

fn arb_status() -> impl Strategy<Value = OrderStatus> {
    proptest::sample::select(OrderStatus::ALL.to_vec())
}

fn arb_time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..200).prop_map(|s| t0() + Duration::seconds(s))
}

fn arb_record() -> impl Strategy<Value = OrderMetadata> {
    (
        proptest::sample::select(IDS.to_vec()),
        arb_status(),
        any::<bool>(),
        0u32..40,
        proptest::sample::select(vec![OWNER_A, OWNER_B]),
        0u32..3,
        proptest::sample::select(vec!["BTC-USD", "ΞTH-USD"]),
        proptest::option::of(Just("1.5".to_owned())),
        arb_time(),
    )
        .prop_map(|(id, st, stateful, gt, owner, sub, sym, price, at)| {
            let mut m = if stateful {
                long_term(id, st, gt)
            } else {
                short_term(id, st, gt)
            };
            m.dydx_order_id.owner = owner.to_owned();
            m.dydx_order_id.subaccount_number = sub;
            m.symbol = sym.to_owned();
            m.price = price;
            m.placed_at = at;
            m.updated_at = at;
            m.history[0].at = at;
            m
        })
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => arb_record().prop_map(Op::Record),
        1 => proptest::collection::vec(arb_record(), 0..4).prop_map(Op::RecordMany),
        2 => proptest::sample::select(IDS.to_vec()).prop_map(|s| Op::Get(s.to_owned())),
        6 => (
            proptest::sample::select(IDS.to_vec()),
            proptest::collection::vec(arb_status(), 1..3),
            arb_status(),
            arb_time(),
            proptest::option::of("[a-z ]{0,8}"),
            proptest::option::of("[A-F0-9]{4}"),
            proptest::option::of("[A-F0-9]{4}"),
        )
            .prop_map(|(id, from, to, at, reason, tx, ctx)| {
                let mut r = TransitionRequest::new(id, &from, to).at(at);
                r.reason = reason;
                r.tx_hash = tx;
                r.cancel_tx_hash = ctx;
                Op::Transition(r)
            }),
        2 => (
            proptest::collection::vec(arb_status(), 0..3),
            proptest::option::of(proptest::sample::select(vec![OWNER_A, OWNER_B])),
            proptest::option::of(0u32..3),
            proptest::option::of(proptest::sample::select(vec!["BTC-USD", "ΞTH-USD"])),
            proptest::option::of(proptest::sample::select(IDS.to_vec())),
            0u32..5,
        )
            .prop_map(|(statuses, owner, sub, sym, after, limit)| {
                Op::List(ListQuery {
                    statuses,
                    owner: owner.map(str::to_owned),
                    subaccount_number: sub,
                    symbol: sym.map(str::to_owned),
                    after: after.map(str::to_owned),
                    limit,
                })
            }),
        1 => (proptest::option::of(0u32..45), proptest::option::of(0u32..45), arb_time())
            .prop_map(|(h, t, at)| Op::Expire(ExpireRequest::new(h, t).at(at))),
        1 => arb_time().prop_map(Op::Purge),
    ]
}

/// A store's answer reduced to what must match the model: values, or error kind and the
/// current status of a conflict.
#[derive(Debug, PartialEq)]
enum Answer {
    Unit,
    Got(Option<OrderMetadata>),
    Updated(OrderMetadata),
    Listed(Page),
    Count(u64),
    Error(ErrorKind, Option<OrderStatus>),
}

fn answer<T>(r: Result<T, StoreError>, ok: impl FnOnce(T) -> Answer) -> Answer {
    match r {
        Ok(v) => ok(v),
        Err(e) => Answer::Error(e.kind(), e.current_status()),
    }
}

async fn apply_op(store: &dyn MetadataStore, op: &Op) -> Answer {
    match op {
        Op::Record(m) => answer(store.record(m).await, |_| Answer::Unit),
        Op::RecordMany(ms) => answer(store.record_many(ms).await, |_| Answer::Unit),
        Op::Get(id) => answer(store.get(id).await, Answer::Got),
        Op::Transition(r) => answer(store.transition(r).await, Answer::Updated),
        Op::List(q) => answer(store.list(q).await, Answer::Listed),
        Op::Expire(r) => answer(store.expire(r).await, Answer::Count),
        Op::Purge(t) => answer(store.purge(*t).await, Answer::Count),
    }
}

/// Runs `cases` random operation sequences against a fresh store from `setup` and a
/// [`MemoryStore`](crate::MemoryStore) side by side; every answer must be identical, and so
/// must the final contents. Shrinks to a minimal failing sequence.
///
/// Call it from a plain `#[test]` (it runs its own Tokio runtime). `ORDERMETA_MODEL_CASES`
/// overrides `cases`.
pub fn model_based<S, Fut>(setup: S, cases: u32)
where
    S: Fn() -> Fut,
    Fut: Future<Output = TestStore>,
{
    let cases = std::env::var("ORDERMETA_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime for the model-based test");
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(arb_op(), 1..40), |ops| {
        rt.block_on(async {
            let under_test = setup().await;
            let model = crate::MemoryStore::new();
            let mut failure = None;
            under_test
                .run(|store| {
                    let (model, ops, failure) = (&model, &ops, &mut failure);
                    async move {
                        *failure = compare(&*store, model, ops).await.err();
                    }
                })
                .await;
            match failure {
                Some(msg) => Err(TestCaseError::fail(msg)),
                None => Ok(()),
            }
        })
    });
    if let Err(e) = result {
        panic!("store and MemoryStore disagree: {e}");
    }
}

async fn compare(
    store: &dyn MetadataStore,
    model: &dyn MetadataStore,
    ops: &[Op],
) -> Result<(), String> {
    for (i, op) in ops.iter().enumerate() {
        let got = apply_op(store, op).await;
        let want = apply_op(model, op).await;
        if got != want {
            return Err(format!(
                "op #{i} {op:?}: store answered {got:?}, model {want:?}"
            ));
        }
    }
    let q = ListQuery {
        limit: crate::store::MAX_PAGE_SIZE,
        ..ListQuery::default()
    };
    let got = store.list(&q).await.map_err(|e| e.to_string())?;
    let want = model.list(&q).await.map_err(|e| e.to_string())?;
    if got != want {
        return Err(format!(
            "final contents differ: store {got:?}, model {want:?}"
        ));
    }
    let ids: BTreeSet<_> = got.items.iter().map(|m| m.order_id.clone()).collect();
    if ids.len() != got.items.len() {
        return Err("list returned an id twice".to_owned());
    }
    Ok(())
}
