//! The `active` write off the caller's path ([`ActiveWrite::Background`]): what the record
//! says before and after the writer ran, cancels that come first, claims and outcomes that
//! reach the record first, a failing write, a full queue, a dropped client.
#![cfg(feature = "recording")]

use std::time::Duration;

use super::*;
use crate::{ActiveWrite, PlaceOptions};

const WITHIN: Duration = Duration::from_secs(5);

fn placing(gw: &mut MockOrderGateway, hash: &'static str) {
    gw.expect_place().returning(move |_| Ok(hash.into()));
}

async fn place(c: &OrderMetaClient, client_id: u32, gtb: u32) -> String {
    c.place_order(
        built_order(&oid(client_id, 0), Some(GoodTil::Block(gtb))),
        details(),
    )
    .await
    .expect("place")
    .order_id
}

/// The record reads `pending` until the writer ran; then `active` with the tx hash, as the
/// inline write leaves it.
#[tokio::test]
async fn background_write_lands_after_the_call() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "PLACEHASH");
    let c = client(gw, store.clone());
    // The test's single-threaded runtime has not run the writer yet when the call returns.
    let id = place(&c, 1, 120).await;
    assert_eq!(status(&store, &id).await, OrderStatus::Pending);
    assert_eq!(c.active_writes_queued(), 1);
    assert_eq!(c.flush_active_writes(WITHIN).await, 0);
    let m = store.get_required(&id).await.expect("get");
    assert_eq!(m.status, OrderStatus::Active);
    assert_eq!(m.tx_hash.as_deref(), Some("PLACEHASH"));
    let steps: Vec<_> = m.history.iter().map(|h| h.status).collect();
    assert_eq!(steps, [OrderStatus::Pending, OrderStatus::Active]);
    assert_eq!(c.active_writes_queued(), 0);
}

/// Left alone, the writer task writes it (no flush).
#[tokio::test]
async fn the_writer_task_writes_on_its_own() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "H");
    let c = client(gw, store.clone());
    let id = place(&c, 2, 120).await;
    eventually(|| async { status(&store, &id).await == OrderStatus::Active }).await;
    eventually(|| async { c.active_writes_queued() == 0 }).await;
}

/// `ActiveWrite::Inline`, per placement or per client: written before the call returns.
#[tokio::test]
async fn inline_writes_before_returning() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "H");
    let c = client(gw, store.clone());
    let placed = c
        .place_order_with(
            built_order(&oid(3, 0), Some(GoodTil::Block(120))),
            details(),
            PlaceOptions::default().active_write(ActiveWrite::Inline),
        )
        .await
        .expect("place");
    assert_eq!(status(&store, &placed.order_id).await, OrderStatus::Active);
    assert_eq!(c.active_writes_queued(), 0);

    let mut gw = gateway();
    placing(&mut gw, "H");
    let c = client_settings(
        gw,
        store.clone(),
        ChainSettings {
            active_write: ActiveWrite::Inline,
            ..settings()
        },
    );
    let id = place(&c, 4, 120).await;
    assert_eq!(status(&store, &id).await, OrderStatus::Active);
}

/// A cancel right after the placement, its `active` write still queued: the cancel writes it
/// first, then cancels from the record — one cancel tx, the record `cancelled` with both
/// hashes, and the writer finds nothing left to do.
#[tokio::test]
async fn cancel_right_after_place_runs_the_queued_write_first() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "PLACEHASH");
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .times(1)
        .returning(|_, _| Ok("CANCELHASH".into()));
    let c = client(gw, store.clone());
    let id = place(&c, 5, 120).await;
    assert_eq!(status(&store, &id).await, OrderStatus::Pending);
    let done = c.cancel_order(&id).await.expect("cancel by id");
    assert_eq!(done.path, CancelPath::Record);
    let m = store.get_required(&id).await.expect("get");
    assert_eq!(m.status, OrderStatus::Cancelled);
    assert_eq!(m.tx_hash.as_deref(), Some("PLACEHASH"));
    assert_eq!(m.cancel_tx_hash.as_deref(), Some("CANCELHASH"));
    // The writer's turn comes: nothing left, nothing overwritten.
    assert_eq!(c.flush_active_writes(WITHIN).await, 0);
    tokio::task::yield_now().await;
    assert_eq!(status(&store, &id).await, OrderStatus::Cancelled);
}

/// A claim that reached the `pending` record before the write (another process's kill
/// switch): the write is a compare-and-set from `pending`, so the claim stands, and the
/// placement's cancel is sent once more (the claimant's may have reached the node first).
#[tokio::test]
async fn a_claim_that_came_first_wins() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "H");
    gw.expect_cancel()
        .times(1)
        .returning(|_, _| Ok("AGAIN".into()));
    let c = client(gw, store.clone());
    let id = place(&c, 6, 120).await;
    let until = now() + chrono::Duration::seconds(30);
    store
        .claim(
            &id,
            &[OrderStatus::Pending],
            Lease::new(OTHER_CANCELLER, until),
            now(),
        )
        .await
        .expect("another canceller claims it");
    assert_eq!(c.flush_active_writes(WITHIN).await, 0);
    let m = store.get_required(&id).await.expect("get");
    assert_eq!(
        m.status,
        OrderStatus::Cancelling,
        "the claim is not overwritten"
    );
    assert_eq!(m.lease.map(|l| l.token), Some(OTHER_CANCELLER.to_owned()));
}

/// An outcome the chain reported first (a fill) is never overwritten by the write.
#[tokio::test]
async fn an_outcome_that_came_first_wins() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "H");
    let c = client(gw, store.clone());
    let id = place(&c, 7, 120).await;
    let req = TransitionRequest::new(&id, &[OrderStatus::Pending], OrderStatus::Filled);
    store
        .transition(&req)
        .await
        .expect("the indexer sync records a fill");
    assert_eq!(c.flush_active_writes(WITHIN).await, 0);
    assert_eq!(status(&store, &id).await, OrderStatus::Filled);
}

/// The store is down when the writer runs: the placement has succeeded, the record stays
/// `pending`, and reconciliation settles it against the chain (cancelled there).
#[tokio::test]
async fn a_failed_write_is_left_to_reconciliation() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "H");
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .times(1)
        .returning(|_, _| Ok("RECONCILED".into()));
    let c = client(gw, store.clone());
    let id = place(&c, 8, 120).await;
    store.down.store(true, Ordering::SeqCst);
    assert_eq!(c.flush_active_writes(WITHIN).await, 0, "tried, not kept");
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(status(&store, &id).await, OrderStatus::Pending);
    let report = c
        .reconcile_pending(Duration::ZERO)
        .await
        .expect("reconcile");
    assert_eq!(report.cancelled, 1, "{report:?}");
    let m = store.get_required(&id).await.expect("get");
    assert_eq!(m.status, OrderStatus::Cancelled);
    assert_eq!(m.cancel_tx_hash.as_deref(), Some("RECONCILED"));
}

/// Reconciliation of this client's own placement whose write is merely queued writes it
/// instead of cancelling a live order.
#[tokio::test]
async fn reconciliation_runs_a_queued_write_instead_of_cancelling() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "H");
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let id = place(&c, 9, 120).await;
    let report = c
        .reconcile_pending(Duration::ZERO)
        .await
        .expect("reconcile");
    assert_eq!(report, ReconcileReport::default());
    assert_eq!(status(&store, &id).await, OrderStatus::Active);
}

/// A full queue: the placement that finds it full writes its own `active` inline.
#[tokio::test]
async fn a_full_queue_writes_inline() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "H");
    let c = client_settings(
        gw,
        store.clone(),
        ChainSettings {
            active_write_queue: 1,
            ..settings()
        },
    );
    let first = place(&c, 10, 120).await;
    let second = place(&c, 11, 120).await;
    assert_eq!(status(&store, &first).await, OrderStatus::Pending, "queued");
    assert_eq!(status(&store, &second).await, OrderStatus::Active, "inline");
    assert_eq!(c.flush_active_writes(WITHIN).await, 0);
    assert_eq!(status(&store, &first).await, OrderStatus::Active);
}

/// A client dropped with writes queued: the writer still runs them (the runtime lives on),
/// and dropping does not wait for it.
#[tokio::test]
async fn dropping_the_client_leaves_the_writer_to_finish() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "H");
    let c = client(gw, store.clone());
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(place(&c, 20 + n, 120).await);
    }
    drop(c);
    for id in &ids {
        eventually(|| async { status(&store, id).await == OrderStatus::Active }).await;
    }
}

/// A client-id reuse whose two placements both have their writes queued, then a cancel of the
/// newer one: the older one's write runs before it is marked replaced, so no write finds the
/// mark and re-sends a cancel for the shared `OrderId`; one cancel tx in all.
#[tokio::test]
async fn replacement_is_marked_after_the_replaced_order_s_own_write() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "H");
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(1).returning(|_, _| Ok("C".into()));
    let c = client(gw, store.clone());
    let old = place(&c, 30, 120).await;
    let new = place(&c, 30, 125).await;
    assert_eq!(c.active_writes_queued(), 2);
    c.cancel_order(&new).await.expect("cancel the new order");
    assert_eq!(c.flush_active_writes(WITHIN).await, 0);
    let m = store.get_required(&old).await.expect("get");
    assert_eq!(m.status, OrderStatus::Cancelled);
    assert!(
        m.history.iter().any(|h| h
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("replaced by"))),
        "{:?}",
        m.history
    );
    assert_eq!(status(&store, &new).await, OrderStatus::Cancelled);
}

/// Recording off: nothing recorded, nothing queued.
#[tokio::test]
async fn recording_off_queues_nothing() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    placing(&mut gw, "H");
    let c = client(gw, store.clone());
    off(&c);
    place(&c, 40, 120).await;
    assert_eq!(c.active_writes_queued(), 0);
    assert!(store.inner.is_empty());
}

/// Polls `check` until it holds (a generous deadline, not a timing assertion).
async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "not within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
