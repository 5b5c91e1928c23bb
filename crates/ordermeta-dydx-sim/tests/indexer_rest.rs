//! The simulator's indexer over REST, read by the unmodified `dydx::indexer::IndexerClient`:
//! orders placed through the unmodified `NodeClient` appear with the real indexer's ids,
//! statuses and good-til values; fills show in the fills and in the orders' totals.

mod common;

use common::*;
use dydx::indexer::{
    ApiOrderStatus, ApiTimeInForce, ClobPairId, GetFillsOpts, Height, Liquidity, ListOrdersOpts,
    OrderFlags, OrderSide as IndexerSide, OrderStatus as IndexerStatus, OrderType, Ticker,
};
use dydx::node::OrderSide;
use ordermeta_dydx_sim::{Fill, indexer_subaccount_id};

/// Decimals compare by their printed form (`BigDecimal` is the client's, not a dependency).
fn dec(value: &impl ToString) -> String {
    value.to_string()
}

fn is(status: &ApiOrderStatus, expected: IndexerStatus) -> bool {
    matches!(status, ApiOrderStatus::OrderStatus(s) if *s == expected)
}

#[tokio::test]
async fn a_short_term_order_is_best_effort_opened_with_the_indexers_id() {
    let mut env = env().await;
    let indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let gtb = env.sim.height() + 10;
    let (id, order) = short_order(&env.account, 7, gtb);
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("place");

    let orders = indexer
        .accounts()
        .get_subaccount_orders(&subaccount, None)
        .await
        .expect("list orders");
    assert_eq!(orders.len(), 1);
    let o = &orders[0];
    assert_eq!(o.id.0, indexer_id(&id));
    assert_eq!(
        o.subaccount_id.0,
        indexer_subaccount_id(subaccount.address.as_ref(), 0)
    );
    assert!(matches!(o.status, ApiOrderStatus::BestEffort(_)), "{o:?}");
    assert_eq!(o.client_id.0, 7);
    assert_eq!(o.clob_pair_id, ClobPairId(0));
    assert_eq!(o.good_til_block, Some(Height(gtb)));
    assert_eq!(o.good_til_block_time, None);
    assert!(matches!(o.order_flags, OrderFlags::ShortTerm));
    assert_eq!(o.side, IndexerSide::Buy);
    assert_eq!(dec(&o.size.0), "0.01");
    assert_eq!(dec(&o.price.0), "50000");
    assert_eq!(dec(&o.total_filled), "0");
    assert_eq!(o.ticker, Ticker("BTC-USD".into()));
    assert_eq!(o.time_in_force, ApiTimeInForce::Gtt);
    assert_eq!(o.order_type, OrderType::Limit);
    assert_eq!(o.subaccount_number.value(), 0);
    // Only on the book (Redis): no row, no heights yet.
    assert_eq!(o.created_at_height, None);

    let by_id = indexer
        .accounts()
        .get_order(&o.id)
        .await
        .expect("order by id");
    assert_eq!(by_id.id, o.id);
    assert_eq!(by_id.good_til_block, Some(Height(gtb)));

    let unknown = dydx::indexer::OrderId("00000000-0000-5000-8000-000000000000".into());
    assert!(indexer.accounts().get_order(&unknown).await.is_err());

    // Height, time and the subaccount.
    let height = indexer.utility().get_height().await.expect("height");
    assert_eq!(height.height, Height(env.sim.height()));
    assert_eq!(height.time, env.sim.block_time());
    let time = indexer.utility().get_time().await.expect("time");
    assert!((time.iso - chrono::Utc::now()).num_seconds().abs() < 60);
    let sub = indexer
        .accounts()
        .get_subaccount(&subaccount)
        .await
        .expect("subaccount");
    assert_eq!(sub.address, subaccount.address);
    assert_eq!(sub.latest_processed_block_height, Height(env.sim.height()));
    let all = indexer
        .accounts()
        .get_subaccounts(&subaccount.address)
        .await
        .expect("subaccounts");
    assert_eq!(all.subaccounts.len(), 1);
    let other = env.account.subaccount(3).expect("subaccount 3");
    assert!(indexer.accounts().get_subaccount(&other).await.is_err());
}

#[tokio::test]
async fn a_long_term_order_is_open_from_the_block_that_places_it() {
    let mut env = env().await;
    let indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let gtbt = env.sim.block_time() + secs(600);
    let (id, order) = long_order(&env.account, 9, gtbt);
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("place");
    let before = indexer
        .accounts()
        .get_subaccount_orders(&subaccount, None)
        .await
        .expect("list");
    assert!(
        before.is_empty(),
        "not indexed before its block: {before:?}"
    );

    let height = env.sim.advance_blocks(1);
    let o = indexer
        .accounts()
        .get_order(&dydx::indexer::OrderId(indexer_id(&id)))
        .await
        .expect("order");
    assert!(is(&o.status, IndexerStatus::Open), "{o:?}");
    assert!(matches!(o.order_flags, OrderFlags::LongTerm));
    assert_eq!(o.good_til_block, None);
    assert_eq!(
        o.good_til_block_time.map(|t| t.timestamp()),
        Some(gtbt.timestamp())
    );
    assert_eq!(o.created_at_height, Some(Height(height)));
    assert_eq!(o.updated_at_height, Some(Height(height)));
    assert_eq!(o.updated_at, Some(env.sim.block_time()));
}

#[tokio::test]
async fn fills_show_in_the_fills_and_in_the_orders_total() {
    let mut env = env().await;
    let indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let gtbt = env.sim.block_time() + secs(600);
    let (id, order) = long_order(&env.account, 11, gtbt);
    env.client
        .place_order(&mut env.account, order)
        .await
        .expect("place");
    env.sim.advance_blocks(1);
    let uuid = dydx::indexer::OrderId(indexer_id(&id));

    // 0.004 of 0.01: the match is part of the next block.
    env.sim
        .fill(&id, Fill::Quantums(40_000_000))
        .expect("partial fill");
    let fills = indexer
        .accounts()
        .get_subaccount_fills(&subaccount, None)
        .await
        .expect("fills");
    assert!(fills.is_empty(), "a fill is indexed with its block");
    let fill_height = env.sim.advance_blocks(1);
    let fills = indexer
        .accounts()
        .get_subaccount_fills(&subaccount, None)
        .await
        .expect("fills");
    assert_eq!(fills.len(), 1);
    let f = &fills[0];
    assert_eq!(f.order_id.as_ref(), Some(&uuid));
    assert_eq!(dec(&f.size), "0.004");
    assert_eq!(dec(&f.price.0), "50000");
    assert_eq!(f.side, IndexerSide::Buy);
    assert_eq!(f.liquidity, Liquidity::Maker);
    assert_eq!(f.created_at_height, Height(fill_height));
    assert_eq!(f.market, Ticker("BTC-USD".into()));
    let o = indexer.accounts().get_order(&uuid).await.expect("order");
    assert_eq!(dec(&o.total_filled), "0.004");
    assert!(
        is(&o.status, IndexerStatus::Open),
        "partially filled stays OPEN"
    );

    env.sim.fill(&id, Fill::Full).expect("fill the rest");
    let last_height = env.sim.advance_blocks(1);
    let o = indexer.accounts().get_order(&uuid).await.expect("order");
    assert!(is(&o.status, IndexerStatus::Filled), "{o:?}");
    assert_eq!(dec(&o.total_filled), "0.01");
    let fills = indexer
        .accounts()
        .get_subaccount_fills(&subaccount, None)
        .await
        .expect("fills");
    assert_eq!(fills.len(), 2);
    // Newest first, each with its own id.
    assert_eq!(fills[0].created_at_height, Height(last_height));
    assert_eq!(dec(&fills[0].size), "0.006");
    assert_ne!(fills[0].id, fills[1].id);
    let at_first = indexer
        .accounts()
        .get_subaccount_fills(
            &subaccount,
            Some(GetFillsOpts {
                created_before_or_at_height: Some(Height(fill_height)),
                ..GetFillsOpts::default()
            }),
        )
        .await
        .expect("fills up to the first");
    assert_eq!(at_first.len(), 1);
    assert_eq!(at_first[0].id, fills[1].id);
}

#[tokio::test]
async fn the_order_list_applies_the_clients_filters() {
    let mut env = env().await;
    let indexer = indexer(&env.sim);
    let subaccount = env.account.subaccount(0).expect("subaccount");
    let h = env.sim.height();
    let (short_id, short) = short_order(&env.account, 1, h + 5);
    env.client
        .place_order(&mut env.account, short)
        .await
        .expect("short");
    let (_, later) = builder(&env.account)
        .limit(
            OrderSide::Sell,
            60_000,
            "0.02".parse::<dydx::indexer::Quantity>().expect("size"),
        )
        .until(Height(h + 8))
        .build(2)
        .expect("build");
    env.client
        .place_order(&mut env.account, later)
        .await
        .expect("short sell");
    let gtbt = env.sim.block_time() + secs(600);
    let (long_id, long) = long_order(&env.account, 3, gtbt);
    env.client
        .place_order(&mut env.account, long)
        .await
        .expect("long");
    env.sim.advance_blocks(1);

    let list = |opts: ListOrdersOpts| {
        let indexer = &indexer;
        let subaccount = subaccount.clone();
        async move {
            indexer
                .accounts()
                .get_subaccount_orders(&subaccount, Some(opts))
                .await
                .expect("list")
                .into_iter()
                .map(|o| o.client_id.0)
                .collect::<Vec<_>>()
        }
    };
    // Default: by good-til descending, good-til-block-time orders first.
    assert_eq!(list(ListOrdersOpts::default()).await, vec![3, 2, 1]);
    assert_eq!(
        list(ListOrdersOpts {
            return_latest_orders: Some(false),
            ..Default::default()
        })
        .await,
        vec![1, 2, 3]
    );
    assert_eq!(
        list(ListOrdersOpts {
            status: Some(IndexerStatus::Open),
            ..Default::default()
        })
        .await,
        vec![3]
    );
    assert_eq!(
        list(ListOrdersOpts {
            side: Some(IndexerSide::Sell),
            ..Default::default()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        list(ListOrdersOpts {
            good_til_block_before_or_at: Some(Height(h + 5)),
            ..Default::default()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        list(ListOrdersOpts {
            good_til_block_time_before_or_at: Some(gtbt),
            ..Default::default()
        })
        .await,
        vec![3]
    );
    assert_eq!(
        list(ListOrdersOpts {
            limit: Some(1),
            ..Default::default()
        })
        .await,
        vec![3]
    );
    assert!(
        list(ListOrdersOpts {
            ticker: Some(Ticker("ETH-USD".into())),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert!(
        list(ListOrdersOpts {
            order_type: Some(OrderType::StopLimit),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    // An unknown ticker is a bad request.
    assert!(
        indexer
            .accounts()
            .get_subaccount_orders(
                &subaccount,
                Some(ListOrdersOpts {
                    ticker: Some(Ticker("NOPE-USD".into())),
                    ..Default::default()
                })
            )
            .await
            .is_err()
    );
    drop((short_id, long_id));
}

#[tokio::test]
async fn cancels_and_expiry_set_the_rows_status() {
    let mut env = env().await;
    let indexer = indexer(&env.sim);
    let h = env.sim.height();
    // A short-term order that never filled has no row: once cancelled it is gone.
    let (gone_id, gone) = short_order(&env.account, 21, h + 10);
    env.client
        .place_order(&mut env.account, gone)
        .await
        .expect("place");
    env.client
        .cancel_order(&mut env.account, gone_id.clone(), Height(h + 10))
        .await
        .expect("cancel");
    let gone_uuid = dydx::indexer::OrderId(indexer_id(&gone_id));
    assert!(indexer.accounts().get_order(&gone_uuid).await.is_err());

    // Partially filled first: the row keeps the cancel, best effort.
    let (part_id, part) = short_order(&env.account, 22, h + 10);
    env.client
        .place_order(&mut env.account, part)
        .await
        .expect("place");
    env.sim
        .fill(&part_id, Fill::Quantums(10_000_000))
        .expect("fill");
    env.sim.advance_blocks(1);
    let part_uuid = dydx::indexer::OrderId(indexer_id(&part_id));
    let o = indexer.accounts().get_order(&part_uuid).await.expect("row");
    assert!(is(&o.status, IndexerStatus::Open), "{o:?}");
    env.client
        .cancel_order(&mut env.account, part_id.clone(), Height(h + 10))
        .await
        .expect("cancel");
    let o = indexer.accounts().get_order(&part_uuid).await.expect("row");
    assert!(is(&o.status, IndexerStatus::BestEffortCanceled), "{o:?}");

    // Partially filled and left to expire: CANCELED at its good-til-block.
    let h = env.sim.height();
    let (exp_id, exp) = short_order(&env.account, 23, h + 2);
    env.client
        .place_order(&mut env.account, exp)
        .await
        .expect("place");
    env.sim
        .fill(&exp_id, Fill::Quantums(10_000_000))
        .expect("fill");
    env.sim.advance_blocks(1);
    let exp_uuid = dydx::indexer::OrderId(indexer_id(&exp_id));
    let o = indexer.accounts().get_order(&exp_uuid).await.expect("row");
    assert!(is(&o.status, IndexerStatus::Open));
    env.sim.advance_blocks(1);
    let o = indexer.accounts().get_order(&exp_uuid).await.expect("row");
    assert!(is(&o.status, IndexerStatus::Canceled), "{o:?}");
    assert_eq!(dec(&o.total_filled), "0.001");
}

#[tokio::test]
async fn markets_give_the_clients_order_parameters() {
    let env = env().await;
    let indexer = indexer(&env.sim);
    let btc = indexer
        .markets()
        .get_perpetual_market(&Ticker("BTC-USD".into()))
        .await
        .expect("BTC-USD");
    let params = btc.order_params();
    let expected = market();
    assert_eq!(params.clob_pair_id, expected.clob_pair_id);
    assert_eq!(params.atomic_resolution, expected.atomic_resolution);
    assert_eq!(
        params.quantum_conversion_exponent,
        expected.quantum_conversion_exponent
    );
    assert_eq!(params.step_base_quantums, expected.step_base_quantums);
    assert_eq!(params.subticks_per_tick, expected.subticks_per_tick);
    assert_eq!(btc.tick_size.to_string(), "1");
    assert_eq!(btc.step_size.to_string(), "0.0001");
    let all = indexer
        .markets()
        .get_perpetual_markets(None)
        .await
        .expect("markets");
    assert_eq!(all.len(), 2);
    assert_eq!(all[&Ticker("ETH-USD".into())].clob_pair_id, ClobPairId(1));
}
