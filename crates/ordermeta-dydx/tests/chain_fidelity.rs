//! The client against the simulator's chain model (committed-state sequences, timestamp
//! nonces, execution in the next block, ValidateBasic): what a bot meets on mainnet that
//! CheckTx alone does not show. Over real gRPC, with `DydxGateway`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dydx::indexer::{ClientId, Height};
use dydx::node::sequencer::Nonce;
use dydx::node::{ChainId, NodeConfig, OrderBuilder, OrderMarketParams, OrderSide, Wallet};
use dydx_proto::dydxprotocol::clob::Order;
use dydx_proto::dydxprotocol::clob::order::{ConditionType, TimeInForce};
use ordermeta_core::{MemoryStore, MetadataStore, MetadataStoreExt, OrderStatus, OrderType, Side};
use ordermeta_dydx::{
    CancelError, ChainSettings, DydxGateway, GatewayError, NonceMode, OrderDetails, OrderGateway,
    OrderMetaClient, PlaceError, RecordingSwitch, from_proto_order_id,
};
use ordermeta_dydx_sim::{
    BlockClock, BlockProduction, ChainError, MsgKind, OrderStatus as SimStatus, RateLimits,
    SimConfig, SimHandle, SimNode, fixtures::MNEMONIC,
};

/// BTC-USD (clob pair 0), as the indexer reports it.
fn market() -> OrderMarketParams {
    OrderMarketParams {
        atomic_resolution: -10,
        clob_pair_id: dydx::indexer::ClobPairId(0),
        oracle_price: None,
        quantum_conversion_exponent: -9,
        step_base_quantums: 1_000_000,
        subticks_per_tick: 100_000,
    }
}

fn node_config(sim: &SimHandle) -> NodeConfig {
    NodeConfig {
        endpoint: sim.endpoint(),
        timeout: 10_000,
        chain_id: ChainId::Testnet4,
        fee_denom: dydx::indexer::Denom::Usdc,
        manage_sequencing: true,
    }
}

async fn start(config: SimConfig) -> SimHandle {
    SimNode::start(
        config
            .with_mnemonic(MNEMONIC, 1)
            .with_rate_limits(RateLimits::unlimited()),
    )
    .await
    .expect("start simulator")
}

async fn gateway(sim: &SimHandle, nonces: NonceMode) -> Arc<DydxGateway> {
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    Arc::new(
        DydxGateway::connect(node_config(sim), &wallet, 0)
            .await
            .expect("connect")
            .with_nonces(nonces),
    )
}

fn client(gateway: Arc<DydxGateway>, store: Arc<dyn MetadataStore>) -> OrderMetaClient {
    OrderMetaClient::new(
        gateway,
        store,
        RecordingSwitch::new(true),
        ChainSettings::default(),
    )
}

fn builder() -> OrderBuilder {
    let sub = Wallet::from_mnemonic(MNEMONIC)
        .expect("wallet")
        .account_offline(0)
        .expect("account")
        .subaccount(0)
        .expect("subaccount");
    OrderBuilder::new(market(), sub)
}

/// A long-term limit sell of 0.01 at 70 000, good for an hour past the latest block.
fn long_term(sim: &SimHandle, client_id: u32) -> Order {
    builder()
        .limit(
            OrderSide::Sell,
            70_000,
            "0.01".parse::<dydx::indexer::Quantity>().expect("qty"),
        )
        .long_term()
        .until(sim.block_time() + chrono::Duration::hours(1))
        .build(ClientId(client_id))
        .expect("build")
        .1
}

fn details() -> OrderDetails {
    OrderDetails {
        symbol: "BTC-USD".into(),
        side: Side::Sell,
        quantity: "0.01".into(),
        price: Some("70000".into()),
        order_type: OrderType::Limit,
    }
}

fn proto_id(order: &Order) -> dydx_proto::dydxprotocol::clob::OrderId {
    order.order_id.clone().expect("order id")
}

fn sdk32(sim: &SimHandle) -> usize {
    sim.messages()
        .iter()
        .filter(|m| {
            m.final_result()
                .is_some_and(|r| r.as_ref().is_err_and(|e| e.is("sdk", 32)))
        })
        .count()
}

/// The chain's stateless rules, one vector each: the simulator (the chain's model) answers
/// the chain's code to the order sent as is, and the client refuses the same order before
/// recording it, with the same code; nothing of it reaches the node or the store.
#[tokio::test]
async fn validate_basic_vectors_are_refused_before_recording() {
    let sim = start(SimConfig::default()).await;
    let gw = gateway(&sim, NonceMode::Sequence).await;
    let store = Arc::new(MemoryStore::new());
    let c = client(gw.clone(), store.clone());
    let qty = || "0.01".parse::<dydx::indexer::Quantity>().expect("qty");
    let h = sim.height();
    let gtbt = sim.block_time() + chrono::Duration::hours(1);
    let edit = |mut order: Order, f: &dyn Fn(&mut Order)| {
        f(&mut order);
        order
    };
    let short = |cid: u32| {
        builder()
            .limit(OrderSide::Buy, 50_000, qty())
            .until(Height(h + 10))
            .build(ClientId(cid))
            .expect("build")
            .1
    };
    let vectors: Vec<(&str, Order, u32)> = vec![
        (
            // What `dydx`'s own builder makes of `.limit(..).conditional()`.
            "conditional without a condition type",
            builder()
                .limit(OrderSide::Buy, 50_000, qty())
                .conditional()
                .until(gtbt)
                .build(ClientId(1))
                .expect("build")
                .1,
            6000,
        ),
        (
            "conditional with trigger 0",
            edit(
                builder()
                    .stop_limit(OrderSide::Sell, 50_000, 49_000, qty())
                    .until(gtbt)
                    .build(ClientId(2))
                    .expect("build")
                    .1,
                &|o| o.conditional_order_trigger_subticks = 0,
            ),
            6001,
        ),
        (
            "non-conditional with a condition type",
            edit(short(3), &|o| {
                o.condition_type = ConditionType::StopLoss as i32
            }),
            6000,
        ),
        (
            "non-conditional with a trigger",
            edit(long_term(&sim, 4), &|o| {
                o.conditional_order_trigger_subticks = 5
            }),
            6001,
        ),
        (
            "fill-or-kill",
            builder()
                .limit(OrderSide::Buy, 50_000, qty())
                .time_in_force(TimeInForce::FillOrKill)
                .until(Height(h + 10))
                .build(ClientId(5))
                .expect("build")
                .1,
            48,
        ),
        (
            "reduce-only, not IOC",
            builder()
                .limit(OrderSide::Sell, 50_000, qty())
                .reduce_only(true)
                .until(Height(h + 10))
                .build(ClientId(6))
                .expect("build")
                .1,
            9003,
        ),
        (
            "order flags 7",
            edit(long_term(&sim, 7), &|o| {
                o.order_id.as_mut().expect("id").order_flags = 7
            }),
            3000,
        ),
        (
            "long-term IOC",
            builder()
                .limit(OrderSide::Buy, 50_000, qty())
                .time_in_force(TimeInForce::Ioc)
                .long_term()
                .until(gtbt)
                .build(ClientId(8))
                .expect("build")
                .1,
            3002,
        ),
    ];
    for (name, order, code) in vectors {
        // The chain's model: the order sent as is, by the gateway (no ordermeta check).
        let before = sim.messages().len();
        match gw.place(order.clone()).await {
            Err(GatewayError::Rejected(e)) => {
                assert_eq!(
                    (e.codespace.as_str(), e.code),
                    ("clob", code),
                    "{name}: simulator"
                )
            }
            other => panic!("{name}: the simulator answered {other:?}"),
        }
        assert_eq!(sim.messages().len(), before + 1);
        // The client: refused before any record, with the same code, nothing sent.
        match c.place_order(order, details()).await {
            Err(PlaceError::Invalid { order_id, error }) => {
                assert_eq!(
                    (error.codespace.as_str(), error.code),
                    ("clob", code),
                    "{name}"
                );
                assert!(store.get(&order_id).await.expect("get").is_none(), "{name}");
            }
            other => panic!("{name}: the client answered {other:?}"),
        }
        assert_eq!(
            sim.messages().len(),
            before + 1,
            "{name}: the client sent nothing"
        );
    }
    assert!(store.is_empty(), "no record of any");
    assert!(sim.orders().is_empty());
}

/// A stateful placement the block fails ends `failed`; a stateful cancel the block fails
/// ends `active` again (the order is live), then a cancel that works ends `cancelled`; a
/// cancel of an order filled before its block (clob 3010) ends with the order gone.
#[tokio::test]
async fn block_failures_leave_records_in_the_chains_status() {
    let sim = start(SimConfig::default().with_block_clock(BlockClock::WallClock)).await;
    let gw = gateway(&sim, NonceMode::timestamp()).await;
    let store = Arc::new(MemoryStore::new());
    let c = client(gw, store.clone());
    let within = Duration::from_secs(5);

    // Placement failing in its block.
    let doomed = long_term(&sim, 11);
    sim.fail_block_execution_of(&proto_id(&doomed), ChainError::new("clob", 3007, "forced"));
    let placed = c
        .place_order(doomed, details())
        .await
        .expect("CheckTx accepts");
    let record = |id: String| {
        let store = store.clone();
        async move { store.get_required(&id).await.expect("get") }
    };
    // `active` is written by the client's background writer: run it before reading.
    assert_eq!(c.flush_active_writes(within).await, 0);
    assert_eq!(
        record(placed.order_id.clone()).await.status,
        OrderStatus::Active
    );
    sim.advance_blocks(1);
    let report = c.confirm_all(within).await;
    assert_eq!(report.failed, 1, "{report:?}");
    let meta = record(placed.order_id.clone()).await;
    assert_eq!(meta.status, OrderStatus::Failed);
    let failure = meta
        .history
        .last()
        .and_then(|h| h.reason.clone())
        .unwrap_or_default();
    assert!(failure.contains("clob/3007"), "{failure}");
    assert!(sim.open_orders().is_empty());

    // A cancel failing in its block: the order is live, so is the record.
    let order = long_term(&sim, 12);
    let id = proto_id(&order);
    let placed = c.place_order(order, details()).await.expect("place");
    sim.advance_blocks(1);
    c.confirm_all(within).await;
    sim.fail_block_execution_of(&id, ChainError::new("clob", 3007, "forced"));
    let cancel = c
        .cancel_order(&placed.order_id)
        .await
        .expect("CheckTx accepts");
    assert_eq!(
        record(placed.order_id.clone()).await.status,
        OrderStatus::Cancelling
    );
    sim.advance_blocks(1);
    assert_eq!(c.confirm_all(within).await.failed, 1);
    let meta = record(placed.order_id.clone()).await;
    assert_eq!(meta.status, OrderStatus::Active);
    assert!(
        meta.history.iter().any(|h| h
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("cancel failed in block"))),
        "{:?}",
        meta.history
    );
    assert_eq!(sim.order(&id).expect("known").status, SimStatus::Open);
    let on_chain = sim.tx_result(&cancel.tx_hash).expect("in a block");
    assert!(on_chain.result.is_err());
    // Cancelled for real this time.
    let cancel = c.cancel_order(&placed.order_id).await.expect("cancel");
    sim.advance_blocks(1);
    assert_eq!(c.confirm_all(within).await.confirmed, 1);
    let meta = record(placed.order_id.clone()).await;
    assert_eq!(meta.status, OrderStatus::Cancelled);
    assert_eq!(
        meta.cancel_tx_hash.as_deref(),
        Some(cancel.tx_hash.as_str())
    );
    assert_eq!(sim.order(&id).expect("known").status, SimStatus::Canceled);

    // Filled between the cancel's CheckTx and its block: clob 3010, the order is gone.
    let order = long_term(&sim, 13);
    let id = proto_id(&order);
    let placed = c.place_order(order, details()).await.expect("place");
    sim.advance_blocks(1);
    c.cancel_order(&placed.order_id).await.expect("cancel");
    sim.fill(&id, ordermeta_dydx_sim::Fill::Full).expect("fill");
    sim.advance_blocks(1);
    assert_eq!(c.confirm_all(within).await.failed, 1);
    let meta = record(placed.order_id.clone()).await;
    assert_eq!(meta.status, OrderStatus::Cancelled, "gone, not live");
    let gone = meta
        .history
        .last()
        .and_then(|h| h.reason.clone())
        .unwrap_or_default();
    assert!(gone.contains("clob/3010"), "{gone}");
    c.mark_filled(&placed.order_id)
        .await
        .expect("the fill feed corrects it");
    assert_eq!(c.unconfirmed(), 0);
}

/// Sequence mode, two gateways on one account, the node serving committed sequences: a
/// collision is re-signed with the next sequence; one that outlasts the retries is the
/// chain's refusal (`Rejected` sdk/32, never a network error) and gives the claim back; after
/// the next block the gateway recovers.
#[tokio::test]
async fn sequence_mismatches_are_retried_then_refused_never_network_errors() {
    let sim = start(SimConfig::default()).await;
    let mine = gateway(&sim, NonceMode::Sequence).await;
    let theirs = gateway(&sim, NonceMode::Sequence).await;
    let store = Arc::new(MemoryStore::new());
    let c = client(mine.clone(), store.clone());

    theirs
        .place(long_term(&sim, 21))
        .await
        .expect("theirs: sequence 0");
    // Mine signs 0, is refused, re-signs with 1.
    let placed = c
        .place_order(long_term(&sim, 22), details())
        .await
        .expect("re-signed after the mismatch");
    assert_eq!(sdk32(&sim), 1);
    sim.advance_blocks(1);
    c.confirm_all(Duration::from_secs(5)).await;

    // Theirs takes the next sequences; before a block, mine cannot learn them.
    for cid in 23..28 {
        theirs.place(long_term(&sim, cid)).await.expect("theirs");
    }
    let start = Instant::now();
    let err = c.cancel_order(&placed.order_id).await.expect_err("refused");
    assert!(
        start.elapsed() < ordermeta_dydx::DEFAULT_CALL_TIMEOUT,
        "{:?}",
        start.elapsed()
    );
    match &err {
        CancelError::Rejected {
            codespace, code, ..
        } => {
            assert_eq!((codespace.as_str(), *code), ("sdk", 32), "{err}")
        }
        other => panic!("expected the chain's refusal, got {other}"),
    }
    let meta = store.get_required(&placed.order_id).await.expect("get");
    assert_eq!(meta.status, OrderStatus::Active, "claim given back");

    // The next block commits theirs: mine re-syncs and gets through.
    sim.advance_blocks(1);
    c.cancel_order(&placed.order_id)
        .await
        .expect("after a block");
    sim.advance_blocks(1);
    c.confirm_all(Duration::from_secs(5)).await;
    let meta = store.get_required(&placed.order_id).await.expect("get");
    assert_eq!(meta.status, OrderStatus::Cancelled);
}

/// Timestamp nonces: two gateways of one account, each with 4 tasks, sign stateful txs at
/// once, in their own lanes: no collision, nothing refused, every order placed; blocks come
/// from the wall clock, as on a real chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_lanes_let_processes_share_an_account() {
    let sim = start(
        SimConfig::default()
            .with_block_clock(BlockClock::WallClock)
            .with_blocks(BlockProduction::Interval(Duration::from_millis(200))),
    )
    .await;
    let a = gateway(&sim, NonceMode::timestamp_lane(0, 2)).await;
    let b = gateway(&sim, NonceMode::timestamp_lane(1, 2)).await;
    let mut tasks = Vec::new();
    for (g, gw) in [a, b].into_iter().enumerate() {
        for t in 0..4u32 {
            let gw = gw.clone();
            let orders: Vec<Order> = (0..10u32)
                .map(|i| long_term(&sim, 1_000 * (g as u32 + 1) + 100 * t + i))
                .collect();
            tasks.push(tokio::spawn(async move {
                for o in orders {
                    gw.place(o).await.expect("placed");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(sdk32(&sim), 0, "no nonce refused");
    let address = Wallet::from_mnemonic(MNEMONIC)
        .expect("wallet")
        .account_offline(0)
        .expect("account")
        .address()
        .to_string();
    assert_eq!(
        sim.account(&address).expect("account").sequence,
        0,
        "nonces never bump it"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.open_orders().len() < 80 {
        assert!(
            Instant::now() < deadline,
            "{} open",
            sim.open_orders().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A timestamp nonce the node refuses (here: the account's last 20 nonces are all above this
/// process's clock) is re-signed with a fresh one after a short backoff, and accepted.
#[tokio::test]
async fn a_refused_timestamp_nonce_is_re_signed() {
    let sim = start(SimConfig::default().with_block_clock(BlockClock::WallClock)).await;
    let gw = gateway(&sim, NonceMode::timestamp()).await;
    // Another signer fills the account's 20 kept nonces: 19 far ahead, the smallest 600 ms
    // ahead of the wall clock.
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    let mut other = dydx::node::NodeClient::connect(NodeConfig {
        manage_sequencing: false,
        ..node_config(&sim)
    })
    .await
    .expect("connect");
    let mut account = wallet.account(0, &mut other).await.expect("account");
    let now_ms = || u64::try_from(chrono::Utc::now().timestamp_millis()).expect("time");
    let far = now_ms() + 20_000;
    for i in 0..19u32 {
        account.set_next_nonce(Nonce::Timestamp(far + u64::from(i)));
        other
            .place_order(&mut account, long_term(&sim, 300 + i))
            .await
            .expect("far ahead");
    }
    let smallest = now_ms() + 600;
    account.set_next_nonce(Nonce::Timestamp(smallest));
    other
        .place_order(&mut account, long_term(&sim, 319))
        .await
        .expect("the smallest kept");
    let before = sdk32(&sim);
    let start = Instant::now();
    gw.place(long_term(&sim, 400))
        .await
        .expect("re-signed until accepted");
    assert!(sdk32(&sim) > before, "the first nonces were refused");
    assert!(start.elapsed() < ordermeta_dydx::DEFAULT_CALL_TIMEOUT);
    let last = sim.messages().pop().expect("logged");
    assert!(matches!(last.kind, MsgKind::PlaceOrder { .. }));
    assert_eq!(last.code(), 0);
    assert!(
        last.tx_sequence.expect("signed") > smallest,
        "above the smallest kept"
    );
    let id = last
        .kind
        .order_id()
        .and_then(from_proto_order_id)
        .expect("id");
    assert_eq!(id.client_id, 400);
}
