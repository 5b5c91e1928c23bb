//! Fills, the expiry sweep, reconciliation of crash leftovers. (The sweeper became the
//! supervisor's expiry step: `supervisor.rs`.)

use super::*;

#[cfg(feature = "recording")]
#[tokio::test]
async fn mark_filled_from_any_open_or_cancelled_status() {
    let store = Arc::new(FlakyStore::default());
    let c = client(gateway(), store.clone());
    for (i, st) in [
        OrderStatus::Active,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ]
    .into_iter()
    .enumerate()
    {
        let key = seed(&store, &oid(100 + i as u32, 0), GoodTil::Block(130), st).await;
        assert_eq!(
            c.mark_filled(&key).await.expect("fill").status,
            OrderStatus::Filled
        );
    }
    let failed = seed(
        &store,
        &oid(200, 0),
        GoodTil::Block(130),
        OrderStatus::Failed,
    )
    .await;
    let err = c
        .mark_filled(&failed)
        .await
        .expect_err("failed never filled");
    assert_eq!(err.current_status(), Some(OrderStatus::Failed), "{err}");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn sweep_and_reconcile_settle_crash_leftovers() {
    let store = Arc::new(FlakyStore::default());
    let old_active = seed(&store, &oid(1, 0), GoodTil::Block(100), OrderStatus::Active).await;
    let pending_expired = seed(&store, &oid(2, 0), GoodTil::Block(90), OrderStatus::Pending).await;
    let pending_live = seed(
        &store,
        &oid(3, 0),
        GoodTil::Block(130),
        OrderStatus::Pending,
    )
    .await;
    let pending_gone = seed(
        &store,
        &oid(4, 64),
        GoodTil::BlockTime(CLOCK.block_time + 99),
        OrderStatus::Pending,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(2).returning(|id, _| {
        if id.is_stateful() {
            Err(rejected("clob", 3006))
        } else {
            Ok("RC".into())
        }
    });
    let c = client(gw, store.clone());
    let report = c
        .reconcile_pending(std::time::Duration::ZERO)
        .await
        .expect("reconcile");
    assert_eq!(
        report,
        ReconcileReport {
            expired: 1,
            cancelled: 2,
            unresolved: 0,
            filled: 0,
        }
    );
    assert_eq!(status(&store, &pending_expired).await, OrderStatus::Expired);
    assert_eq!(status(&store, &pending_live).await, OrderStatus::Cancelled);
    assert_eq!(status(&store, &pending_gone).await, OrderStatus::Cancelled);
    assert_eq!(c.sweep_expired().await.expect("sweep"), 1);
    assert_eq!(status(&store, &old_active).await, OrderStatus::Expired);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn reconcile_skips_young_pending_records() {
    let store = Arc::new(FlakyStore::default());
    let young = seed(
        &store,
        &oid(1, 0),
        GoodTil::Block(130),
        OrderStatus::Pending,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let report = c
        .reconcile_pending(std::time::Duration::from_secs(3600))
        .await
        .expect("reconcile");
    assert_eq!(report, ReconcileReport::default());
    assert_eq!(status(&store, &young).await, OrderStatus::Pending);
}

/// `reconcile_pending` reads the store a page at a time and still settles every page.
#[cfg(feature = "recording")]
#[tokio::test]
async fn reconcile_goes_through_every_page() {
    let store = Arc::new(FlakyStore::default());
    let n = ordermeta_core::MAX_PAGE_SIZE + 5;
    for i in 0..n {
        seed(
            &store,
            &oid(10_000 + i, 0),
            GoodTil::Block(130),
            OrderStatus::Pending,
        )
        .await;
    }
    let mut gw = gateway();
    gw.expect_clock().times(2).returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .times(n as usize)
        .returning(|_, _| Ok("RC".into()));
    let c = client(gw, store.clone());
    let report = c
        .reconcile_pending(std::time::Duration::ZERO)
        .await
        .expect("reconcile");
    assert_eq!(report.cancelled, n as usize);
}
