// Most tests need recording compiled in; the rollback build runs the recording-off ones.
#![cfg_attr(not(feature = "recording"), allow(dead_code, unused_imports))]
//! Unit tests of the placement and cancellation logic: a mocked gateway (mockall) over the
//! in-memory reference store. One file per operation; the fixtures they share are here.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta_core::{
    ClientIdKey, DEFAULT_LEASE, ExpireRequest, GoodTil, Lease, ListQuery, MemoryStore,
    MetadataStore, MetadataStoreExt, NewOrder, OrderId, OrderMetadata, OrderStatus, OrderType,
    Page, Side, StoreError, TransitionRequest, UpdateRequest, now,
};

use crate::convert::{order_good_til, order_key, to_proto_order_id};
use crate::gateway::{ChainClock, ChainError, GatewayError, MockOrderGateway, TxOutcome, codes};
use crate::{
    CancelErrorKind, CancelPath, CancelRetry, CancelScope, ChainSettings, DetailsError,
    DetailsField, OrderDetails, OrderMetaClient, PlaceError, ReconcileReport, RecordingSwitch,
};

mod active;
mod cancel;
mod cancel_all;
mod confirm;
mod leases;
mod lookup;
mod place;
mod recovery;
mod resolve;
mod retry;
mod rollout;
mod supervisor;
mod unrecorded;

// Valid bech32 (checksum included): placement checks the owner as the chain does.
const ME: &str = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn20l73w";
const OTHER: &str = "dydx1zg69v7ys40x77y352eufp27daufrg4nc6twx7h";
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
    async fn update(&self, req: &UpdateRequest) -> Result<OrderMetadata, StoreError> {
        self.check()?;
        self.inner.update(req).await
    }
    async fn find_by_client_id(
        &self,
        key: &ClientIdKey,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        self.check()?;
        self.inner.find_by_client_id(key).await
    }
    async fn find_by_label(&self, label: &str) -> Result<Option<OrderMetadata>, StoreError> {
        self.check()?;
        self.inner.find_by_label(label).await
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

/// A limit buy that passes the chain's stateless rules (side, size and price set).
fn built_order(id: &OrderId, good_til: Option<GoodTil>) -> Order {
    Order {
        order_id: Some(to_proto_order_id(id)),
        good_til_oneof: good_til.map(order_good_til),
        side: dydx_proto::dydxprotocol::clob::order::Side::Buy as i32,
        quantums: 1_000_000,
        subticks: 100_000,
        ..Order::default()
    }
}

/// Details that agree with [`built_order`] (a buy, a limit order).
fn details() -> OrderDetails {
    OrderDetails {
        symbol: "ETH-USD".into(),
        side: Side::Buy,
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
    client_settings(
        gw,
        store,
        ChainSettings {
            cancel_rate_per_second: NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN),
            ..settings()
        },
    )
}

/// The default settings, with retry delays short enough for unit tests.
fn settings() -> ChainSettings {
    ChainSettings {
        cancel_retry: fast_retry(4),
        ..ChainSettings::default()
    }
}

/// `attempts` in all, 1 ms apart.
fn fast_retry(attempts: u32) -> CancelRetry {
    CancelRetry {
        max_attempts: attempts,
        min_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(1),
        budget: std::time::Duration::from_secs(10),
    }
}

fn client_settings(
    gw: MockOrderGateway,
    store: Arc<FlakyStore>,
    settings: ChainSettings,
) -> OrderMetaClient {
    OrderMetaClient::new(Arc::new(gw), store, RecordingSwitch::new(true), settings)
}

fn client(gw: MockOrderGateway, store: Arc<FlakyStore>) -> OrderMetaClient {
    client_with(gw, store, 10_000)
}

/// Records an order directly in `status` and returns its id. A `cancelling` order gets a
/// live claim of another canceller ([`OTHER_CANCELLER`]).
async fn seed(store: &FlakyStore, id: &OrderId, good_til: GoodTil, status: OrderStatus) -> String {
    let mut meta = new_meta(id, good_til, status);
    if status == OrderStatus::Cancelling {
        let until = now() + chrono::Duration::from_std(DEFAULT_LEASE).expect("lease");
        meta.lease = Some(Lease::new(OTHER_CANCELLER, until));
    }
    store.record(&meta).await.expect("seed");
    meta.order_id
}

/// The token of the canceller that holds seeded claims.
const OTHER_CANCELLER: &str = "other-canceller";

/// Records a `cancelling` order whose claim (by a canceller that died) ran out a minute ago.
async fn seed_stale(store: &FlakyStore, id: &OrderId, good_til: GoodTil) -> String {
    let mut meta = new_meta(id, good_til, OrderStatus::Cancelling);
    meta.lease = Some(Lease::new(
        "dead-canceller",
        now() - chrono::Duration::minutes(1),
    ));
    store.record(&meta).await.expect("seed");
    meta.order_id
}

fn new_meta(id: &OrderId, good_til: GoodTil, status: OrderStatus) -> OrderMetadata {
    let key = order_key(id, good_til);
    let d = details();
    OrderMetadata::new(
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
    )
}

/// Makes the gateway report every tx as executed successfully in block 101 (how stateful
/// places and cancels are confirmed).
fn executes_every_tx(gw: &mut MockOrderGateway) {
    gw.expect_tx_result().returning(|_| {
        Ok(Some(TxOutcome {
            height: 101,
            result: Ok(()),
        }))
    });
}

fn rejected(codespace: &str, code: u32) -> GatewayError {
    GatewayError::Rejected(ChainError {
        codespace: codespace.into(),
        code,
        log: "refused".into(),
    })
}

/// Runs the client's queued `active` writes ([`crate::ActiveWrite::Background`], the default),
/// for a test that reads the store itself right after placing.
async fn flushed(c: &OrderMetaClient) {
    let left = c
        .flush_active_writes(std::time::Duration::from_secs(5))
        .await;
    assert_eq!(left, 0, "active writes left queued");
}

async fn status(store: &FlakyStore, id: &str) -> OrderStatus {
    store.get_required(id).await.expect("get").status
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
