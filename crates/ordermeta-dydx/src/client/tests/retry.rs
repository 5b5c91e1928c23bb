//! Retry policy: cancels are re-sent with bounded backoff on transport failures (never on a
//! refusal); placement is never retried.

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use super::*;

fn unavailable() -> GatewayError {
    GatewayError::Unavailable {
        source: "connection refused".into(),
    }
}

fn timeout(operation: &'static str) -> GatewayError {
    GatewayError::Timeout {
        operation,
        after: Duration::from_secs(5),
    }
}

/// The default policy, under paused time: two transport failures, then the node accepts.
#[cfg(feature = "recording")]
#[tokio::test(start_paused = true)]
async fn cancel_is_retried_with_backoff_then_succeeds() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(40, 64),
        GoodTil::BlockTime(CLOCK.block_time + 600),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    gw.expect_cancel()
        .times(3)
        .returning(move |_, _| match n.fetch_add(1, Ordering::SeqCst) {
            0 => Err(unavailable()),
            1 => Err(timeout("cancel")),
            _ => Ok("THIRD".into()),
        });
    executes_every_tx(&mut gw);
    let settings = ChainSettings::default();
    let policy = settings.cancel_retry.clone();
    let c = client_settings(gw, store.clone(), settings);
    let start = tokio::time::Instant::now();
    let done = c
        .cancel_order(&key)
        .await
        .expect("cancelled on the third try");
    let waited = start.elapsed();
    assert_eq!(done.tx_hash, "THIRD");
    c.confirm_outstanding().await;
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);
    // Backoff: at least min_delay, then twice that (jitter only adds).
    assert!(waited >= policy.min_delay * 3, "{waited:?}");
    assert!(waited < policy.budget, "{waited:?}");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_retries_stop_after_max_attempts() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(41, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .times(3)
        .returning(|_, _| Err(unavailable()));
    let settings = ChainSettings {
        cancel_retry: fast_retry(3),
        ..settings()
    };
    let c = client_settings(gw, store.clone(), settings);
    let err = c.cancel_order(&key).await.expect_err("node down");
    assert_eq!(err.kind(), CancelErrorKind::NetworkError);
    assert!(err.is_retryable());
    let m = store.get_required(&key).await.expect("get");
    assert_eq!((m.status, m.lease), (OrderStatus::Active, None));
}

/// No attempt starts once the budget is spent, however many attempts are left.
#[cfg(feature = "recording")]
#[tokio::test(start_paused = true)]
async fn cancel_retries_stop_at_the_budget() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(42, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    gw.expect_cancel().returning(move |_, _| {
        n.fetch_add(1, Ordering::SeqCst);
        Err(timeout("cancel"))
    });
    let policy = CancelRetry {
        max_attempts: 1000,
        min_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(1),
        budget: Duration::from_secs(5),
    };
    let settings = ChainSettings {
        cancel_retry: policy.clone(),
        ..settings()
    };
    let c = client_settings(gw, store.clone(), settings);
    let start = tokio::time::Instant::now();
    let err = c.cancel_order(&key).await.expect_err("node hung");
    assert_eq!(err.kind(), CancelErrorKind::NetworkError);
    assert!(start.elapsed() < policy.budget, "{:?}", start.elapsed());
    let attempts = calls.load(Ordering::SeqCst);
    // Delays of 1–2 s (jitter) within 5 s: between 3 and 5 attempts, far from 1000.
    assert!((3..=5).contains(&attempts), "{attempts}");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn batch_cancel_is_retried_on_transport_failure() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(43, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    gw.expect_batch_cancel().times(2).returning(move |_, _, _| {
        match n.fetch_add(1, Ordering::SeqCst) {
            0 => Err(timeout("batch_cancel")),
            _ => Ok("BATCH".into()),
        }
    });
    let c = client(gw, store.clone());
    let report = c.cancel_all(CancelScope::All).await.expect("cancel_all");
    assert_eq!(report.cancelled, [(key.clone(), "BATCH".to_owned())]);
    assert_eq!(report.batches, 1);
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);
}

/// A placement whose broadcast failed in transport may have landed: it is never re-sent,
/// and the record stays `pending` for reconciliation.
#[cfg(feature = "recording")]
#[tokio::test]
async fn placement_is_never_retried() {
    for (client_id, answer) in [(44, unavailable()), (45, timeout("place"))] {
        let store = Arc::new(FlakyStore::default());
        let mut gw = gateway();
        let answer = std::sync::Mutex::new(Some(answer));
        gw.expect_place()
            .times(1)
            .returning(move |_| Err(answer.lock().expect("lock").take().expect("one call")));
        let c = client(gw, store.clone());
        let err = c
            .place_order(
                built_order(&oid(client_id, 0), Some(GoodTil::Block(120))),
                details(),
            )
            .await
            .expect_err("outcome unknown");
        match err {
            PlaceError::Network { order_id, source } => {
                assert!(source.is_transport(), "{source}");
                assert_eq!(status(&store, &order_id).await, OrderStatus::Pending);
            }
            other => panic!("{other}"),
        }
    }
}

/// A sequence mismatch that persisted after the gateway's re-sync is the chain's refusal.
#[cfg(feature = "recording")]
#[tokio::test]
async fn persisting_sequence_mismatch_at_placement_is_rejected() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place()
        .times(1)
        .returning(|_| Err(rejected(codes::CODESPACE_SDK, codes::SDK_WRONG_SEQUENCE)));
    let c = client(gw, store.clone());
    let err = c
        .place_order(
            built_order(&oid(46, 64), Some(GoodTil::BlockTime(1_800_000_500))),
            details(),
        )
        .await
        .expect_err("refused");
    match err {
        PlaceError::Rejected { order_id, error } => {
            assert!(error.is_sequence_mismatch());
            assert_eq!(status(&store, &order_id).await, OrderStatus::Failed);
        }
        other => panic!("{other}"),
    }
}
