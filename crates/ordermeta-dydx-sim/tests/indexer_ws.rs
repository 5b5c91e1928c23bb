//! The simulator's indexer websocket (`v4_subaccounts`), read by the unmodified
//! `dydx::indexer::IndexerClient` feed: the `subscribed` snapshot, then each order update and
//! fill in order; dropped, paused and refused sockets.

mod common;

use common::*;
use dydx::indexer::{ApiOrderStatus, Height, SubaccountUpdateMessageContents, SubaccountsMessage};
use dydx::node::OrderSide;
use dydx_proto::dydxprotocol::clob::OrderBatch;
use ordermeta_dydx_sim::{Fill, SUBACCOUNTS_MESSAGE_VERSION};

/// `(indexer id, status, removal reason, total filled)` of each order in an update.
fn orders_of(
    contents: &[SubaccountUpdateMessageContents],
) -> Vec<(String, String, Option<String>, Option<String>)> {
    contents
        .iter()
        .flat_map(|c| c.orders.clone().unwrap_or_default())
        .map(|o| {
            let status = match o.status {
                ApiOrderStatus::OrderStatus(s) => format!("{s:?}"),
                ApiOrderStatus::BestEffort(s) => format!("{s:?}"),
            };
            (
                o.id,
                status,
                o.removal_reason,
                o.total_filled.map(|t| t.to_string()),
            )
        })
        .collect()
}

fn status_of(update: &dydx::indexer::SubaccountsUpdateMessage) -> Vec<String> {
    orders_of(&update.contents)
        .into_iter()
        .map(|(_, s, _, _)| s)
        .collect()
}

#[tokio::test]
async fn the_snapshot_holds_the_open_orders() {
    let mut env = env().await;
    let h = env.sim.height();
    let (short_id, short) = short_order(&env.account, 1, h + 10);
    env.client
        .place_order(&mut env.account, short)
        .await
        .expect("short");
    let (long_id, long) = long_order(&env.account, 2, env.sim.block_time() + secs(600));
    env.client
        .place_order(&mut env.account, long)
        .await
        .expect("long");
    let height = env.sim.advance_blocks(1);
    // Cancelled before the subscription: not open, but best-effort-cancelled lately.
    let (gone_id, gone) = short_order(&env.account, 3, height + 10);
    env.client
        .place_order(&mut env.account, gone)
        .await
        .expect("third");
    env.client
        .cancel_order(&mut env.account, gone_id, Height(height + 10))
        .await
        .expect("cancel");

    let mut indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let mut feed = indexer
        .feed()
        .subaccounts(subaccount.clone(), false)
        .await
        .expect("subscribe");
    let SubaccountsMessage::Initial(initial) = next_message(&mut feed).await else {
        panic!("the first message is the snapshot");
    };
    assert_eq!(initial.id, format!("{}/0", subaccount.address));
    assert_eq!(initial.message_id, 1, "after `connected` (0)");
    assert_eq!(initial.contents.block_height, Height(height));
    assert_eq!(initial.contents.subaccount.address, subaccount.address);
    let mut snapshot: Vec<(String, String)> = initial
        .contents
        .orders
        .iter()
        .map(|o| (o.id.0.clone(), format!("{:?}", o.status)))
        .collect();
    snapshot.sort();
    let mut expected = vec![
        (
            indexer_id(&short_id),
            "BestEffort(BestEffortOpened)".to_owned(),
        ),
        (indexer_id(&long_id), "OrderStatus(Open)".to_owned()),
    ];
    expected.sort();
    assert_eq!(snapshot, expected);
}

#[tokio::test]
async fn updates_report_each_order_event_in_order() {
    let mut env = env().await;
    let mut indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let mut feed = indexer
        .feed()
        .subaccounts(subaccount, false)
        .await
        .expect("subscribe");
    assert!(matches!(
        next_message(&mut feed).await,
        SubaccountsMessage::Initial(i) if i.contents.orders.is_empty()
    ));

    // Short-term place: BEST_EFFORT_OPENED at CheckTx.
    let h = env.sim.height();
    let (short_id, short) = short_order(&env.account, 5, h + 4);
    let short_uuid = indexer_id(&short_id);
    env.client
        .place_order(&mut env.account, short)
        .await
        .expect("place");
    let placed = next_update(&mut feed).await;
    assert_eq!(placed.version, SUBACCOUNTS_MESSAGE_VERSION);
    assert_eq!(
        orders_of(&placed.contents),
        vec![(short_uuid.clone(), "BestEffortOpened".into(), None, None)]
    );
    let mut last_id = placed.message_id;

    // Partial fill: with the next block, the row is OPEN with its total, and the fill.
    env.sim
        .fill(&short_id, Fill::Quantums(30_000_000))
        .expect("fill");
    let fill_height = env.sim.advance_blocks(1);
    let filled = next_update(&mut feed).await;
    assert!(filled.message_id > last_id);
    last_id = filled.message_id;
    assert_eq!(
        orders_of(&filled.contents),
        vec![(
            short_uuid.clone(),
            "Open".into(),
            None,
            Some("0.003".into())
        )]
    );
    let fills = filled.contents[0].fills.clone().expect("fills");
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].size.to_string(), "0.003");
    assert_eq!(fills[0].created_at_height, Height(fill_height));
    assert_eq!(
        fills[0].order_id.as_ref().map(|i| i.0.clone()),
        Some(short_uuid.clone())
    );
    assert_eq!(filled.contents[0].block_height, Some(Height(fill_height)));

    // Short-term cancel: BEST_EFFORT_CANCELED at once, the reason given.
    env.client
        .cancel_order(&mut env.account, short_id.clone(), Height(h + 4))
        .await
        .expect("cancel");
    let cancelled = next_update(&mut feed).await;
    assert!(cancelled.message_id > last_id);
    last_id = cancelled.message_id;
    assert_eq!(
        orders_of(&cancelled.contents),
        vec![(
            short_uuid.clone(),
            "BestEffortCanceled".into(),
            Some("ORDER_REMOVAL_REASON_USER_CANCELED".into()),
            None
        )]
    );

    // A short-term order left to expire: CANCELED at its good-til-block.
    let h = env.sim.height();
    let (exp_id, exp) = short_order(&env.account, 6, h + 2);
    env.client
        .place_order(&mut env.account, exp)
        .await
        .expect("place");
    assert_eq!(
        status_of(&next_update(&mut feed).await),
        vec!["BestEffortOpened"]
    );
    env.sim.advance_blocks(2);
    let expired = next_update(&mut feed).await;
    assert_eq!(
        orders_of(&expired.contents),
        vec![(
            indexer_id(&exp_id),
            "Canceled".into(),
            Some("ORDER_REMOVAL_REASON_EXPIRED".into()),
            None
        )]
    );
    assert!(expired.message_id > last_id);

    // Long-term: OPEN with its block, FILLED with the block of its fill.
    let gtbt = env.sim.block_time() + secs(600);
    let (long_id, long) = long_order(&env.account, 7, gtbt);
    env.client
        .place_order(&mut env.account, long)
        .await
        .expect("place");
    env.sim.advance_blocks(1);
    assert_eq!(status_of(&next_update(&mut feed).await), vec!["Open"]);
    env.sim.fill(&long_id, Fill::Full).expect("fill");
    env.sim.advance_blocks(1);
    let full = next_update(&mut feed).await;
    assert_eq!(
        orders_of(&full.contents),
        vec![(
            indexer_id(&long_id),
            "Filled".into(),
            None,
            Some("0.01".into())
        )]
    );

    // A stateful cancel is CANCELED by the block that executes it.
    let (other_id, other) = long_order(&env.account, 8, gtbt);
    env.client
        .place_order(&mut env.account, other)
        .await
        .expect("place");
    env.sim.advance_blocks(1);
    assert_eq!(status_of(&next_update(&mut feed).await), vec!["Open"]);
    env.client
        .cancel_order(&mut env.account, other_id.clone(), gtbt)
        .await
        .expect("cancel");
    env.sim.advance_blocks(1);
    assert_eq!(
        orders_of(&next_update(&mut feed).await.contents),
        vec![(
            indexer_id(&other_id),
            "Canceled".into(),
            Some("ORDER_REMOVAL_REASON_USER_CANCELED".into()),
            Some("0".into())
        )]
    );

    // A conditional order rests UNTRIGGERED.
    let (cond_id, cond) = builder(&env.account)
        .stop_limit(
            OrderSide::Sell,
            40_000,
            41_000,
            "0.01".parse::<dydx::indexer::Quantity>().expect("size"),
        )
        .until(gtbt)
        .build(9)
        .expect("conditional");
    env.client
        .place_order(&mut env.account, cond)
        .await
        .expect("place");
    env.sim.advance_blocks(1);
    let untriggered = next_update(&mut feed).await;
    assert_eq!(status_of(&untriggered), vec!["Untriggered"]);
    let order = &untriggered.contents[0].orders.as_ref().expect("orders")[0];
    assert_eq!(order.id, indexer_id(&cond_id));
    assert_eq!(
        order.trigger_price.as_ref().map(ToString::to_string),
        Some("41000".into())
    );
}

#[tokio::test]
async fn a_batch_cancel_and_a_replacement_are_reported_per_order() {
    let mut env = env().await;
    let mut indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let mut feed = indexer
        .feed()
        .subaccounts(subaccount.clone(), true)
        .await
        .expect("subscribe batched");
    assert!(matches!(
        next_message(&mut feed).await,
        SubaccountsMessage::Initial(_)
    ));
    let h = env.sim.height();
    let (a_id, a) = short_order(&env.account, 31, h + 5);
    env.client
        .place_order(&mut env.account, a)
        .await
        .expect("place");
    assert_eq!(
        status_of(&next_update(&mut feed).await),
        vec!["BestEffortOpened"]
    );
    // Replacement (later GTB): the old one is removed, the new one placed, in one step.
    let (_, replacement) = short_order(&env.account, 31, h + 6);
    env.client
        .place_order(&mut env.account, replacement)
        .await
        .expect("replace");
    let replaced = next_update(&mut feed).await;
    assert_eq!(replaced.contents.len(), 2, "batched: one message per step");
    assert_eq!(
        orders_of(&replaced.contents),
        vec![
            (
                indexer_id(&a_id),
                "BestEffortCanceled".into(),
                Some("ORDER_REMOVAL_REASON_REPLACED".into()),
                None
            ),
            (indexer_id(&a_id), "BestEffortOpened".into(), None, None),
        ]
    );
    let good_til = replaced.contents[1].orders.as_ref().expect("orders")[0]
        .good_til_block
        .clone();
    assert_eq!(good_til, Some(Height(h + 6)));

    let (b_id, b) = short_order(&env.account, 32, h + 5);
    env.client
        .place_order(&mut env.account, b)
        .await
        .expect("place");
    assert_eq!(
        status_of(&next_update(&mut feed).await),
        vec!["BestEffortOpened"]
    );
    let batch = OrderBatch {
        clob_pair_id: 0,
        client_ids: vec![31, 32],
    };
    env.client
        .batch_cancel_orders(&mut env.account, subaccount, vec![batch], Height(h + 6))
        .await
        .expect("batch cancel");
    let batch_cancelled = next_update(&mut feed).await;
    assert_eq!(
        orders_of(&batch_cancelled.contents)
            .into_iter()
            .map(|(id, s, _, _)| (id, s))
            .collect::<Vec<_>>(),
        vec![
            (indexer_id(&a_id), "BestEffortCanceled".to_owned()),
            (indexer_id(&b_id), "BestEffortCanceled".to_owned()),
        ]
    );
}

#[tokio::test]
async fn dropped_sockets_reconnect_with_a_new_snapshot_or_end_the_feed() {
    let mut env = env().await;
    let mut indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let mut feed = indexer
        .feed()
        .subaccounts(subaccount, false)
        .await
        .expect("subscribe");
    let SubaccountsMessage::Initial(first) = next_message(&mut feed).await else {
        panic!("snapshot first");
    };
    assert_eq!(env.sim.indexer_ws_connections(), 1);

    // Killed mid-stream: the client reconnects on its own and resubscribes. A fill whose
    // update was held back (paused) dies with the socket, and shows in the new snapshot.
    let gtbt = env.sim.block_time() + secs(600);
    let (id, order) = long_order(&env.account, 41, gtbt);
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("place");
    env.sim.advance_blocks(1);
    assert_eq!(status_of(&next_update(&mut feed).await), vec!["Open"]);
    env.sim.pause_indexer_ws();
    env.sim.fill(&id, Fill::Quantums(20_000_000)).expect("fill");
    env.sim.advance_blocks(1);
    assert_eq!(env.sim.drop_indexer_sockets(), 1);
    env.sim.resume_indexer_ws();
    let SubaccountsMessage::Initial(second) = next_message(&mut feed).await else {
        panic!("a new snapshot after the reconnect");
    };
    assert_ne!(second.connection_id, first.connection_id);
    assert_eq!(second.contents.orders.len(), 1);
    assert_eq!(second.contents.orders[0].total_filled.to_string(), "0.002");

    // Refused: the client's reconnect fails and the feed ends.
    env.sim.set_indexer_ws_accepting(false);
    assert_eq!(env.sim.drop_indexer_sockets(), 1);
    let ended = tokio::time::timeout(FEED_DEADLINE, feed.recv())
        .await
        .expect("the feed ends before the deadline");
    assert!(ended.is_none(), "{ended:?}");
}

#[tokio::test]
async fn a_paused_socket_holds_updates_and_loses_none() {
    let mut env = env().await;
    let mut indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let mut feed = indexer
        .feed()
        .subaccounts(subaccount, false)
        .await
        .expect("subscribe");
    assert!(matches!(
        next_message(&mut feed).await,
        SubaccountsMessage::Initial(_)
    ));
    let h = env.sim.height();
    env.sim.pause_indexer_ws();
    let mut ids = Vec::new();
    for client_id in 51..54 {
        let (id, order) = short_order(&env.account, client_id, h + 10);
        env.client
            .place_order(&mut env.account, order)
            .await
            .expect("place");
        ids.push(indexer_id(&id));
    }
    // Held: nothing arrives while paused (a wait that can only fail if the pause leaks).
    let held = tokio::time::timeout(std::time::Duration::from_millis(300), feed.recv()).await;
    assert!(held.is_err(), "nothing is sent while paused: {held:?}");
    env.sim.resume_indexer_ws();
    let mut seen = Vec::new();
    let mut last = 0;
    for _ in 0..3 {
        let update = next_update(&mut feed).await;
        assert!(update.message_id > last);
        last = update.message_id;
        seen.extend(
            orders_of(&update.contents)
                .into_iter()
                .map(|(id, _, _, _)| id),
        );
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn an_unknown_subaccount_gets_no_snapshot_but_its_updates() {
    // As the real indexer: a 404 makes the `subscribed` contents `{}`, which the client
    // cannot parse, so the first message the feed yields is the first update.
    let mut env = env().await;
    let mut indexer = indexer(&env.sim);
    let other = env.account.subaccount(5).expect("subaccount 5");
    let mut feed = indexer
        .feed()
        .subaccounts(other.clone(), false)
        .await
        .expect("subscribe");
    let (id, order) = builder(&env.account)
        .limit(
            OrderSide::Buy,
            50_000,
            "0.01".parse::<dydx::indexer::Quantity>().expect("size"),
        )
        .until(Height(env.sim.height() + 5))
        .build(61)
        .expect("build");
    let mut order = order;
    if let Some(order_id) = order.order_id.as_mut() {
        order_id.subaccount_id = Some(other.clone().into());
    }
    let mut id = id;
    id.subaccount_id = Some(other.into());
    // The subscription is registered before the chain moves.
    wait_for_subscriptions(&env.sim, 1).await;
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("place on subaccount 5");
    let update = next_update(&mut feed).await;
    assert_eq!(orders_of(&update.contents)[0].0, indexer_id(&id));
}

#[tokio::test]
async fn an_ioc_order_and_a_pre_cancel_are_best_effort_only() {
    let mut env = env().await;
    let mut indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let mut feed = indexer
        .feed()
        .subaccounts(subaccount.clone(), false)
        .await
        .expect("subscribe");
    assert!(matches!(
        next_message(&mut feed).await,
        SubaccountsMessage::Initial(_)
    ));
    let h = env.sim.height();
    // No liquidity: an IOC order is placed, then removed at once.
    let (ioc_id, ioc) = builder(&env.account)
        .limit(
            OrderSide::Buy,
            50_000,
            "0.01".parse::<dydx::indexer::Quantity>().expect("size"),
        )
        .time_in_force(dydx::node::OrderTimeInForce::Ioc)
        .until(Height(h + 5))
        .build(71)
        .expect("ioc");
    env.client
        .place_order(&mut env.account, ioc)
        .await
        .expect("place ioc");
    assert_eq!(
        status_of(&next_update(&mut feed).await),
        vec!["BestEffortOpened"]
    );
    assert_eq!(
        orders_of(&next_update(&mut feed).await.contents),
        vec![(
            indexer_id(&ioc_id),
            "BestEffortCanceled".into(),
            Some("ORDER_REMOVAL_REASON_IMMEDIATE_OR_CANCEL_WOULD_REST_ON_BOOK".into()),
            None
        )]
    );
    // A cancel of an order never placed: reported all the same, with what the id says.
    let (pre_id, _) = short_order(&env.account, 72, h + 5);
    env.client
        .cancel_order(&mut env.account, pre_id.clone(), Height(h + 5))
        .await
        .expect("pre-cancel");
    let pre = next_update(&mut feed).await;
    let order = &pre.contents[0].orders.as_ref().expect("orders")[0];
    assert_eq!(order.id, indexer_id(&pre_id));
    assert_eq!(order.client_id.0, 72);
    assert!(order.size.is_none() && order.price.is_none(), "{order:?}");
    assert_eq!(status_of(&pre), vec!["BestEffortCanceled"]);
    let orders = indexer
        .accounts()
        .get_subaccount_orders(&subaccount, None)
        .await
        .expect("list");
    assert!(orders.is_empty(), "neither is on the book: {orders:?}");
}

#[tokio::test]
async fn a_best_effort_cancel_that_lost_to_a_fill_ends_filled() {
    let mut env = env().await;
    let mut indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let mut feed = indexer
        .feed()
        .subaccounts(subaccount, false)
        .await
        .expect("subscribe");
    assert!(matches!(
        next_message(&mut feed).await,
        SubaccountsMessage::Initial(_)
    ));
    let h = env.sim.height();
    let (id, order) = short_order(&env.account, 81, h + 10);
    let uuid = indexer_id(&id);
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("place");
    assert_eq!(
        status_of(&next_update(&mut feed).await),
        vec!["BestEffortOpened"]
    );
    // Matched on the book, then the cancel arrives before the block: accepted, best effort.
    env.sim.fill(&id, Fill::Full).expect("fill");
    env.client
        .cancel_order(&mut env.account, id, Height(h + 10))
        .await
        .expect("the node accepts the cancel");
    let cancelled = next_update(&mut feed).await;
    assert_eq!(status_of(&cancelled), vec!["BestEffortCanceled"]);
    let order = &cancelled.contents[0].orders.as_ref().expect("orders")[0];
    assert_eq!(
        order
            .total_optimistic_filled
            .as_ref()
            .map(ToString::to_string),
        Some("0.01".into()),
        "the memclob had it filled"
    );
    // The block settles it: FILLED.
    env.sim.advance_blocks(1);
    assert_eq!(
        orders_of(&next_update(&mut feed).await.contents),
        vec![(uuid.clone(), "Filled".into(), None, Some("0.01".into()))]
    );
    let rest = indexer
        .accounts()
        .get_order(&dydx::indexer::OrderId(uuid))
        .await
        .expect("row");
    assert!(matches!(
        rest.status,
        ApiOrderStatus::OrderStatus(dydx::indexer::OrderStatus::Filled)
    ));
}
