//! Unit tests of the indexer sync's logic: the rules (`apply.rs`, in `apply.rs` here) on the
//! reference store, and the feed loop (`sync.rs`, in `feed.rs` here) against a mocked
//! indexer — duplicates, reordering, monotonic fills, the backfill and the re-snapshot after
//! a gap. The fixtures they share are here.
#![cfg(feature = "recording")]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use ordermeta_core::{
    GoodTil, MemoryStore, MetadataStore, MetadataStoreExt, NewOrder, OrderId, OrderMetadata,
    OrderStatus, OrderType, Side, TransitionRequest, now,
};

use super::*;
use crate::convert::order_key;
use crate::gateway::MockOrderGateway;
use crate::{ChainSettings, OrderMetaClient, RecordingSwitch};

const ME: &str = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn20l73w";
const GTB: GoodTil = GoodTil::Block(500);

fn id(client_id: u32) -> OrderId {
    OrderId {
        owner: ME.into(),
        subaccount_number: 0,
        client_id,
        order_flags: 0,
        clob_pair_id: 0,
    }
}

fn report(client_id: u32, status: IndexerOrderStatus, filled: &str) -> IndexerOrder {
    let id = id(client_id);
    IndexerOrder {
        indexer_id: indexer_order_id(&id),
        order_id: id,
        good_til: Some(GTB),
        status,
        total_filled: Some(filled.into()),
        size: Some("1".into()),
        price: Some("50000".into()),
        side: Some(Side::Buy),
        ticker: Some("BTC-USD".into()),
        order_type: Some(OrderType::Limit),
        removal_reason: None,
        height: Some(10),
    }
}

fn client(store: Arc<MemoryStore>) -> Arc<OrderMetaClient> {
    let mut gw = MockOrderGateway::new();
    gw.expect_signer().return_const(ME.to_owned());
    Arc::new(OrderMetaClient::new(
        Arc::new(gw),
        store,
        RecordingSwitch::new(true),
        ChainSettings::default(),
    ))
}

/// Records client id `n` in `status` under the id `place_order` gives it, a minute ago
/// (so a `pending` one is not a placement in flight).
async fn seed(store: &MemoryStore, n: u32, status: OrderStatus) -> String {
    seed_at(store, n, status, now() - chrono::Duration::minutes(1)).await
}

async fn seed_at(
    store: &MemoryStore,
    n: u32,
    status: OrderStatus,
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    let meta = OrderMetadata::new(
        NewOrder {
            order_id: order_key(&id(n), GTB),
            dydx_order_id: id(n),
            good_til: GTB,
            symbol: "BTC-USD".into(),
            side: Side::Buy,
            quantity: "1".into(),
            price: Some("50000".into()),
            order_type: OrderType::Limit,
        },
        status,
        at,
    );
    store.record(&meta).await.expect("seed");
    meta.order_id
}

async fn get(store: &MemoryStore, key: &str) -> OrderMetadata {
    store.get_required(key).await.expect("get")
}

mod apply;
mod feed;
