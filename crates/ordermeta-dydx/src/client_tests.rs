// Most tests need recording compiled in; the rollback build runs the recording-off ones.
#![cfg_attr(not(feature = "recording"), allow(dead_code, unused_imports))]
//! Unit tests of the placement and cancellation logic: a mocked gateway (mockall) over the
//! in-memory reference store.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dydx_proto::dydxprotocol::clob::{Order, order};
use ordermeta_core::{
    CancelErrorKind, ExpireRequest, GoodTil, ListQuery, MemoryStore, MetadataStore,
    MetadataStoreExt, NewOrder, OrderId, OrderMetadata, OrderStatus, OrderType, Page,
    RecordingSwitch, Side, StoreError, TransitionRequest, now,
};

use super::*;
use crate::gateway::{
    ChainClock, ChainError, GatewayError, MockOrderGateway, codes, to_proto_order_id,
};

const ME: &str = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn";
const OTHER: &str = "dydx1zg69v7ys40x77y352eufp27daufrg4ncnjqz7q";
const CLOCK: ChainClock = ChainClock {
    height: 100,
    block_time: 1_800_000_000,
};

/// A store that can be switched to fail like a database that is down, or to return corrupt
/// rows; otherwise the reference store.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    down: AtomicBool,
    corrupt: AtomicBool,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::backend("connection refused"));
        }
        Ok(())
    }
}

#[async_trait]
impl MetadataStore for FlakyStore {
    async fn record(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record(meta).await
    }
    async fn record_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_many(metas).await
    }
    async fn get(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
        self.check()?;
        if self.corrupt.load(Ordering::SeqCst) {
            return Err(StoreError::invalid(Some(order_id), "bad base64"));
        }
        self.inner.get(order_id).await
    }
    async fn transition(&self, req: &TransitionRequest) -> Result<OrderMetadata, StoreError> {
        self.check()?;
        self.inner.transition(req).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.check()?;
        self.inner.list(query).await
    }
    async fn expire(&self, req: &ExpireRequest) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.expire(req).await
    }
    async fn purge(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.purge(older_than).await
    }
    async fn health(&self) -> Result<(), StoreError> {
        self.check()
    }
}

fn oid(client_id: u32, flags: u32) -> OrderId {
    OrderId {
        owner: ME.into(),
        subaccount_number: 0,
        client_id,
        order_flags: flags,
        clob_pair_id: 1,
    }
}

fn built_order(id: &OrderId, good_til: Option<GoodTil>) -> Order {
    Order {
        order_id: Some(to_proto_order_id(id)),
        good_til_oneof: good_til.map(|g| match g {
            GoodTil::Block(b) => order::GoodTilOneof::GoodTilBlock(b),
            GoodTil::BlockTime(t) => order::GoodTilOneof::GoodTilBlockTime(t),
        }),
        ..Order::default()
    }
}

fn details() -> OrderDetails {
    OrderDetails {
        symbol: "ETH-USD".into(),
        side: Side::Sell,
        quantity: "0.5".into(),
        price: Some("3000.25".into()),
        order_type: OrderType::Limit,
    }
}

fn gateway() -> MockOrderGateway {
    let mut gw = MockOrderGateway::new();
    gw.expect_signer().return_const(ME.to_owned());
    gw
}

fn client_with(gw: MockOrderGateway, store: Arc<FlakyStore>, rate: u32) -> OrderMetaClient {
    OrderMetaClient::new(
        Arc::new(gw),
        store,
        RecordingSwitch::new(true),
        ChainSettings {
            cancel_rate_per_second: NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN),
            ..ChainSettings::default()
        },
    )
}

fn client(gw: MockOrderGateway, store: Arc<FlakyStore>) -> OrderMetaClient {
    client_with(gw, store, 10_000)
}

/// Records an order directly in `status` and returns its id.
async fn seed(store: &FlakyStore, id: &OrderId, good_til: GoodTil, status: OrderStatus) -> String {
    let key = order_key(id, good_til);
    let d = details();
    let meta = OrderMetadata::new(
        NewOrder {
            order_id: key.clone(),
            dydx_order_id: id.clone(),
            good_til,
            symbol: d.symbol,
            side: d.side,
            quantity: d.quantity,
            price: d.price,
            order_type: d.order_type,
        },
        status,
        now(),
    );
    store.record(&meta).await.expect("seed");
    key
}

fn rejected(codespace: &str, code: u32) -> GatewayError {
    GatewayError::Rejected(ChainError {
        codespace: codespace.into(),
        code,
        log: "refused".into(),
    })
}

async fn status(store: &FlakyStore, id: &str) -> OrderStatus {
    store.get_required(id).await.expect("get").status
}

// ----------------------------------------------------------------------------- place_order

#[cfg(feature = "recording")]
#[tokio::test]
async fn place_records_pending_before_broadcast_then_active() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(7, 0);
    let key = order_key(&id, GoodTil::Block(120));
    let mut gw = gateway();
    let seen = store.clone();
    let k = key.clone();
    gw.expect_place().times(1).returning(move |_| {
        // Write-ahead: the metadata is already there, pending, when the broadcast happens.
        let st = futures::executor::block_on(seen.get(&k))
            .expect("get")
            .map(|m| m.status);
        assert_eq!(st, Some(OrderStatus::Pending));
        Ok("PLACEHASH".into())
    });
    let c = client(gw, store.clone());
    let placed = c
        .place_order(built_order(&id, Some(GoodTil::Block(120))), details())
        .await
        .expect("place");
    assert_eq!(placed.order_id, key);
    assert_eq!(placed.order_id, format!("{ME}/0/1/0/7@b120"));
    assert!(placed.recorded);
    let m = store.get_required(&key).await.expect("get");
    assert_eq!(m.status, OrderStatus::Active);
    assert_eq!(m.tx_hash.as_deref(), Some("PLACEHASH"));
    assert_eq!(m.dydx_order_id, id);
    assert_eq!(m.good_til, GoodTil::Block(120));
    assert_eq!((m.symbol.as_str(), m.quantity.as_str()), ("ETH-USD", "0.5"));
    let steps: Vec<_> = m.history.iter().map(|h| h.status).collect();
    assert_eq!(steps, [OrderStatus::Pending, OrderStatus::Active]);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn place_with_store_down_broadcasts_nothing() {
    let store = Arc::new(FlakyStore::default());
    store.down.store(true, Ordering::SeqCst);
    let mut gw = gateway();
    gw.expect_place().times(0);
    let c = client(gw, store.clone());
    let err = c
        .place_order(
            built_order(&oid(1, 0), Some(GoodTil::Block(120))),
            details(),
        )
        .await
        .expect_err("must not place");
    assert!(matches!(err, PlaceError::Storage { .. }), "{err}");
    assert!(err.to_string().contains("not placed"), "{err}");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn place_rejected_marks_failed() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place()
        .times(1)
        .returning(|_| Err(rejected(codes::CODESPACE_CLOB, 11)));
    let c = client(gw, store.clone());
    let err = c
        .place_order(
            built_order(&oid(2, 0), Some(GoodTil::Block(500))),
            details(),
        )
        .await
        .expect_err("rejected");
    match err {
        PlaceError::Rejected { order_id, error } => {
            assert_eq!(error.code, 11);
            assert_eq!(status(&store, &order_id).await, OrderStatus::Failed);
        }
        other => panic!("{other}"),
    }
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn place_without_answer_stays_pending() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(1).returning(|_| {
        Err(GatewayError::Unavailable {
            source: "timeout".into(),
        })
    });
    let c = client(gw, store.clone());
    let err = c
        .place_order(
            built_order(&oid(3, 64), Some(GoodTil::BlockTime(1_800_000_500))),
            details(),
        )
        .await
        .expect_err("unknown");
    match err {
        PlaceError::Network { order_id, .. } => {
            assert_eq!(status(&store, &order_id).await, OrderStatus::Pending);
        }
        other => panic!("{other}"),
    }
}

/// Recording off: by the runtime switch, or in the rollback build (feature `recording` left
/// out), where even turning the switch on must leave it off.
fn off(c: &OrderMetaClient) {
    if RecordingSwitch::compiled_in() {
        c.recording().set(false);
    } else {
        c.recording().set(true);
        assert!(!c.recording().is_on());
    }
}

#[tokio::test]
async fn place_with_recording_off_behaves_as_before() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(1).returning(|_| Ok("H".into()));
    let c = client(gw, store.clone());
    off(&c);
    let placed = c
        .place_order(
            built_order(&oid(4, 0), Some(GoodTil::Block(120))),
            details(),
        )
        .await
        .expect("placed");
    assert!(!placed.recorded);
    assert!(store.inner.is_empty(), "nothing recorded");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn place_invalid_orders_touch_nothing() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(0);
    let c = client(gw, store.clone());
    let no_good_til = c
        .place_order(built_order(&oid(5, 0), None), details())
        .await;
    assert!(matches!(no_good_til, Err(PlaceError::InvalidOrder { .. })));
    // Short-term flags with a block time is inconsistent.
    let mismatched = c
        .place_order(
            built_order(&oid(5, 0), Some(GoodTil::BlockTime(5))),
            details(),
        )
        .await;
    assert!(matches!(mismatched, Err(PlaceError::InvalidOrder { .. })));
    let mut d = details();
    d.quantity = "1e3".into();
    let bad_qty = c
        .place_order(built_order(&oid(5, 0), Some(GoodTil::Block(120))), d)
        .await;
    assert!(matches!(bad_qty, Err(PlaceError::InvalidOrder { .. })));
    let no_id = c.place_order(Order::default(), details()).await;
    assert!(matches!(no_id, Err(PlaceError::InvalidOrder { .. })));
    assert!(store.inner.is_empty());
}

// ---------------------------------------------------------------------------- cancel_order

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_short_term_uses_stored_id_and_good_til() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(9, 0);
    let key = seed(&store, &id, GoodTil::Block(130), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let want = id.clone();
    gw.expect_cancel()
        .withf(move |i, g| *i == want && *g == GoodTil::Block(130))
        .times(1)
        .returning(|_, _| Ok("CANCELHASH".into()));
    let c = client(gw, store.clone());
    let done = c.cancel_order(&key).await.expect("cancel");
    assert_eq!(done.tx_hash, "CANCELHASH");
    assert!(done.recorded);
    let m = store.get_required(&key).await.expect("get");
    assert_eq!(m.status, OrderStatus::Cancelled);
    assert_eq!(m.cancel_tx_hash.as_deref(), Some("CANCELHASH"));
    assert!(m.cancelled_at.is_some());
    let steps: Vec<_> = m.history.iter().map(|h| h.status).collect();
    assert_eq!(
        steps,
        [
            OrderStatus::Active,
            OrderStatus::Cancelling,
            OrderStatus::Cancelled
        ]
    );
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_stateful_uses_stored_good_til_time() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(10, 64);
    let gt = GoodTil::BlockTime(CLOCK.block_time + 3600);
    let key = seed(&store, &id, gt, OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .withf(move |_, g| *g == gt)
        .times(1)
        .returning(|_, _| Ok("C".into()));
    let c = client(gw, store.clone());
    c.cancel_order(&key).await.expect("cancel");
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);
}

async fn expect_cancel_error(
    seed_status: Option<OrderStatus>,
    owner: &str,
    good_til: GoodTil,
    want: CancelErrorKind,
) -> (Arc<FlakyStore>, String) {
    let store = Arc::new(FlakyStore::default());
    let mut id = oid(11, if good_til.block().is_some() { 0 } else { 64 });
    id.owner = owner.to_owned();
    let key = match seed_status {
        Some(st) => seed(&store, &id, good_til, st).await,
        None => "unknown-order".to_owned(),
    };
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let err = c.cancel_order(&key).await.expect_err("must fail");
    assert_eq!(err.kind(), want, "{err}");
    assert_eq!(err.order_id(), key);
    (store, key)
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_refusals_send_nothing() {
    let gt = GoodTil::Block(150);
    let (_, _) = expect_cancel_error(None, ME, gt, CancelErrorKind::MetadataNotFound).await;
    for (st, kind) in [
        (OrderStatus::Cancelled, CancelErrorKind::AlreadyCancelled),
        (OrderStatus::Filled, CancelErrorKind::AlreadyFilled),
        (OrderStatus::Expired, CancelErrorKind::OrderExpired),
        (OrderStatus::Failed, CancelErrorKind::PlacementFailed),
        (OrderStatus::Pending, CancelErrorKind::PlacementPending),
        (OrderStatus::Cancelling, CancelErrorKind::CancelInProgress),
    ] {
        let (store, key) = expect_cancel_error(Some(st), ME, gt, kind).await;
        assert_eq!(status(&store, &key).await, st, "unchanged");
    }
    let (store, key) = expect_cancel_error(
        Some(OrderStatus::Active),
        OTHER,
        gt,
        CancelErrorKind::NotOwner,
    )
    .await;
    assert_eq!(status(&store, &key).await, OrderStatus::Active);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_of_order_expired_on_chain_marks_it_expired() {
    // Short-term: height 100 >= GTB 100. Stateful: block time >= GTBT.
    for gt in [
        GoodTil::Block(CLOCK.height),
        GoodTil::BlockTime(CLOCK.block_time),
    ] {
        let (store, key) = expect_cancel_error(
            Some(OrderStatus::Active),
            ME,
            gt,
            CancelErrorKind::OrderExpired,
        )
        .await;
        assert_eq!(status(&store, &key).await, OrderStatus::Expired);
    }
    let (_, key) = expect_cancel_error(
        Some(OrderStatus::Active),
        ME,
        GoodTil::Block(100),
        CancelErrorKind::OrderExpired,
    )
    .await;
    assert!(key.ends_with("@b100"));
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_error_message_reads_like_the_seed() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(&store, &oid(12, 0), GoodTil::Block(90), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let c = client(gw, store);
    let err = c.cancel_order(&key).await.expect_err("expired");
    assert_eq!(
        err.to_string(),
        format!("Order {key} has expired at block 90")
    );
}

/// Seeds an active short-term order, makes the gateway answer the cancel with `answer`, and
/// returns the error kind and the status recorded afterwards.
async fn cancel_answered(
    answer: GatewayError,
    gt: GoodTil,
    clock_after: ChainClock,
) -> (CancelErrorKind, OrderStatus) {
    let store = Arc::new(FlakyStore::default());
    let id = oid(13, if gt.block().is_some() { 0 } else { 64 });
    let key = seed(&store, &id, gt, OrderStatus::Active).await;
    let mut gw = gateway();
    let mut first = true;
    gw.expect_clock().returning(move || {
        let c = if first { CLOCK } else { clock_after };
        first = false;
        Ok(c)
    });
    let answer = std::sync::Mutex::new(Some(answer));
    gw.expect_cancel()
        .times(1)
        .returning(move |_, _| Err(answer.lock().expect("lock").take().expect("one answer")));
    let c = client(gw, store.clone());
    let err = c.cancel_order(&key).await.expect_err("fails");
    (err.kind(), status(&store, &key).await)
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn chain_answers_map_to_the_taxonomy() {
    let st = GoodTil::Block(130);
    let lt = GoodTil::BlockTime(CLOCK.block_time + 100);
    let cases = [
        (
            rejected("clob", 9),
            st,
            CLOCK,
            CancelErrorKind::CancelInProgress,
            OrderStatus::Cancelled,
        ),
        (
            rejected("clob", 32),
            lt,
            CLOCK,
            CancelErrorKind::CancelInProgress,
            OrderStatus::Cancelled,
        ),
        (
            rejected("clob", 5001),
            st,
            CLOCK,
            CancelErrorKind::RateLimited,
            OrderStatus::Active,
        ),
        (
            rejected("clob", 10),
            st,
            CLOCK,
            CancelErrorKind::OrderExpired,
            OrderStatus::Expired,
        ),
        (
            rejected("clob", 3003),
            lt,
            CLOCK,
            CancelErrorKind::OrderExpired,
            OrderStatus::Expired,
        ),
        // 3006 while the clock says unexpired: gone (filled or cancelled elsewhere).
        (
            rejected("clob", 3006),
            lt,
            CLOCK,
            CancelErrorKind::AlreadyCancelled,
            OrderStatus::Cancelled,
        ),
        // 3006 and the clock has passed the GTBT meanwhile: expired.
        (
            rejected("clob", 3006),
            lt,
            ChainClock {
                height: 101,
                block_time: CLOCK.block_time + 100,
            },
            CancelErrorKind::OrderExpired,
            OrderStatus::Expired,
        ),
        // sdk 32 is a sequence mismatch (the gateway already retried), not a duplicate cancel.
        (
            rejected("sdk", 32),
            lt,
            CLOCK,
            CancelErrorKind::NetworkError,
            OrderStatus::Active,
        ),
        (
            rejected("clob", 29),
            lt,
            CLOCK,
            CancelErrorKind::NetworkError,
            OrderStatus::Active,
        ),
        (
            GatewayError::Unavailable {
                source: "deadline exceeded".into(),
            },
            st,
            CLOCK,
            CancelErrorKind::NetworkError,
            OrderStatus::Active,
        ),
    ];
    for (answer, gt, after, kind, status) in cases {
        let label = answer.to_string();
        assert_eq!(
            cancel_answered(answer, gt, after).await,
            (kind, status),
            "{label}"
        );
    }
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn clock_failure_is_network_error_and_claims_nothing() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(14, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| {
        Err(GatewayError::Unavailable {
            source: "node down".into(),
        })
    });
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let err = c.cancel_order(&key).await.expect_err("fails");
    assert_eq!(err.kind(), CancelErrorKind::NetworkError);
    assert!(err.is_retryable());
    let m = store.get_required(&key).await.expect("get");
    assert_eq!((m.status, m.version), (OrderStatus::Active, 1));
}

#[tokio::test]
async fn recording_off_cancel_gives_manual_guidance() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(15, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_cancel().times(0);
    let c = client(gw, store);
    off(&c);
    let err = c.cancel_order(&key).await.expect_err("disabled");
    assert_eq!(err.kind(), CancelErrorKind::RecordingDisabled);
    assert!(err.to_string().contains("manually"), "{err}");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn local_rate_limit_refuses_before_the_chain() {
    let store = Arc::new(FlakyStore::default());
    let a = seed(
        &store,
        &oid(16, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let b = seed(
        &store,
        &oid(17, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(1).returning(|_, _| Ok("C".into()));
    let c = client_with(gw, store.clone(), 1);
    c.cancel_order(&a).await.expect("first");
    let err = c.cancel_order(&b).await.expect_err("limited");
    assert_eq!(err.kind(), CancelErrorKind::RateLimited);
    assert_eq!(status(&store, &b).await, OrderStatus::Active);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn corrupt_and_unreachable_store() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(18, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    store.corrupt.store(true, Ordering::SeqCst);
    let err = c.cancel_order(&key).await.expect_err("corrupt");
    assert_eq!(err.kind(), CancelErrorKind::InvalidMetadata);
    assert!(err.to_string().contains("manually"), "{err}");
    store.corrupt.store(false, Ordering::SeqCst);
    store.down.store(true, Ordering::SeqCst);
    let err = c.cancel_order(&key).await.expect_err("down");
    assert_eq!(err.kind(), CancelErrorKind::Storage);
}

#[cfg(feature = "recording")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cancels_send_one_transaction() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(19, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .times(1)
        .returning(|_, _| Ok("ONLY".into()));
    let c = Arc::new(client(gw, store.clone()));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            let k = key.clone();
            tokio::spawn(async move { c.cancel_order(&k).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => ok += 1,
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    CancelErrorKind::CancelInProgress | CancelErrorKind::AlreadyCancelled
                ),
                "{e}"
            ),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);
}

// ---------------------------------------------------------------------- cancel_all & recovery

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_all_batches_short_term_and_cancels_stateful_singly() {
    let store = Arc::new(FlakyStore::default());
    let mut keys = Vec::new();
    for i in 0..150 {
        keys.push(
            seed(
                &store,
                &oid(1000 + i, 0),
                GoodTil::Block(110 + i % 20),
                OrderStatus::Active,
            )
            .await,
        );
    }
    let mut sub1 = oid(5000, 0);
    sub1.subaccount_number = 1;
    keys.push(seed(&store, &sub1, GoodTil::Block(120), OrderStatus::Active).await);
    for i in 0..3 {
        keys.push(
            seed(
                &store,
                &oid(2000 + i, 64),
                GoodTil::BlockTime(CLOCK.block_time + 60),
                OrderStatus::Active,
            )
            .await,
        );
    }
    let expired = seed(
        &store,
        &oid(3000, 0),
        GoodTil::Block(99),
        OrderStatus::Active,
    )
    .await;
    let mut theirs = oid(4000, 0);
    theirs.owner = OTHER.into();
    let not_mine = seed(&store, &theirs, GoodTil::Block(130), OrderStatus::Active).await;

    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    gw.expect_batch_cancel()
        .times(3)
        .returning(move |sub, batches, gtb| {
            let n: usize = batches.iter().map(|(_, ids)| ids.len()).sum();
            seen.lock().expect("lock").push((sub, n, gtb));
            Ok(format!("BATCH-{sub}-{n}"))
        });
    gw.expect_cancel()
        .times(3)
        .returning(|_, _| Ok("SINGLE".into()));
    let c = client(gw, store.clone());
    let report = c.cancel_all(CancelScope::All).await.expect("cancel_all");
    let mut calls = calls.lock().expect("lock").clone();
    calls.sort();
    assert_eq!(calls, [(0, 50, 129), (0, 100, 129), (1, 1, 120)]);
    assert_eq!(report.batches, 3);
    assert_eq!(report.cancelled.len(), 154);
    assert_eq!(report.failed.len(), 1, "the expired one");
    assert_eq!(report.failed[0].1.kind(), CancelErrorKind::OrderExpired);
    for k in &keys {
        assert_eq!(status(&store, k).await, OrderStatus::Cancelled, "{k}");
    }
    assert_eq!(status(&store, &expired).await, OrderStatus::Expired);
    assert_eq!(
        status(&store, &not_mine).await,
        OrderStatus::Active,
        "other owners untouched"
    );
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_all_by_market_and_failed_batch_releases_claims() {
    let store = Arc::new(FlakyStore::default());
    let eth = seed(&store, &oid(1, 0), GoodTil::Block(130), OrderStatus::Active).await;
    let mut btc_meta = store.get_required(&eth).await.expect("get");
    btc_meta.order_id = "btc-order".into();
    btc_meta.symbol = "BTC-USD".into();
    store.record(&btc_meta).await.expect("record");
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_batch_cancel()
        .times(1)
        .returning(|_, _, _| Err(rejected("clob", 5001)));
    let c = client(gw, store.clone());
    let report = c
        .cancel_all(CancelScope::Market("ETH-USD".into()))
        .await
        .expect("cancel_all");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].1.kind(), CancelErrorKind::RateLimited);
    assert_eq!(
        status(&store, &eth).await,
        OrderStatus::Active,
        "claim given back"
    );
    assert_eq!(status(&store, "btc-order").await, OrderStatus::Active);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn mark_filled_from_any_open_or_cancelled_status() {
    let store = Arc::new(FlakyStore::default());
    let c = client(gateway(), store.clone());
    for (i, st) in [
        OrderStatus::Active,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ]
    .into_iter()
    .enumerate()
    {
        let key = seed(&store, &oid(100 + i as u32, 0), GoodTil::Block(130), st).await;
        assert_eq!(
            c.mark_filled(&key).await.expect("fill").status,
            OrderStatus::Filled
        );
    }
    let failed = seed(
        &store,
        &oid(200, 0),
        GoodTil::Block(130),
        OrderStatus::Failed,
    )
    .await;
    let err = c
        .mark_filled(&failed)
        .await
        .expect_err("failed never filled");
    assert_eq!(err.current_status(), Some(OrderStatus::Failed), "{err}");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn sweep_and_reconcile_settle_crash_leftovers() {
    let store = Arc::new(FlakyStore::default());
    let old_active = seed(&store, &oid(1, 0), GoodTil::Block(100), OrderStatus::Active).await;
    let pending_expired = seed(&store, &oid(2, 0), GoodTil::Block(90), OrderStatus::Pending).await;
    let pending_live = seed(
        &store,
        &oid(3, 0),
        GoodTil::Block(130),
        OrderStatus::Pending,
    )
    .await;
    let pending_gone = seed(
        &store,
        &oid(4, 64),
        GoodTil::BlockTime(CLOCK.block_time + 99),
        OrderStatus::Pending,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(2).returning(|id, _| {
        if id.is_stateful() {
            Err(rejected("clob", 3006))
        } else {
            Ok("RC".into())
        }
    });
    let c = client(gw, store.clone());
    let report = c
        .reconcile_pending(std::time::Duration::ZERO)
        .await
        .expect("reconcile");
    assert_eq!(
        report,
        ReconcileReport {
            expired: 1,
            cancelled: 2,
            unresolved: 0
        }
    );
    assert_eq!(status(&store, &pending_expired).await, OrderStatus::Expired);
    assert_eq!(status(&store, &pending_live).await, OrderStatus::Cancelled);
    assert_eq!(status(&store, &pending_gone).await, OrderStatus::Cancelled);
    assert_eq!(c.sweep_expired().await.expect("sweep"), 1);
    assert_eq!(status(&store, &old_active).await, OrderStatus::Expired);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn reconcile_skips_young_pending_records() {
    let store = Arc::new(FlakyStore::default());
    let young = seed(
        &store,
        &oid(1, 0),
        GoodTil::Block(130),
        OrderStatus::Pending,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let report = c
        .reconcile_pending(std::time::Duration::from_secs(3600))
        .await
        .expect("reconcile");
    assert_eq!(report, ReconcileReport::default());
    assert_eq!(status(&store, &young).await, OrderStatus::Pending);
}

#[cfg(feature = "recording")]
#[tokio::test(start_paused = true)]
async fn sweeper_runs_until_stopped() {
    let store = Arc::new(FlakyStore::default());
    seed(&store, &oid(1, 0), GoodTil::Block(50), OrderStatus::Active).await;
    seed(&store, &oid(2, 0), GoodTil::Block(500), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let c = Arc::new(client(gw, store.clone()));
    let sweeper = crate::ExpirySweeper::spawn(c, std::time::Duration::from_secs(1));
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(sweeper.stop().await, 1);
}
