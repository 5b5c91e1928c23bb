//! `cancel_all`: batching of short-term orders, single cancels of stateful ones.

use super::*;

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_all_batches_short_term_and_cancels_stateful_singly() {
    let store = Arc::new(FlakyStore::default());
    let mut keys = Vec::new();
    for i in 0..150 {
        keys.push(
            seed(
                &store,
                &oid(1000 + i, 0),
                GoodTil::Block(110 + i % 20),
                OrderStatus::Active,
            )
            .await,
        );
    }
    let mut sub1 = oid(5000, 0);
    sub1.subaccount_number = 1;
    keys.push(seed(&store, &sub1, GoodTil::Block(120), OrderStatus::Active).await);
    for i in 0..3 {
        keys.push(
            seed(
                &store,
                &oid(2000 + i, 64),
                GoodTil::BlockTime(CLOCK.block_time + 60),
                OrderStatus::Active,
            )
            .await,
        );
    }
    let expired = seed(
        &store,
        &oid(3000, 0),
        GoodTil::Block(99),
        OrderStatus::Active,
    )
    .await;
    let mut theirs = oid(4000, 0);
    theirs.owner = OTHER.into();
    let not_mine = seed(&store, &theirs, GoodTil::Block(130), OrderStatus::Active).await;

    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    gw.expect_batch_cancel()
        .times(3)
        .returning(move |sub, batches, gtb| {
            let n: usize = batches.iter().map(|(_, ids)| ids.len()).sum();
            seen.lock().expect("lock").push((sub, n, gtb));
            Ok(format!("BATCH-{sub}-{n}"))
        });
    gw.expect_cancel()
        .times(3)
        .returning(|_, _| Ok("SINGLE".into()));
    executes_every_tx(&mut gw);
    let c = client(gw, store.clone());
    let report = c.cancel_all(CancelScope::All).await.expect("cancel_all");
    c.confirm_outstanding().await;
    let mut calls = calls.lock().expect("lock").clone();
    calls.sort();
    assert_eq!(calls, [(0, 50, 129), (0, 100, 129), (1, 1, 120)]);
    assert_eq!(report.batches, 3);
    assert_eq!(report.cancelled.len(), 154);
    assert_eq!(report.failed.len(), 1, "the expired one");
    assert_eq!(report.failed[0].1.kind(), CancelErrorKind::OrderExpired);
    for k in &keys {
        assert_eq!(status(&store, k).await, OrderStatus::Cancelled, "{k}");
    }
    assert_eq!(status(&store, &expired).await, OrderStatus::Expired);
    assert_eq!(
        status(&store, &not_mine).await,
        OrderStatus::Active,
        "other owners untouched"
    );
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_all_by_market_and_failed_batch_releases_claims() {
    let store = Arc::new(FlakyStore::default());
    let eth = seed(&store, &oid(1, 0), GoodTil::Block(130), OrderStatus::Active).await;
    let mut btc_meta = store.get_required(&eth).await.expect("get");
    btc_meta.order_id = "btc-order".into();
    btc_meta.symbol = "BTC-USD".into();
    store.record(&btc_meta).await.expect("record");
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_batch_cancel()
        .times(1)
        .returning(|_, _, _| Err(rejected("clob", 5001)));
    let c = client(gw, store.clone());
    let report = c
        .cancel_all(CancelScope::Market("ETH-USD".into()))
        .await
        .expect("cancel_all");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].1.kind(), CancelErrorKind::RateLimited);
    assert_eq!(
        status(&store, &eth).await,
        OrderStatus::Active,
        "claim given back"
    );
    assert_eq!(status(&store, "btc-order").await, OrderStatus::Active);
}

/// The kill switch covers everything that may be live: active orders, pending ones (their
/// placement may have landed) and stale claims; a live claim is left to its canceller.
#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_all_is_a_kill_switch_with_counts() {
    let store = Arc::new(FlakyStore::default());
    let gt = GoodTil::Block(130);
    let lt = GoodTil::BlockTime(CLOCK.block_time + 600);
    let batched = [
        seed(&store, &oid(1, 0), gt, OrderStatus::Active).await,
        seed(&store, &oid(2, 0), gt, OrderStatus::Active).await,
        seed(&store, &oid(3, 0), gt, OrderStatus::Pending).await,
        seed(&store, &oid(4, 0), gt, OrderStatus::Pending).await,
        seed_stale(&store, &oid(5, 0), gt).await,
        seed_stale(&store, &oid(6, 0), gt).await,
    ];
    let live_claim = seed(&store, &oid(7, 0), gt, OrderStatus::Cancelling).await;
    let expired = seed(&store, &oid(8, 0), GoodTil::Block(90), OrderStatus::Pending).await;
    let stateful_pending = seed(&store, &oid(9, 64), lt, OrderStatus::Pending).await;
    let stateful_stale = seed_stale(&store, &oid(10, 64), lt).await;
    let stateful_gone = seed(&store, &oid(11, 64), lt, OrderStatus::Active).await;
    let stateful_refused = seed(&store, &oid(12, 64), lt, OrderStatus::Active).await;
    let done = seed(&store, &oid(13, 0), gt, OrderStatus::Cancelled).await;

    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_batch_cancel()
        .times(1)
        .returning(|sub, batches, gtb| {
            assert_eq!((sub, gtb), (0, 130));
            let mut ids: Vec<u32> = batches.into_iter().flat_map(|(_, ids)| ids).collect();
            ids.sort();
            assert_eq!(ids, [1, 2, 3, 4, 5, 6], "active, pending and stale claims");
            Ok("BATCH".into())
        });
    gw.expect_cancel()
        .times(4)
        .returning(|id, _| match id.client_id {
            9 | 10 => Ok("SINGLE".into()),
            11 => Err(rejected("clob", codes::STATEFUL_ORDER_DOES_NOT_EXIST)),
            _ => Err(rejected("clob", 29)),
        });
    executes_every_tx(&mut gw);
    let c = client(gw, store.clone());
    let report = c.cancel_all(CancelScope::All).await.expect("cancel_all");
    c.confirm_outstanding().await;
    let want: std::collections::BTreeMap<&str, usize> = [
        ("cancelled", 8),
        ("cancel_in_progress", 1),
        ("order_expired", 1),
        ("already_cancelled", 1),
        ("rejected", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(report.counts(), want, "{report:?}");
    assert_eq!(report.batches, 1);
    for k in batched.iter().chain([&stateful_pending, &stateful_stale]) {
        assert_eq!(status(&store, k).await, OrderStatus::Cancelled, "{k}");
    }
    let held = store.get_required(&live_claim).await.expect("get");
    assert_eq!(
        (held.status, held.version),
        (OrderStatus::Cancelling, 1),
        "a live claim is its canceller's"
    );
    assert_eq!(status(&store, &expired).await, OrderStatus::Expired);
    assert_eq!(status(&store, &stateful_gone).await, OrderStatus::Cancelled);
    assert_eq!(
        status(&store, &stateful_refused).await,
        OrderStatus::Active,
        "refused: claim given back"
    );
    assert_eq!(status(&store, &done).await, OrderStatus::Cancelled);
}

/// The kill switch claims a `pending` record while its placement is in flight: once the
/// placement is accepted, the placer sends the cancel again (the first may have reached the
/// node before the order did).
#[cfg(feature = "recording")]
#[tokio::test]
async fn placement_raced_by_the_kill_switch_is_cancelled_again() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(60, 64);
    let gt = GoodTil::BlockTime(CLOCK.block_time + 600);
    let key = order_key(&id, gt);
    let mut gw = gateway();
    let (seen, k) = (store.clone(), key.clone());
    gw.expect_place().times(1).returning(move |_| {
        // cancel_all, meanwhile: the stateful cancel found no order (3006) and recorded it.
        let claim =
            TransitionRequest::new(&k, &[OrderStatus::Pending], OrderStatus::Cancelling).lease(
                Lease::new("kill-switch", now() + chrono::Duration::seconds(30)),
            );
        futures::executor::block_on(seen.transition(&claim)).expect("claimed");
        let done = TransitionRequest::new(&k, &[OrderStatus::Cancelling], OrderStatus::Cancelled);
        futures::executor::block_on(seen.transition(&done)).expect("cancelled");
        Ok("PLACED".into())
    });
    let want = id.clone();
    gw.expect_cancel()
        .withf(move |i, g| *i == want && *g == gt)
        .times(1)
        .returning(|_, _| Ok("AGAIN".into()));
    let c = client(gw, store.clone());
    let placed = c
        .place_order(built_order(&id, Some(gt)), details())
        .await
        .expect("placed");
    assert_eq!(placed.tx_hash, "PLACED");
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);
}
