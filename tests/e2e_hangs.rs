//! Hung nodes, end to end: the real `dydx` client through `DydxGateway`, against a listener
//! that accepts and never answers, and against the node simulator behind a proxy that stops
//! forwarding mid-run. Every call returns a typed error within its deadline (the elapsed time
//! is asserted), and once the node answers again the next call succeeds — judged by what the
//! simulator holds, not by our records.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dydx::indexer::{ClientId, Height};
use dydx::node::{OrderBuilder, OrderSide, Wallet};
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta::dydx::{
    CancelErrorKind, CancelRetry, ChainSettings, DydxGateway, GatewayError, GatewayOptions,
    OrderMetaClient, PlaceError, RecordingSwitch, to_proto_order_id,
};
use ordermeta::dydx_sim::fixtures::{self, MNEMONIC, market};
use ordermeta::dydx_sim::{MsgKind, SimConfig, SimHandle, SimNode};
use ordermeta::sqlite::SqliteStore;
use ordermeta::{MetadataStoreExt, OrderStatus};
use ordermeta_testkit::net::{FaultProxy, ProxyMode, SilentListener};

/// The gateway deadline these tests run with.
const DEADLINE: Duration = Duration::from_secs(1);
/// Slack for a loaded CI machine: a hang would take far longer (without deadlines, for ever).
const MARGIN: Duration = Duration::from_secs(3);

fn options() -> GatewayOptions {
    GatewayOptions {
        call_timeout: DEADLINE,
        connect_timeout: DEADLINE,
    }
}

fn wallet() -> Wallet {
    Wallet::from_mnemonic(MNEMONIC).expect("wallet")
}

/// A short-term buy of account 0 / subaccount 0 on clob pair 0, good for `blocks`.
fn short_term(sim: &SimHandle, wallet: &Wallet, client_id: u32, blocks: u32) -> Order {
    let sub = wallet
        .account_offline(0)
        .expect("account")
        .subaccount(0)
        .expect("subaccount");
    let (_, order) = OrderBuilder::new(market(), sub)
        .limit(OrderSide::Buy, 50_000, 1)
        .until(Height(sim.height() + blocks))
        .build(ClientId(client_id))
        .expect("build short-term order");
    order
}

/// A node that accepts the TCP connection and never answers: connecting fails with a
/// timeout within the connect deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_silent_node_fails_within_its_deadline() {
    let silent = SilentListener::start().await;
    let config = fixtures::node_config(format!("http://{}", silent.addr()));
    let start = Instant::now();
    let err = DydxGateway::connect_with(config, &wallet(), 0, options())
        .await
        .expect_err("a silent node cannot be connected to");
    let elapsed = start.elapsed();
    println!("connect to a silent node failed after {elapsed:?}: {err}");
    assert!(
        matches!(
            err,
            GatewayError::Timeout {
                operation: "connect",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transport());
    assert!(elapsed >= DEADLINE, "waited its deadline: {elapsed:?}");
    assert!(elapsed < DEADLINE + MARGIN, "{elapsed:?}");
    assert!(silent.accepted() >= 1, "the node was reached");
}

/// The node stops answering after the client connected and placed an order: a cancel and a
/// placement each fail with a typed error within the deadline (the placement stays
/// `pending`: its outcome is unknown). Once the node answers again, the cancel goes through
/// and reconciliation settles the unknown placement: the simulator holds no live order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_that_stops_answering_mid_run() {
    let sim = SimNode::start(SimConfig::default().with_mnemonic(MNEMONIC, 2))
        .await
        .expect("start simulator");
    let proxy = FaultProxy::start(sim.local_addr()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(dir.path().join("orders.db"))
            .await
            .expect("open sqlite store"),
    );
    let wallet = wallet();
    let gateway = DydxGateway::connect_with(
        fixtures::node_config(format!("http://{}", proxy.addr())),
        &wallet,
        0,
        GatewayOptions {
            connect_timeout: Duration::from_secs(10),
            ..options()
        },
    )
    .await
    .expect("connect through the proxy");
    let retry = CancelRetry {
        budget: Duration::from_secs(2),
        ..CancelRetry::default()
    };
    let settings = ChainSettings {
        cancel_retry: retry.clone(),
        ..ChainSettings::default()
    };
    let client = OrderMetaClient::new(
        Arc::new(gateway),
        store.clone(),
        RecordingSwitch::new(true),
        settings,
    );
    let first = client
        .place_order(short_term(&sim, &wallet, 1, 20), common::details())
        .await
        .expect("place while the node answers");
    sim.advance_blocks(1);

    proxy.set_mode(ProxyMode::Blackhole);

    // cancel_order: at worst the clock's deadline, the retry budget and one more deadline.
    let cancel_bound = DEADLINE + retry.budget + DEADLINE + MARGIN;
    let start = Instant::now();
    let err = client
        .cancel_order(&first.order_id)
        .await
        .expect_err("the node does not answer");
    let cancel_elapsed = start.elapsed();
    println!("cancel against a hung node failed after {cancel_elapsed:?}: {err}");
    assert_eq!(err.kind(), CancelErrorKind::NetworkError, "{err}");
    assert!(err.is_retryable());
    assert!(cancel_elapsed < cancel_bound, "{cancel_elapsed:?}");
    let meta = store.get_required(&first.order_id).await.expect("get");
    assert_eq!(meta.status, OrderStatus::Active, "nothing claimed for good");

    let start = Instant::now();
    let err = client
        .place_order(short_term(&sim, &wallet, 2, 20), common::details())
        .await
        .expect_err("the node does not answer");
    let place_elapsed = start.elapsed();
    println!("placement against a hung node failed after {place_elapsed:?}: {err}");
    assert!(place_elapsed < DEADLINE + MARGIN, "{place_elapsed:?}");
    let unknown = match err {
        PlaceError::Network {
            order_id,
            source: GatewayError::Timeout {
                operation: "place", ..
            },
        } => order_id,
        other => panic!("expected a placement timeout, got {other}"),
    };
    assert_eq!(
        store.get_required(&unknown).await.expect("get").status,
        OrderStatus::Pending,
        "outcome unknown: left pending, never re-sent"
    );

    proxy.set_mode(ProxyMode::Pass);

    let start = Instant::now();
    let done = client
        .cancel_order(&first.order_id)
        .await
        .expect("cancel once the node answers again");
    println!("cancel after recovery took {:?}", start.elapsed());
    sim.advance_blocks(1);
    let proto = to_proto_order_id(&meta.dydx_order_id);
    let state = sim.order(&proto).expect("the node knows the order");
    assert!(!state.status.is_live(), "still live: {:?}", state.status);
    let accepted = sim
        .messages()
        .into_iter()
        .filter(|m| {
            matches!(&m.kind, MsgKind::CancelOrder { order_id: Some(o), .. } if *o == proto)
                && m.code() == 0
        })
        .count();
    assert!(accepted >= 1, "the node accepted a cancel");
    assert_eq!(
        store
            .get_required(&first.order_id)
            .await
            .expect("get")
            .cancel_tx_hash
            .as_deref(),
        Some(done.tx_hash.as_str())
    );

    // The placement whose outcome was unknown may have landed once the proxy let its bytes
    // through: reconciliation cancels it either way.
    let report = client
        .reconcile_pending(Duration::ZERO)
        .await
        .expect("reconcile");
    assert_eq!(report.cancelled, 1, "{report:?}");
    sim.advance_blocks(1);
    let live = sim.open_orders();
    assert!(live.is_empty(), "no order left live on the node: {live:?}");
}
