//! The recovery supervisor: each step bounded to its batch, several supervisors on one
//! store never send a cancel twice, retention only when asked, graceful stop.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::{Supervisor, SupervisorConfig, SupervisorReport};

fn config(batch: u32) -> SupervisorConfig {
    SupervisorConfig {
        interval: Duration::from_millis(10),
        pending_after: Duration::ZERO,
        batch,
        retention: None,
    }
}

/// A gateway whose clock says [`CLOCK`] and that accepts every cancel, recording the client
/// id of each in `sent`.
fn counting_gateway(sent: Arc<std::sync::Mutex<Vec<u32>>>) -> MockOrderGateway {
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().returning(move |id, _| {
        // A slow node widens the window in which two supervisors could collide.
        std::thread::sleep(Duration::from_millis(1));
        sent.lock().expect("lock").push(id.client_id);
        Ok(format!("C{}", id.client_id))
    });
    executes_every_tx(&mut gw);
    gw
}

async fn count(store: &FlakyStore, status: OrderStatus) -> usize {
    let q = ListQuery {
        statuses: vec![status],
        ..ListQuery::default()
    };
    store.list_all(&q).await.expect("list").items.len()
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn each_step_handles_at_most_one_batch_per_tick() {
    let store = Arc::new(FlakyStore::default());
    for i in 0..7 {
        seed(
            &store,
            &oid(100 + i, 0),
            GoodTil::Block(130),
            OrderStatus::Pending,
        )
        .await;
    }
    for i in 0..5 {
        seed_stale(&store, &oid(200 + i, 0), GoodTil::Block(130)).await;
    }
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let c = client(counting_gateway(sent.clone()), store.clone());
    let report = Supervisor::run_once(&c, &config(3)).await;
    assert_eq!(
        report,
        SupervisorReport {
            ticks: 1,
            pending_found: 3,
            pending_cancelled: 3,
            stale_found: 3,
            stale_cancelled: 3,
            ..SupervisorReport::default()
        }
    );
    assert_eq!(sent.lock().expect("lock").len(), 6, "3 per step");
    assert_eq!(count(&store, OrderStatus::Pending).await, 4);
    assert_eq!(count(&store, OrderStatus::Cancelling).await, 2);
    assert_eq!(count(&store, OrderStatus::Cancelled).await, 6);
}

/// Spawned, it goes on from its cursors tick after tick until everything is settled.
#[cfg(feature = "recording")]
#[tokio::test]
async fn spawned_supervisor_works_through_the_store_in_batches() {
    let store = Arc::new(FlakyStore::default());
    for i in 0..10 {
        seed(
            &store,
            &oid(100 + i, 0),
            GoodTil::Block(130),
            OrderStatus::Pending,
        )
        .await;
        seed_stale(
            &store,
            &oid(200 + i, 64),
            GoodTil::BlockTime(CLOCK.block_time + 60),
        )
        .await;
    }
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let c = Arc::new(client(counting_gateway(sent.clone()), store.clone()));
    let sup = Supervisor::spawn(c, config(4));
    ordermeta_poll(|| async { count(&store, OrderStatus::Cancelled).await == 20 }).await;
    let total = sup.stop().await;
    assert!(total.ticks >= 3, "{total:?}");
    assert_eq!((total.pending_cancelled, total.stale_cancelled), (10, 10));
    assert_eq!(sent.lock().expect("lock").len(), 20);
}

/// Two supervisors (two processes' worth: two clients, two claim tokens) on one store at
/// the same time: every order is cancelled exactly once.
#[cfg(feature = "recording")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_supervisors_in_parallel_never_send_a_cancel_twice() {
    let store = Arc::new(FlakyStore::default());
    for i in 0..20 {
        seed(
            &store,
            &oid(100 + i, 0),
            GoodTil::Block(130),
            OrderStatus::Pending,
        )
        .await;
        seed_stale(&store, &oid(200 + i, 0), GoodTil::Block(130)).await;
    }
    for i in 0..10 {
        seed(
            &store,
            &oid(300 + i, 0),
            GoodTil::Block(130),
            OrderStatus::Active,
        )
        .await;
    }
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = Arc::new(client(counting_gateway(sent.clone()), store.clone()));
    let b = Arc::new(client(counting_gateway(sent.clone()), store.clone()));
    assert_ne!(a.claim_token(), b.claim_token());
    let (sa, sb) = (
        Supervisor::spawn(a, config(7)),
        Supervisor::spawn(b, config(7)),
    );
    ordermeta_poll(|| async { count(&store, OrderStatus::Cancelled).await == 40 }).await;
    let (ra, rb) = (sa.stop().await, sb.stop().await);
    let sent = sent.lock().expect("lock").clone();
    let distinct: BTreeSet<u32> = sent.iter().copied().collect();
    assert_eq!(sent.len(), 40, "one cancel per order: {sent:?}");
    assert_eq!(distinct.len(), 40);
    assert_eq!(
        ra.pending_cancelled + rb.pending_cancelled + ra.stale_cancelled + rb.stale_cancelled,
        40
    );
    assert_eq!(
        count(&store, OrderStatus::Active).await,
        10,
        "active untouched"
    );
}

/// The expiry step (the old sweeper) under paused time; stopping returns the totals.
#[cfg(feature = "recording")]
#[tokio::test(start_paused = true)]
async fn supervisor_expires_by_the_chain_clock_until_stopped() {
    let store = Arc::new(FlakyStore::default());
    seed(&store, &oid(1, 0), GoodTil::Block(50), OrderStatus::Active).await;
    seed(&store, &oid(2, 0), GoodTil::Block(500), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(0);
    let c = Arc::new(client(gw, store.clone()));
    let sup = Supervisor::spawn(
        c,
        SupervisorConfig {
            interval: Duration::from_secs(1),
            ..SupervisorConfig::default()
        },
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let total = sup.stop().await;
    assert_eq!(total.expired, 1);
    assert!(total.ticks >= 3, "{total:?}");
    assert_eq!(total.step_errors, 0);
}

/// A node that cannot be reached fails the steps that need it; the others still run, and
/// nothing is claimed.
#[cfg(feature = "recording")]
#[tokio::test]
async fn unreachable_node_fails_steps_not_the_supervisor() {
    let store = Arc::new(FlakyStore::default());
    let key = seed_stale(&store, &oid(1, 0), GoodTil::Block(130)).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| {
        Err(GatewayError::Unavailable {
            source: "down".into(),
        })
    });
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let report = Supervisor::run_once(&c, &config(10)).await;
    assert_eq!(
        report.step_errors, 3,
        "expire, reconcile, stale claims: {report:?}"
    );
    let m = store.get_required(&key).await.expect("get");
    assert_eq!(m.version, 1, "untouched");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn purge_runs_only_with_a_retention() {
    let store = Arc::new(FlakyStore::default());
    let mut old = new_meta(&oid(1, 0), GoodTil::Block(130), OrderStatus::Cancelled);
    let two_days_ago = now() - chrono::Duration::days(2);
    old.placed_at = two_days_ago;
    old.updated_at = two_days_ago;
    store.record(&old).await.expect("record");
    let recent = seed(&store, &oid(2, 0), GoodTil::Block(130), OrderStatus::Filled).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let c = client(gw, store.clone());
    let kept = Supervisor::run_once(&c, &config(10)).await;
    assert_eq!(kept.purged, 0, "no retention, no purge");
    assert_eq!(store.inner.len(), 2);
    let with_retention = SupervisorConfig {
        retention: Some(Duration::from_secs(24 * 3600)),
        ..config(10)
    };
    let purged = Supervisor::run_once(&c, &with_retention).await;
    assert_eq!(purged.purged, 1);
    assert!(store.get(&old.order_id).await.expect("get").is_none());
    assert!(store.get(&recent).await.expect("get").is_some());
}

/// Dropping the handle stops the task too (after the step in progress).
#[cfg(feature = "recording")]
#[tokio::test]
async fn dropping_the_supervisor_stops_it() {
    let store = Arc::new(FlakyStore::default());
    let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut gw = gateway();
    let n = ticks.clone();
    gw.expect_clock().returning(move || {
        n.fetch_add(1, Ordering::SeqCst);
        Ok(CLOCK)
    });
    let sup = Supervisor::spawn(Arc::new(client(gw, store)), config(10));
    ordermeta_poll(|| async { ticks.load(Ordering::SeqCst) > 0 }).await;
    drop(sup);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after_drop = ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        after_drop,
        "no tick after the drop"
    );
}

/// Polls `check` every 10 ms, for at most 10 s.
async fn ordermeta_poll<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "not settled in 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
