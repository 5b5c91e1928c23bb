//! Quickstart — the README's main job.
//!
//! Starts the local dYdX node simulator in-process, opens an embedded SQLite store, places
//! short-term and long-term orders (metadata recorded before each broadcast), drops
//! everything as a restart would, reopens the store with a new connection, cancels every
//! order by its id alone, and prints a status table.
//!
//! Run: `cargo run --example quickstart --features dydx,dydx-sim`
//!
//! Any store works the same: pass its URL (see `ordermeta::open`), e.g.
//! `cargo run --example quickstart --features dydx,dydx-sim,postgres -- 'postgres://postgres@127.0.0.1/postgres?schema=quickstart'`
//! or `cargo run --example quickstart --features dydx,dydx-sim,redis -- redis://127.0.0.1:6379?namespace=quickstart`.

use std::sync::Arc;

use dydx::indexer::{ClientId, Height};
use dydx::node::{OrderBuilder, OrderSide, Wallet};
use ordermeta::dydx::{ChainSettings, DydxGateway, OrderDetails, OrderMetaClient, RecordingSwitch};
use ordermeta::dydx_sim::fixtures::{MNEMONIC, market, node_config};
use ordermeta::dydx_sim::{SimConfig, SimNode};
use ordermeta::{MetadataStore, MetadataStoreExt, OrderType, Side};

async fn connect(
    endpoint: &str,
    wallet: &Wallet,
    store: Arc<dyn MetadataStore>,
) -> Result<OrderMetaClient, Box<dyn std::error::Error>> {
    let gateway = DydxGateway::connect(node_config(endpoint), wallet, 0).await?;
    Ok(OrderMetaClient::new(
        Arc::new(gateway),
        store,
        RecordingSwitch::from_env()?,
        ChainSettings::default(),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = SimNode::start(SimConfig::default().with_mnemonic(MNEMONIC, 1)).await?;
    let wallet = Wallet::from_mnemonic(MNEMONIC)?;
    let dir = tempfile::tempdir()?;
    // The store's URL: the first argument, else a new SQLite file.
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => format!("sqlite:{}", dir.path().join("ordermeta.db").display()),
    };
    println!(
        "node simulator: {}   store: {}",
        sim.endpoint(),
        url.split('@').next_back().unwrap_or_default() // no password on screen
    );
    // Client ids unique to this run, so that a store reused across runs takes new orders.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_micros()
        * 4;

    // Process 1: place orders. Each is recorded as pending before it is broadcast.
    let mut ids = Vec::new();
    {
        let store = ordermeta::open(&url).await?;
        let client = connect(&sim.endpoint(), &wallet, store).await?;
        let sub = wallet.account_offline(0)?.subaccount(0)?;
        for i in 0..2u32 {
            let (_, order) = OrderBuilder::new(market(), sub.clone())
                .limit(OrderSide::Buy, 50_000 + i, 1)
                .until(Height(sim.height() + 20))
                .build(ClientId(run + i))?;
            let details = OrderDetails {
                symbol: "BTC-USD".into(),
                side: Side::Buy,
                quantity: "1".into(),
                price: Some(format!("{}", 50_000 + i)),
                order_type: OrderType::Limit,
            };
            ids.push(client.place_order(order, details).await?.order_id);
        }
        for i in 0..2u32 {
            let (_, order) = OrderBuilder::new(market(), sub.clone())
                .limit(OrderSide::Sell, 70_000 + i, 1)
                .long_term()
                .until(sim.block_time() + chrono::Duration::days(7))
                .build(ClientId(run + 2 + i))?;
            let details = OrderDetails {
                symbol: "BTC-USD".into(),
                side: Side::Sell,
                quantity: "1".into(),
                price: Some(format!("{}", 70_000 + i)),
                order_type: OrderType::Limit,
            };
            ids.push(client.place_order(order, details).await?.order_id);
        }
        sim.advance_blocks(1);
        println!(
            "placed {} orders; live on the node: {}",
            ids.len(),
            sim.open_orders().len()
        );
    } // store and client dropped: the process "restarts"

    // Process 2: nothing in memory but the ids.
    let store = ordermeta::open(&url).await?;
    let client = connect(&sim.endpoint(), &wallet, store.clone()).await?;
    for id in &ids {
        let done = client.cancel_order(id).await?;
        println!("cancelled {id}  tx {}", done.tx_hash);
    }
    sim.advance_blocks(1);
    // A stateful cancel is final once a block executed it; the supervisor confirms this on
    // its own, here we ask directly.
    client.confirm_all(std::time::Duration::from_secs(5)).await;

    println!();
    println!(
        "{:<66} {:<40} {:<10} cancel tx",
        "order id", "good-til", "status"
    );
    for id in &ids {
        let m = store.get_required(id).await?;
        println!(
            "{:<66} {:<40} {:<10} {}",
            m.order_id,
            m.good_til.to_string(),
            m.status,
            m.cancel_tx_hash.as_deref().unwrap_or("-")
        );
    }
    println!(
        "\nlive on the node after cancel-by-id: {}",
        sim.open_orders().len()
    );
    sim.shutdown().await?;
    Ok(())
}
