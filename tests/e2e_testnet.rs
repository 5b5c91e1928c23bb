//! Against the real dYdX testnet, for users who have network. Ignored by default; run with
//!
//! ```text
//! ORDERMETA_TESTNET_NODE=https://test-dydx-grpc.kingnodes.com \
//! ORDERMETA_TESTNET_MNEMONIC="…a funded testnet account…" \
//! cargo test --all-features --test e2e_testnet -- --ignored
//! ```
//!
//! It places one short-term buy far below the market on clob pair 0 (BTC-USD), cancels it
//! by id from a fresh client over a reopened SQLite file, and checks the record.

mod common;

use std::sync::Arc;

use dydx::indexer::{ClientId, Height};
use dydx::node::{OrderBuilder, OrderSide, Wallet};
use ordermeta::sqlite::SqliteStore;
use ordermeta::{MetadataStore, MetadataStoreExt, OrderStatus};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name} to run this test"))
}

#[tokio::test]
#[ignore = "needs network and a funded testnet account (ORDERMETA_TESTNET_NODE, ORDERMETA_TESTNET_MNEMONIC)"]
async fn place_and_cancel_on_testnet() {
    let config = common::Chain::node_config_for(env("ORDERMETA_TESTNET_NODE"));
    let wallet = Wallet::from_mnemonic(&env("ORDERMETA_TESTNET_MNEMONIC")).expect("wallet");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("testnet.db");

    let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::open(&db).await.expect("open"));
    let client = common::client_for(config.clone(), &wallet, store, 0).await;
    let mut node = dydx::node::NodeClient::connect(config.clone())
        .await
        .expect("node");
    let height = node.latest_block_height().await.expect("height");
    let sub = wallet
        .account_offline(0)
        .expect("account")
        .subaccount(0)
        .expect("sub");
    let (_, order) = OrderBuilder::new(common::market(), sub)
        .limit(OrderSide::Buy, 1_000, 1)
        .until(Height(height.0 + 20))
        .build(ClientId(rand_client_id()))
        .expect("order");
    let placed = client
        .place_order(order, common::details())
        .await
        .expect("place");
    drop(client);

    let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::open(&db).await.expect("reopen"));
    let client = common::client_for(config, &wallet, store.clone(), 0).await;
    client
        .cancel_order(&placed.order_id)
        .await
        .expect("cancel by id");
    let meta = store.get_required(&placed.order_id).await.expect("get");
    assert_eq!(meta.status, OrderStatus::Cancelled);
}

fn rand_client_id() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(1)
}
