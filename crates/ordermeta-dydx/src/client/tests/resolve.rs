//! The indexer decides instead of a guess: stateful cancels answered "does not exist"
//! (3006), and `pending` records before reconciliation cancels them.
#![cfg(feature = "recording")]

use super::*;
use crate::indexer::{
    IndexerClock, IndexerOrder, IndexerOrderStatus, MockIndexerApi, indexer_order_id,
};

fn report(
    id: &OrderId,
    good_til: GoodTil,
    status: IndexerOrderStatus,
    filled: &str,
) -> IndexerOrder {
    IndexerOrder {
        indexer_id: indexer_order_id(id),
        order_id: id.clone(),
        good_til: Some(good_til),
        status,
        total_filled: Some(filled.into()),
        size: Some("0.5".into()),
        price: Some("3000.25".into()),
        side: Some(Side::Sell),
        ticker: Some("ETH-USD".into()),
        order_type: Some(OrderType::Limit),
        removal_reason: None,
        height: Some(99),
    }
}

/// An indexer that reports each order by `statuses` in turn (the last one repeats).
fn indexer_saying(reports: Vec<IndexerOrder>) -> MockIndexerApi {
    let mut indexer = MockIndexerApi::new();
    let calls = std::sync::Mutex::new(0usize);
    indexer.expect_order().returning(move |_, _| {
        let mut n = calls.lock().expect("lock");
        let r = reports.get(*n).or(reports.last()).cloned();
        *n += 1;
        Ok(r)
    });
    indexer.expect_clock().returning(|| {
        Ok(IndexerClock {
            height: CLOCK.height,
            time: chrono::DateTime::from_timestamp(i64::from(CLOCK.block_time), 0)
                .unwrap_or_default(),
        })
    });
    indexer
}

fn gone_on_cancel() -> MockOrderGateway {
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .times(1)
        .returning(|_, _| Err(rejected("clob", codes::STATEFUL_ORDER_DOES_NOT_EXIST)));
    gw
}

#[tokio::test]
async fn does_not_exist_is_decided_by_the_indexer() {
    let gt = GoodTil::BlockTime(CLOCK.block_time + 600);
    for (n, (said, want_status, want_kind)) in [
        (
            IndexerOrderStatus::Filled,
            OrderStatus::Filled,
            CancelErrorKind::AlreadyFilled,
        ),
        (
            IndexerOrderStatus::Canceled,
            OrderStatus::Cancelled,
            CancelErrorKind::AlreadyCancelled,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let store = Arc::new(FlakyStore::default());
        let id = oid(50 + n as u32, 64);
        let key = seed(&store, &id, gt, OrderStatus::Active).await;
        let indexer = indexer_saying(vec![report(&id, gt, said, "0.5")]);
        let c = client(gone_on_cancel(), store.clone()).with_indexer(Arc::new(indexer));
        let err = c.cancel_order(&key).await.expect_err("gone");
        assert_eq!(err.kind(), want_kind, "{said}: {err}");
        let m = store.get_required(&key).await.expect("get");
        assert_eq!(m.status, want_status, "{said}");
        if said == IndexerOrderStatus::Filled {
            assert_eq!(m.filled_quantity.as_deref(), Some("0.5"));
        } else {
            assert!(m.cancel_confirmed_at.is_some(), "confirmed by the chain");
        }
        assert_eq!(m.indexer_id, Some(indexer_order_id(&id)));
    }
}

#[tokio::test]
async fn an_indexer_behind_the_node_is_asked_twice_then_the_old_rule_applies() {
    let store = Arc::new(FlakyStore::default());
    let gt = GoodTil::BlockTime(CLOCK.block_time + 600);
    let id = oid(60, 64);
    let key = seed(&store, &id, gt, OrderStatus::Active).await;
    // Still open at the first look, filled at the second.
    let indexer = indexer_saying(vec![
        report(&id, gt, IndexerOrderStatus::Open, "0"),
        report(&id, gt, IndexerOrderStatus::Filled, "0.5"),
    ]);
    let c = client(gone_on_cancel(), store.clone()).with_indexer(Arc::new(indexer));
    let err = c.cancel_order(&key).await.expect_err("gone");
    assert_eq!(err.kind(), CancelErrorKind::AlreadyFilled);
    assert_eq!(status(&store, &key).await, OrderStatus::Filled);

    // Open at both looks: the indexer cannot tell; recorded cancelled as before.
    let id = oid(61, 64);
    let key = seed(&store, &id, gt, OrderStatus::Active).await;
    let indexer = indexer_saying(vec![report(&id, gt, IndexerOrderStatus::Open, "0")]);
    let c = client(gone_on_cancel(), store.clone()).with_indexer(Arc::new(indexer));
    let err = c.cancel_order(&key).await.expect_err("gone");
    assert_eq!(err.kind(), CancelErrorKind::AlreadyCancelled);
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);

    // A report about a later placement with the same OrderId (another good-til) is not
    // about this record.
    let id = oid(62, 64);
    let key = seed(&store, &id, gt, OrderStatus::Active).await;
    let later = GoodTil::BlockTime(CLOCK.block_time + 900);
    let indexer = indexer_saying(vec![report(&id, later, IndexerOrderStatus::Filled, "0.5")]);
    let c = client(gone_on_cancel(), store.clone()).with_indexer(Arc::new(indexer));
    let err = c.cancel_order(&key).await.expect_err("gone");
    assert_eq!(err.kind(), CancelErrorKind::AlreadyCancelled);
}

#[tokio::test]
async fn reconcile_asks_the_indexer_before_cancelling() {
    let store = Arc::new(FlakyStore::default());
    let gt = GoodTil::Block(130);
    let filled = oid(70, 0);
    let live = oid(71, 0);
    let unknown = oid(72, 0);
    let filled_key = seed(&store, &filled, gt, OrderStatus::Pending).await;
    let live_key = seed(&store, &live, gt, OrderStatus::Pending).await;
    let unknown_key = seed(&store, &unknown, gt, OrderStatus::Pending).await;
    let mut indexer = MockIndexerApi::new();
    let (f, l) = (filled.clone(), live.clone());
    indexer.expect_order().returning(move |_, id| {
        Ok(if id == indexer_order_id(&f) {
            Some(report(&f, gt, IndexerOrderStatus::Filled, "0.5"))
        } else if id == indexer_order_id(&l) {
            Some(report(&l, gt, IndexerOrderStatus::BestEffortOpened, "0"))
        } else {
            None
        })
    });
    indexer.expect_clock().returning(|| {
        Ok(IndexerClock {
            height: CLOCK.height,
            time: chrono::DateTime::from_timestamp(i64::from(CLOCK.block_time), 0)
                .unwrap_or_default(),
        })
    });
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let cancelled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = cancelled.clone();
    gw.expect_cancel().returning(move |id, _| {
        seen.lock().expect("lock").push(id.client_id);
        Ok("RC".into())
    });
    let c = client(gw, store.clone()).with_indexer(Arc::new(indexer));
    let r = c
        .reconcile_pending(std::time::Duration::ZERO)
        .await
        .expect("reconcile");
    assert_eq!(
        r,
        ReconcileReport {
            expired: 0,
            cancelled: 2,
            unresolved: 0,
            filled: 1,
        }
    );
    let mut sent = cancelled.lock().expect("lock").clone();
    sent.sort_unstable();
    assert_eq!(
        sent,
        [71, 72],
        "no cancel for the order the indexer saw fill"
    );
    assert_eq!(status(&store, &filled_key).await, OrderStatus::Filled);
    assert_eq!(status(&store, &live_key).await, OrderStatus::Cancelled);
    assert_eq!(status(&store, &unknown_key).await, OrderStatus::Cancelled);
}

#[tokio::test]
async fn block_failure_3006_is_decided_by_the_indexer() {
    let store = Arc::new(FlakyStore::default());
    let gt = GoodTil::BlockTime(CLOCK.block_time + 600);
    let id = oid(80, 64);
    let key = seed(&store, &id, gt, OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().returning(|_, _| Ok("CANCELTX".into()));
    gw.expect_tx_result().returning(|_| {
        Ok(Some(TxOutcome {
            height: 101,
            result: Err(ChainError {
                codespace: "clob".into(),
                code: codes::STATEFUL_CANCEL_FAILED_ORDER_REMOVED,
                log: "removed".into(),
            }),
        }))
    });
    let indexer = indexer_saying(vec![report(&id, gt, IndexerOrderStatus::Filled, "0.5")]);
    let c = client(gw, store.clone()).with_indexer(Arc::new(indexer));
    c.cancel_order(&key).await.expect("accepted at CheckTx");
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelling);
    c.confirm_all(std::time::Duration::from_secs(5)).await;
    let m = store.get_required(&key).await.expect("get");
    assert_eq!(
        m.status,
        OrderStatus::Filled,
        "the fill, not a guessed cancel"
    );
    assert_eq!(m.filled_quantity.as_deref(), Some("0.5"));
}

#[tokio::test]
async fn a_fill_recorded_by_the_sync_before_the_placement_returned_stands() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(90, 0);
    let key = order_key(&id, GoodTil::Block(120));
    let mut gw = gateway();
    let seen = store.clone();
    let k = key.clone();
    gw.expect_place().times(1).returning(move |_| {
        // The indexer sync applies FILLED while the broadcast is still answering.
        let req = TransitionRequest::new(&k, &[OrderStatus::Pending], OrderStatus::Filled)
            .reason("indexer: filled");
        futures::executor::block_on(seen.transition(&req)).expect("filled first");
        Ok("PLACEHASH".into())
    });
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let placed = c
        .place_order(built_order(&id, Some(GoodTil::Block(120))), details())
        .await
        .expect("placed");
    assert!(placed.recorded);
    assert_eq!(status(&store, &key).await, OrderStatus::Filled);
}
