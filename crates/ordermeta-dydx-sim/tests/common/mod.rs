//! Shared helpers: a simulator plus a real `dydx` client connected to it.
#![allow(dead_code)]

use chrono::{DateTime, TimeDelta, Utc};
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::GetLatestBlockRequest;
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::service_client::ServiceClient;
use cosmos_sdk_proto::cosmos::tx::v1beta1::{GetTxRequest, GetTxResponse};
use dydx::indexer::Height;
use dydx::node::sequencer::{Nonce, Sequencer};
use dydx::node::{
    Account, Address, ChainId, NodeClient, NodeConfig, NodeError, OrderBuilder, OrderId, OrderSide,
    Wallet,
};
use dydx_proto::dydxprotocol::clob::Order;
pub use ordermeta_dydx_sim::fixtures::{MNEMONIC, market};
use ordermeta_dydx_sim::{SimConfig, SimHandle, SimNode, fixtures};
use tonic::transport::Channel;

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
        chain_id,
        ..fixtures::node_config(sim.endpoint())
    }
}

/// Timestamp nonces taken from the chain's own clock: the latest block's time in ms, strictly
/// increasing per sequencer. Always inside the 30 s window whatever the block clock, unique,
/// and never below the account's kept nonces: a process can sign any number of stateful txs
/// per block, and rejected txs leave no gap (unlike a local sequence counter). Plugged into the
/// unmodified client through `NodeClient::with_sequencer`.
pub struct ChainClockNonces {
    blocks: ServiceClient<Channel>,
    last: u64,
}

impl ChainClockNonces {
    pub async fn connect(endpoint: String) -> Self {
        let blocks = ServiceClient::connect(endpoint)
            .await
            .expect("connect block service");
        Self { blocks, last: 0 }
    }
}

#[async_trait::async_trait]
impl Sequencer for ChainClockNonces {
    async fn next_nonce(&mut self, _: &Address) -> anyhow::Result<Nonce> {
        let block = self
            .blocks
            .get_latest_block(GetLatestBlockRequest {})
            .await?
            .into_inner();
        let time = block
            .sdk_block
            .and_then(|b| b.header)
            .and_then(|h| h.time)
            .ok_or_else(|| anyhow::anyhow!("latest block without time"))?;
        let ms = u64::try_from(time.seconds)? * 1000 + u64::try_from(time.nanos)? / 1_000_000;
        self.last = (self.last + 1).max(ms);
        Ok(Nonce::Timestamp(self.last))
    }
}

/// A client of the simulator that signs stateful txs with [`ChainClockNonces`], so a test can
/// send several per block.
pub async fn nonce_client(sim: &SimHandle) -> NodeClient {
    let mut client = NodeClient::connect(node_config(sim, ChainId::Testnet4))
        .await
        .expect("connect");
    client.with_sequencer(ChainClockNonces::connect(sim.endpoint()).await);
    client
}

/// A client that signs with whatever nonce the test sets on the account
/// (`Account::set_next_nonce`) and never queries one.
pub async fn manual_client(sim: &SimHandle) -> NodeClient {
    let mut config = node_config(sim, ChainId::Testnet4);
    config.manage_sequencing = false;
    NodeClient::connect(config).await.expect("connect")
}

/// The block time of the latest block, in unix ms.
pub fn block_ms(sim: &SimHandle) -> u64 {
    u64::try_from(sim.block_time().timestamp_millis()).expect("positive time")
}

/// `GetTx` straight over gRPC: `Err(code)` when the node answers with a status.
pub async fn get_tx(client: &mut NodeClient, hash: &str) -> Result<GetTxResponse, tonic::Code> {
    client
        .tx
        .get_tx(GetTxRequest {
            hash: hash.to_owned(),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|status| status.code())
}

/// Stateful txs are signed with [`ChainClockNonces`]; tests of plain sequences build their own
/// client.
pub async fn env_with(config: SimConfig) -> Env {
    init_crypto();
    let sim = SimNode::start(config.with_mnemonic(MNEMONIC, 2))
        .await
        .expect("start sim");
    let mut client = nonce_client(&sim).await;
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

/// A short-term limit buy of 0.01 at 50 000 with the given GTB.
pub fn short_order(account: &Account, client_id: u32, gtb: u32) -> (OrderId, Order) {
    OrderBuilder::new(market(), account.subaccount(0).expect("subaccount"))
        .limit(OrderSide::Buy, 50_000, bigdecimal_hundredth())
        .until(Height(gtb))
        .build(client_id)
        .expect("build short-term order")
}

/// An order builder for `account`'s subaccount 0 on BTC-USD.
pub fn builder(account: &Account) -> OrderBuilder {
    OrderBuilder::new(market(), account.subaccount(0).expect("subaccount"))
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

/// Every wait on the indexer's feed ends by then: generous, for a loaded CI machine.
pub const FEED_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// The unmodified `dydx` indexer client, on the simulator's indexer.
pub fn indexer(sim: &SimHandle) -> dydx::indexer::IndexerClient {
    dydx::indexer::IndexerClient::new(fixtures::indexer_config(
        sim.indexer_url().expect("indexer served"),
        sim.indexer_ws_url().expect("indexer websocket served"),
    ))
}

/// The next message of a subaccounts feed (panics at [`FEED_DEADLINE`] or if the feed ended).
pub async fn next_message(
    feed: &mut dydx::indexer::Feed<dydx::indexer::SubaccountsMessage>,
) -> dydx::indexer::SubaccountsMessage {
    tokio::time::timeout(FEED_DEADLINE, feed.recv())
        .await
        .expect("a feed message before the deadline")
        .expect("the feed is open")
}

/// The next update (`channel_data`) of a subaccounts feed.
pub async fn next_update(
    feed: &mut dydx::indexer::Feed<dydx::indexer::SubaccountsMessage>,
) -> dydx::indexer::SubaccountsUpdateMessage {
    match next_message(feed).await {
        dydx::indexer::SubaccountsMessage::Update(update) => update,
        other => panic!("expected an update, got {other:?}"),
    }
}

/// The indexer's id of an order.
pub fn indexer_id(id: &OrderId) -> String {
    let proto: dydx_proto::dydxprotocol::clob::OrderId = id.clone();
    ordermeta_dydx_sim::indexer_order_id(&proto)
}

/// Waits (at most [`FEED_DEADLINE`]) until the indexer websocket holds `count` subscriptions.
pub async fn wait_for_subscriptions(sim: &SimHandle, count: usize) {
    tokio::time::timeout(FEED_DEADLINE, async {
        while sim.indexer_ws_subscriptions() != count {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("subscriptions registered before the deadline");
}
