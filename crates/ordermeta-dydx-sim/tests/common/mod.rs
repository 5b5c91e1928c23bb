//! Shared helpers: a simulator plus a real `dydx` client connected to it.
#![allow(dead_code)]

use chrono::{DateTime, TimeDelta, Utc};
use dydx::indexer::{ClobPairId, Denom, Height};
use dydx::node::{
    Account, ChainId, NodeClient, NodeConfig, NodeError, OrderBuilder, OrderId, OrderMarketParams,
    OrderSide, Wallet,
};
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta_dydx_sim::{SimConfig, SimHandle, SimNode};

/// The `dydx` crate's example mnemonic.
pub const MNEMONIC: &str = "mirror actor skill push coach wait confirm orchard lunch mobile athlete gossip awake miracle matter bus reopen team ladder lazy list timber render wait";

pub struct Env {
    pub sim: SimHandle,
    pub client: NodeClient,
    pub wallet: Wallet,
    pub account: Account,
}

/// `NodeClient::connect` builds a rustls TLS config, which needs a process-wide provider.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn node_config(sim: &SimHandle, chain_id: ChainId) -> NodeConfig {
    NodeConfig {
        endpoint: sim.endpoint(),
        timeout: 10_000,
        chain_id,
        fee_denom: Denom::Usdc,
        manage_sequencing: true,
    }
}

pub async fn env_with(config: SimConfig) -> Env {
    init_crypto();
    let sim = SimNode::start(config.with_mnemonic(MNEMONIC, 2))
        .await
        .expect("start sim");
    let mut client = NodeClient::connect(node_config(&sim, ChainId::Testnet4))
        .await
        .expect("connect");
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    let account = wallet.account(0, &mut client).await.expect("account");
    Env {
        sim,
        client,
        wallet,
        account,
    }
}

pub async fn env() -> Env {
    env_with(SimConfig::default()).await
}

/// BTC-USD-like market parameters (no indexer needed).
pub fn market() -> OrderMarketParams {
    OrderMarketParams {
        atomic_resolution: -10,
        clob_pair_id: ClobPairId(0),
        oracle_price: None,
        quantum_conversion_exponent: -9,
        step_base_quantums: 1_000_000,
        subticks_per_tick: 100_000,
    }
}

/// A short-term limit buy of 0.01 at 50 000 with the given GTB.
pub fn short_order(account: &Account, client_id: u32, gtb: u32) -> (OrderId, Order) {
    OrderBuilder::new(market(), account.subaccount(0).expect("subaccount"))
        .limit(OrderSide::Buy, 50_000, bigdecimal_hundredth())
        .until(Height(gtb))
        .build(client_id)
        .expect("build short-term order")
}

/// A long-term limit buy of 0.01 at 50 000 with the given GTBT.
pub fn long_order(account: &Account, client_id: u32, gtbt: DateTime<Utc>) -> (OrderId, Order) {
    OrderBuilder::new(market(), account.subaccount(0).expect("subaccount"))
        .limit(OrderSide::Buy, 50_000, bigdecimal_hundredth())
        .long_term()
        .until(gtbt)
        .build(client_id)
        .expect("build long-term order")
}

fn bigdecimal_hundredth() -> dydx::indexer::Quantity {
    "0.01".parse().expect("quantity")
}

pub fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

/// The code the client got back (0 = accepted); panics on non-broadcast errors.
pub fn code_of<T: std::fmt::Debug>(result: &Result<T, NodeError>) -> u32 {
    match result {
        Ok(_) => 0,
        Err(NodeError::Broadcast(e)) => e.code.expect("broadcast error carries a code"),
        Err(e) => panic!("unexpected client error: {e}"),
    }
}

/// `(codespace, code)` of the client's result, with the codespace taken from the simulator's
/// log (the `dydx` client drops it) after checking both agree on the code.
pub fn outcome<T: std::fmt::Debug>(
    sim: &SimHandle,
    result: &Result<T, NodeError>,
) -> (String, u32) {
    let code = code_of(result);
    let last = sim.messages().pop().expect("a message was received");
    assert_eq!(last.code(), code, "client and simulator disagree: {last:?}");
    (last.codespace().to_owned(), code)
}
