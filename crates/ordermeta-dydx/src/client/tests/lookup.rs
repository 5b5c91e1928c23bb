//! Lookup and cancel by the bot's own names (label, client id), and the client-id reuse
//! policy.
#![cfg(feature = "recording")]

use super::*;
use crate::indexer::{IndexerOrder, IndexerOrderStatus, MockIndexerApi, indexer_order_id};
use crate::{ClientIdReuse, PlaceOptions};

/// The cancels a gateway received: `(OrderId, good-til)` each.
type Sent = Arc<std::sync::Mutex<Vec<(OrderId, GoodTil)>>>;

/// A gateway that accepts every placement and cancel, counting them.
fn accepting() -> (MockOrderGateway, Sent) {
    let cancels = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_place().returning(|_| Ok("PLACED".into()));
    let seen = cancels.clone();
    gw.expect_cancel().returning(move |id, gt| {
        seen.lock().expect("lock").push((id.clone(), gt));
        Ok("CANCELLED".into())
    });
    (gw, cancels)
}

#[tokio::test]
async fn label_is_stored_found_and_cancelled_by() {
    let store = Arc::new(FlakyStore::default());
    let (gw, cancels) = accepting();
    let c = client(gw, store.clone());
    let id = oid(5, 0);
    let placed = c
        .place_order_with(
            built_order(&id, Some(GoodTil::Block(120))),
            details(),
            PlaceOptions::label("bot-order-7f3a"),
        )
        .await
        .expect("place");
    let found = c
        .find_by_label("bot-order-7f3a")
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.order_id, placed.order_id);
    assert_eq!(found.label.as_deref(), Some("bot-order-7f3a"));
    assert!(c.find_by_label("other").await.expect("find").is_none());

    let done = c.cancel_by_label("bot-order-7f3a").await.expect("cancel");
    assert_eq!(done.order_id, placed.order_id);
    assert_eq!(
        cancels.lock().expect("lock").as_slice(),
        &[(id, GoodTil::Block(120))],
        "the stored id and good-til, with nothing but the label given"
    );
    assert_eq!(
        status(&store, &placed.order_id).await,
        OrderStatus::Cancelled
    );

    let err = c.cancel_by_label("nope").await.expect_err("no such label");
    assert_eq!(err.kind(), CancelErrorKind::MetadataNotFound);
    assert!(err.to_string().contains("label \"nope\""), "{err}");
}

#[tokio::test]
async fn invalid_label_refused_before_anything() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(0);
    let c = client(gw, store.clone());
    for label in ["", "tab\there", &"x".repeat(129)] {
        let err = c
            .place_order_with(
                built_order(&oid(1, 0), Some(GoodTil::Block(120))),
                details(),
                PlaceOptions::label(label),
            )
            .await
            .expect_err("bad label");
        assert!(matches!(err, PlaceError::InvalidOrder { .. }), "{err}");
    }
    assert!(
        store
            .inner
            .list(&ListQuery::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn client_id_lookup_and_cancel_need_no_good_til() {
    let store = Arc::new(FlakyStore::default());
    let (gw, cancels) = accepting();
    let c = client(gw, store.clone());
    // Client id 9 on market 1, placed twice (a replacement: the second is the newest).
    let id = oid(9, 0);
    c.place_order(built_order(&id, Some(GoodTil::Block(110))), details())
        .await
        .expect("place");
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let newest = c
        .place_order(built_order(&id, Some(GoodTil::Block(125))), details())
        .await
        .expect("place again");
    let found = c
        .find_by_client_id(0, 1, 9)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.order_id, newest.order_id);
    assert!(
        c.find_by_client_id(0, 2, 9).await.expect("find").is_none(),
        "other market"
    );
    assert!(
        c.find_by_client_id(1, 1, 9).await.expect("find").is_none(),
        "other subaccount"
    );

    let done = c.cancel_by_client_id(0, 1, 9).await.expect("cancel");
    assert_eq!(done.order_id, newest.order_id);
    assert_eq!(
        cancels.lock().expect("lock").as_slice(),
        &[(id, GoodTil::Block(125))]
    );
    let err = c.cancel_by_client_id(0, 1, 10).await.expect_err("none");
    assert_eq!(err.kind(), CancelErrorKind::MetadataNotFound);
    assert!(err.to_string().contains(&format!("{ME}/0/1/*/10")), "{err}");
}

#[tokio::test]
async fn reuse_marks_the_replaced_record() {
    let store = Arc::new(FlakyStore::default());
    let (gw, cancels) = accepting();
    let c = client(gw, store.clone());
    let id = oid(3, 0);
    let first = c
        .place_order(built_order(&id, Some(GoodTil::Block(110))), details())
        .await
        .expect("place");
    let second = c
        .place_order(built_order(&id, Some(GoodTil::Block(120))), details())
        .await
        .expect("re-place the same OrderId");
    flushed(&c).await;
    let old = store.get_required(&first.order_id).await.expect("get");
    assert_eq!(old.status, OrderStatus::Cancelled);
    let reason = old
        .history
        .last()
        .and_then(|h| h.reason.clone())
        .unwrap_or_default();
    assert!(
        reason.contains("replaced by") && reason.contains(&second.order_id),
        "{reason}"
    );
    assert_eq!(status(&store, &second.order_id).await, OrderStatus::Active);
    assert!(
        cancels.lock().expect("lock").is_empty(),
        "a replacement sends no cancel"
    );

    // Other order flags: another chain order, still live; its record is left alone.
    let long = c
        .place_order(
            built_order(
                &oid(3, 64),
                Some(GoodTil::BlockTime(CLOCK.block_time + 600)),
            ),
            details(),
        )
        .await
        .expect("long-term with the same client id");
    flushed(&c).await;
    assert_eq!(status(&store, &second.order_id).await, OrderStatus::Active);
    assert_eq!(status(&store, &long.order_id).await, OrderStatus::Active);
}

#[tokio::test]
async fn reuse_of_a_pending_record_goes_through_a_claim() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(4, 0);
    let old = seed(&store, &id, GoodTil::Block(110), OrderStatus::Pending).await;
    let (gw, _) = accepting();
    let c = client(gw, store.clone());
    c.place_order(built_order(&id, Some(GoodTil::Block(120))), details())
        .await
        .expect("place");
    flushed(&c).await;
    let m = store.get_required(&old).await.expect("get");
    let steps: Vec<_> = m.history.iter().map(|h| h.status).collect();
    assert_eq!(
        steps,
        [
            OrderStatus::Pending,
            OrderStatus::Cancelling,
            OrderStatus::Cancelled
        ]
    );
}

#[tokio::test]
async fn a_refused_replacement_leaves_the_old_order_live() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(6, 0);
    let old = seed(&store, &id, GoodTil::Block(110), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_place().returning(|_| Err(rejected("clob", 7)));
    let c = client(gw, store.clone());
    let err = c
        .place_order(built_order(&id, Some(GoodTil::Block(120))), details())
        .await
        .expect_err("refused by the node");
    assert!(matches!(err, PlaceError::Rejected { .. }), "{err}");
    assert_eq!(status(&store, &old).await, OrderStatus::Active);
}

#[tokio::test]
async fn refuse_policy_refuses_an_open_client_id() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(8, 0);
    let open = seed(&store, &id, GoodTil::Block(110), OrderStatus::Active).await;
    let done = seed(
        &store,
        &oid(18, 0),
        GoodTil::Block(110),
        OrderStatus::Cancelled,
    )
    .await;
    let mut gw = gateway();
    gw.expect_place()
        .times(1)
        .returning(|_| Ok("PLACED".into()));
    let c = client_settings(
        gw,
        store.clone(),
        ChainSettings {
            client_id_reuse: ClientIdReuse::Refuse,
            ..settings()
        },
    );
    let err = c
        .place_order(built_order(&id, Some(GoodTil::Block(120))), details())
        .await
        .expect_err("client id in use");
    match &err {
        PlaceError::ClientIdInUse {
            previous, status, ..
        } => {
            assert_eq!(previous, &open);
            assert_eq!(*status, OrderStatus::Active);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(
        store
            .get(&order_key(&id, GoodTil::Block(120)))
            .await
            .expect("get")
            .is_none(),
        "nothing recorded"
    );
    // A client id whose record is terminal is free again.
    c.place_order(
        built_order(&oid(18, 0), Some(GoodTil::Block(120))),
        details(),
    )
    .await
    .expect("reuse after the order ended");
    assert_eq!(status(&store, &done).await, OrderStatus::Cancelled);
    // The per-placement option overrides the setting.
    let mut gw = gateway();
    gw.expect_place().times(0);
    let c = client(gw, store.clone());
    let err = c
        .place_order_with(
            built_order(&id, Some(GoodTil::Block(121))),
            details(),
            PlaceOptions::default().client_id_reuse(ClientIdReuse::Refuse),
        )
        .await
        .expect_err("refused by the option");
    assert!(matches!(err, PlaceError::ClientIdInUse { .. }), "{err}");
}

#[tokio::test]
async fn cancel_by_client_id_imports_an_order_only_the_indexer_knows() {
    let store = Arc::new(FlakyStore::default());
    let (gw, cancels) = accepting();
    let long = oid(42, 64);
    let good_til = GoodTil::BlockTime(CLOCK.block_time + 3600);
    let report = IndexerOrder {
        indexer_id: indexer_order_id(&long),
        order_id: long.clone(),
        good_til: Some(good_til),
        status: IndexerOrderStatus::Open,
        total_filled: Some("0".into()),
        size: Some("2".into()),
        price: Some("3100".into()),
        side: Some(Side::Buy),
        ticker: Some("ETH-USD".into()),
        order_type: Some(OrderType::Limit),
        removal_reason: None,
        height: Some(90),
    };
    let mut indexer = MockIndexerApi::new();
    let wanted = indexer_order_id(&long);
    indexer.expect_order().returning(move |owner, id| {
        assert_eq!(owner, ME);
        Ok((id == wanted).then(|| report.clone()))
    });
    let c = client(gw, store.clone()).with_indexer(Arc::new(indexer));
    let done = c.cancel_by_client_id(0, 1, 42).await.expect("cancel");
    assert_eq!(done.order_id, order_key(&long, good_til));
    assert_eq!(
        cancels.lock().expect("lock").as_slice(),
        &[(long.clone(), good_til)],
        "cancelled with the indexer's exact OrderId and good-til"
    );
    let m = store.get_required(&done.order_id).await.expect("get");
    assert_eq!(
        m.history[0].reason.as_deref(),
        Some("imported from the indexer (OPEN)")
    );
    assert_eq!(m.indexer_id, Some(indexer_order_id(&long)));
}
