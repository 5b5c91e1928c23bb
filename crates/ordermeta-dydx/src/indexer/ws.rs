//! The `v4_subaccounts` feed through the `dydx` crate's websocket client, unmodified: one
//! connection per subscription, its messages turned into [`FeedEvent`]s.
//!
//! The crate's connector re-connects by itself after a failure and re-subscribes; the
//! indexer then sends a new `subscribed` snapshot, which the stream passes on (a second
//! [`FeedEvent::Snapshot`]: the sign of a gap). When re-connecting fails, the connector
//! stops and the stream ends.

use std::time::Duration;

use dydx::indexer::{
    FillSubaccountMessageContents, IndexerClient, IndexerConfig, OrderSubaccountMessageContents,
    SubaccountsMessage,
};
use futures::StreamExt;
use ordermeta_core::OrderId;

use super::rest::{api_status, dydx_subaccount, from_rest, good_til, order_type, side};
use super::{
    FeedEvent, FeedStream, IndexerError, IndexerFill, IndexerOrder, IndexerSubaccount, decimal_text,
};

/// Subscribes to `subaccount`'s feed over a new connection, within `deadline` (connecting
/// and the connector's acknowledgement).
pub(super) async fn subscribe(
    config: &IndexerConfig,
    subaccount: &IndexerSubaccount,
    deadline: Duration,
) -> Result<FeedStream, IndexerError> {
    let dydx_sub = dydx_subaccount(subaccount)?;
    let mut client = IndexerClient::new(config.clone());
    let feed =
        match tokio::time::timeout(deadline, client.feed().subaccounts(dydx_sub, false)).await {
            Ok(Ok(feed)) => feed,
            Ok(Err(e)) => {
                return Err(IndexerError::Unavailable {
                    source: Box::new(e),
                });
            }
            Err(_) => {
                return Err(IndexerError::Timeout {
                    operation: "subscribe",
                    after: deadline,
                });
            }
        };
    let sub = subaccount.clone();
    // The client goes with the stream: dropping both ends the connection.
    let stream =
        futures::stream::unfold((feed, client, sub), |(mut feed, client, sub)| async move {
            loop {
                let msg = feed.recv().await?;
                if let Some(event) = event(&sub, msg) {
                    return Some((event, (feed, client, sub)));
                }
            }
        });
    Ok(stream.boxed())
}

/// The event of one feed message; `None` for a message with nothing about orders.
fn event(sub: &IndexerSubaccount, msg: SubaccountsMessage) -> Option<FeedEvent> {
    match msg {
        SubaccountsMessage::Initial(init) => Some(FeedEvent::Snapshot {
            subaccount: sub.clone(),
            orders: init
                .contents
                .orders
                .iter()
                .filter_map(|o| from_rest(&sub.owner, o))
                .collect(),
            height: init.contents.block_height.0,
        }),
        SubaccountsMessage::Update(update) => {
            let mut orders = Vec::new();
            let mut fills = Vec::new();
            let mut height: Option<u32> = None;
            for c in update.contents {
                orders.extend(c.orders.iter().flatten().filter_map(|o| from_ws(sub, o)));
                fills.extend(c.fills.iter().flatten().map(fill));
                if let Some(h) = c.block_height {
                    height = Some(height.map_or(h.0, |m| m.max(h.0)));
                }
            }
            if orders.is_empty() && fills.is_empty() {
                return None;
            }
            Some(FeedEvent::Update {
                subaccount: sub.clone(),
                orders,
                fills,
                height,
            })
        }
    }
}

/// Our view of an order update; `None` without a market (the chain identity is incomplete).
fn from_ws(sub: &IndexerSubaccount, o: &OrderSubaccountMessageContents) -> Option<IndexerOrder> {
    let order_id = OrderId {
        owner: sub.owner.clone(),
        subaccount_number: sub.number,
        client_id: o.client_id.0,
        order_flags: o.order_flags.clone() as u32,
        clob_pair_id: o.clob_pair_id.as_ref()?.0,
    };
    let good_til = good_til(
        &order_id,
        o.good_til_block.as_ref().map(|h| h.0),
        o.good_til_block_time,
    );
    Some(IndexerOrder {
        indexer_id: o.id.clone(),
        good_til,
        status: api_status(&o.status),
        total_filled: o.total_filled.as_ref().map(decimal_text),
        size: o.size.as_ref().map(|q| decimal_text(&q.0)),
        price: o.price.as_ref().map(|p| decimal_text(&p.0)),
        side: o.side.as_ref().map(side),
        ticker: o.ticker.as_ref().map(|t| t.0.clone()),
        order_type: o.order_type.as_ref().and_then(order_type),
        removal_reason: o.removal_reason.clone(),
        height: o
            .updated_at_height
            .as_ref()
            .or(o.created_at_height.as_ref())
            .map(|h| h.0),
        order_id,
    })
}

fn fill(f: &FillSubaccountMessageContents) -> IndexerFill {
    IndexerFill {
        id: f.id.0.clone(),
        order_indexer_id: f.order_id.as_ref().map(|o| o.0.clone()),
        size: decimal_text(&f.size.0),
        height: f.created_at_height.0,
    }
}
