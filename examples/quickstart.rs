//! Quickstart (placeholder until the dYdX integration lands): records orders, transitions
//! them and prints a status table, on the in-memory reference store.

use ordermeta::{
    GoodTil, ListQuery, MemoryStore, MetadataStore, NewOrder, OrderId, OrderMetadata, OrderStatus,
    OrderType, Side, TransitionRequest, now,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    for client_id in 1..=3u32 {
        let order = NewOrder {
            order_id: format!("quickstart-{client_id}"),
            dydx_order_id: OrderId {
                owner: "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn".into(),
                subaccount_number: 0,
                client_id,
                order_flags: 0,
                clob_pair_id: 0,
            },
            good_til: GoodTil::Block(100 + client_id),
            symbol: "BTC-USD".into(),
            side: Side::Buy,
            quantity: "0.001".into(),
            price: Some("65000".into()),
            order_type: OrderType::Limit,
        };
        store
            .record(&OrderMetadata::new(order, OrderStatus::Pending, now()))
            .await?;
        let req = TransitionRequest::new(
            format!("quickstart-{client_id}"),
            &[OrderStatus::Pending],
            OrderStatus::Active,
        );
        store.transition(&req).await?;
    }
    let page = store.list(&ListQuery::default()).await?;
    println!("{:<16} {:<10} {:<12}", "order id", "status", "good-til");
    for m in page.items {
        println!(
            "{:<16} {:<10} {:<12}",
            m.order_id,
            m.status,
            m.good_til.to_string()
        );
    }
    Ok(())
}
