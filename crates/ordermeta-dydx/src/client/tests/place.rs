//! `place_order`: write-ahead recording, and what each broadcast outcome leaves recorded.

use super::*;

#[cfg(feature = "recording")]
#[tokio::test]
async fn place_records_pending_before_broadcast_then_active() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(7, 0);
    let key = order_key(&id, GoodTil::Block(120));
    let mut gw = gateway();
    let seen = store.clone();
    let k = key.clone();
    gw.expect_place().times(1).returning(move |_| {
        // Write-ahead: the metadata is already there, pending, when the broadcast happens.
        let st = futures::executor::block_on(seen.get(&k))
            .expect("get")
            .map(|m| m.status);
        assert_eq!(st, Some(OrderStatus::Pending));
        Ok("PLACEHASH".into())
    });
    let c = client(gw, store.clone());
    let placed = c
        .place_order(built_order(&id, Some(GoodTil::Block(120))), details())
        .await
        .expect("place");
    assert_eq!(placed.order_id, key);
    assert_eq!(placed.order_id, format!("{ME}/0/1/0/7@b120"));
    assert!(placed.recorded);
    // `active` is written off the caller's path (the default): pending until the writer ran.
    assert_eq!(status(&store, &key).await, OrderStatus::Pending);
    flushed(&c).await;
    let m = store.get_required(&key).await.expect("get");
    assert_eq!(m.status, OrderStatus::Active);
    assert_eq!(m.tx_hash.as_deref(), Some("PLACEHASH"));
    assert_eq!(m.dydx_order_id, id);
    assert_eq!(m.good_til, GoodTil::Block(120));
    assert_eq!((m.symbol.as_str(), m.quantity.as_str()), ("ETH-USD", "0.5"));
    let steps: Vec<_> = m.history.iter().map(|h| h.status).collect();
    assert_eq!(steps, [OrderStatus::Pending, OrderStatus::Active]);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn place_with_store_down_broadcasts_nothing() {
    let store = Arc::new(FlakyStore::default());
    store.down.store(true, Ordering::SeqCst);
    let mut gw = gateway();
    gw.expect_place().times(0);
    let c = client(gw, store.clone());
    let err = c
        .place_order(
            built_order(&oid(1, 0), Some(GoodTil::Block(120))),
            details(),
        )
        .await
        .expect_err("must not place");
    assert!(matches!(err, PlaceError::Storage { .. }), "{err}");
    assert!(err.to_string().contains("not placed"), "{err}");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn place_rejected_marks_failed() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place()
        .times(1)
        .returning(|_| Err(rejected(codes::CODESPACE_CLOB, 11)));
    let c = client(gw, store.clone());
    let err = c
        .place_order(
            built_order(&oid(2, 0), Some(GoodTil::Block(500))),
            details(),
        )
        .await
        .expect_err("rejected");
    match err {
        PlaceError::Rejected { order_id, error } => {
            assert_eq!(error.code, 11);
            assert_eq!(status(&store, &order_id).await, OrderStatus::Failed);
        }
        other => panic!("{other}"),
    }
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn place_without_answer_stays_pending() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(1).returning(|_| {
        Err(GatewayError::Unavailable {
            source: "timeout".into(),
        })
    });
    let c = client(gw, store.clone());
    let err = c
        .place_order(
            built_order(&oid(3, 64), Some(GoodTil::BlockTime(1_800_000_500))),
            details(),
        )
        .await
        .expect_err("unknown");
    match err {
        PlaceError::Network { order_id, .. } => {
            assert_eq!(status(&store, &order_id).await, OrderStatus::Pending);
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn place_with_recording_off_behaves_as_before() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(1).returning(|_| Ok("H".into()));
    let c = client(gw, store.clone());
    off(&c);
    let placed = c
        .place_order(
            built_order(&oid(4, 0), Some(GoodTil::Block(120))),
            details(),
        )
        .await
        .expect("placed");
    assert!(!placed.recorded);
    assert!(store.inner.is_empty(), "nothing recorded");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn place_invalid_orders_touch_nothing() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(0);
    let c = client(gw, store.clone());
    let no_good_til = c
        .place_order(built_order(&oid(5, 0), None), details())
        .await;
    assert!(matches!(no_good_til, Err(PlaceError::InvalidOrder { .. })));
    // Short-term flags with a block time is inconsistent.
    let mismatched = c
        .place_order(
            built_order(&oid(5, 0), Some(GoodTil::BlockTime(5))),
            details(),
        )
        .await;
    assert!(matches!(mismatched, Err(PlaceError::InvalidOrder { .. })));
    let mut d = details();
    d.quantity = "1e3".into();
    let bad_qty = c
        .place_order(built_order(&oid(5, 0), Some(GoodTil::Block(120))), d)
        .await;
    assert!(matches!(bad_qty, Err(PlaceError::InvalidOrder { .. })));
    let no_id = c.place_order(Order::default(), details()).await;
    assert!(matches!(no_id, Err(PlaceError::InvalidOrder { .. })));
    assert!(store.inner.is_empty());
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn details_that_contradict_the_order_touch_nothing() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(0);
    let c = client(gw, store.clone());
    let order = built_order(&oid(8, 0), Some(GoodTil::Block(120)));
    let sell = OrderDetails {
        side: Side::Sell,
        ..details()
    };
    match c.place_order(order.clone(), sell).await {
        Err(PlaceError::Details { order_id, source }) => {
            assert_eq!(order_id, format!("{ME}/0/1/0/8@b120"));
            assert!(
                matches!(
                    source,
                    DetailsError::Disagree {
                        field: DetailsField::Side,
                        ..
                    }
                ),
                "{source:?}"
            );
        }
        other => panic!("expected Details, got {other:?}"),
    }
    // A limit order (no immediate-or-cancel) is not a market order.
    let market = OrderDetails {
        order_type: OrderType::Market,
        ..details()
    };
    assert!(matches!(
        c.place_order(order, market).await,
        Err(PlaceError::Details { .. })
    ));
    assert!(store.inner.is_empty(), "nothing recorded");
}
