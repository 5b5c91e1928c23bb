//! `cancel_order`: the stored id and good-til go out; refusals, chain answers, limits and
//! concurrency map to the error taxonomy.

use super::*;

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_short_term_uses_stored_id_and_good_til() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(9, 0);
    let key = seed(&store, &id, GoodTil::Block(130), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let want = id.clone();
    gw.expect_cancel()
        .withf(move |i, g| *i == want && *g == GoodTil::Block(130))
        .times(1)
        .returning(|_, _| Ok("CANCELHASH".into()));
    let c = client(gw, store.clone());
    let done = c.cancel_order(&key).await.expect("cancel");
    assert_eq!(done.tx_hash, "CANCELHASH");
    assert!(done.recorded);
    let m = store.get_required(&key).await.expect("get");
    assert_eq!(m.status, OrderStatus::Cancelled);
    assert_eq!(m.cancel_tx_hash.as_deref(), Some("CANCELHASH"));
    assert!(m.cancelled_at.is_some());
    let steps: Vec<_> = m.history.iter().map(|h| h.status).collect();
    assert_eq!(
        steps,
        [
            OrderStatus::Active,
            OrderStatus::Cancelling,
            OrderStatus::Cancelled
        ]
    );
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_stateful_uses_stored_good_til_time() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(10, 64);
    let gt = GoodTil::BlockTime(CLOCK.block_time + 3600);
    let key = seed(&store, &id, gt, OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .withf(move |_, g| *g == gt)
        .times(1)
        .returning(|_, _| Ok("C".into()));
    executes_every_tx(&mut gw);
    let c = client(gw, store.clone());
    c.cancel_order(&key).await.expect("cancel");
    // A stateful cancel takes effect in the next block: claimed until that is confirmed.
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelling);
    assert_eq!(c.confirm_outstanding().await.confirmed, 1);
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);
}

async fn expect_cancel_error(
    seed_status: Option<OrderStatus>,
    owner: &str,
    good_til: GoodTil,
    want: CancelErrorKind,
) -> (Arc<FlakyStore>, String) {
    let store = Arc::new(FlakyStore::default());
    let mut id = oid(11, if good_til.block().is_some() { 0 } else { 64 });
    id.owner = owner.to_owned();
    let key = match seed_status {
        Some(st) => seed(&store, &id, good_til, st).await,
        None => "unknown-order".to_owned(),
    };
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let err = c.cancel_order(&key).await.expect_err("must fail");
    assert_eq!(err.kind(), want, "{err}");
    assert_eq!(err.order_id(), key);
    (store, key)
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_refusals_send_nothing() {
    let gt = GoodTil::Block(150);
    // Issue 17: a string that is not an ordermeta id (and has no record) is its own error.
    let (_, _) = expect_cancel_error(None, ME, gt, CancelErrorKind::InvalidOrderId).await;
    for (st, kind) in [
        (OrderStatus::Cancelled, CancelErrorKind::AlreadyCancelled),
        (OrderStatus::Filled, CancelErrorKind::AlreadyFilled),
        (OrderStatus::Expired, CancelErrorKind::OrderExpired),
        (OrderStatus::Failed, CancelErrorKind::PlacementFailed),
        (OrderStatus::Pending, CancelErrorKind::PlacementPending),
        (OrderStatus::Cancelling, CancelErrorKind::CancelInProgress),
    ] {
        let (store, key) = expect_cancel_error(Some(st), ME, gt, kind).await;
        assert_eq!(status(&store, &key).await, st, "unchanged");
    }
    let (store, key) = expect_cancel_error(
        Some(OrderStatus::Active),
        OTHER,
        gt,
        CancelErrorKind::NotOwner,
    )
    .await;
    assert_eq!(status(&store, &key).await, OrderStatus::Active);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_of_order_expired_on_chain_marks_it_expired() {
    // Short-term: height 100 >= GTB 100. Stateful: block time >= GTBT.
    for gt in [
        GoodTil::Block(CLOCK.height),
        GoodTil::BlockTime(CLOCK.block_time),
    ] {
        let (store, key) = expect_cancel_error(
            Some(OrderStatus::Active),
            ME,
            gt,
            CancelErrorKind::OrderExpired,
        )
        .await;
        assert_eq!(status(&store, &key).await, OrderStatus::Expired);
    }
    let (_, key) = expect_cancel_error(
        Some(OrderStatus::Active),
        ME,
        GoodTil::Block(100),
        CancelErrorKind::OrderExpired,
    )
    .await;
    assert!(key.ends_with("@b100"));
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn cancel_error_message_reads_like_the_seed() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(&store, &oid(12, 0), GoodTil::Block(90), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let c = client(gw, store);
    let err = c.cancel_order(&key).await.expect_err("expired");
    assert_eq!(
        err.to_string(),
        format!("Order {key} has expired at block 90")
    );
}

/// Seeds an active short-term order, makes the gateway answer the cancel with `answer`, and
/// returns the error kind and the status recorded afterwards.
async fn cancel_answered(
    answer: GatewayError,
    gt: GoodTil,
    clock_after: ChainClock,
) -> (CancelErrorKind, OrderStatus) {
    let store = Arc::new(FlakyStore::default());
    let id = oid(13, if gt.block().is_some() { 0 } else { 64 });
    let key = seed(&store, &id, gt, OrderStatus::Active).await;
    let mut gw = gateway();
    let mut first = true;
    gw.expect_clock().returning(move || {
        let c = if first { CLOCK } else { clock_after };
        first = false;
        Ok(c)
    });
    let answer = std::sync::Mutex::new(Some(answer));
    gw.expect_cancel()
        .times(1)
        .returning(move |_, _| Err(answer.lock().expect("lock").take().expect("one answer")));
    // One answer each: retries of transport failures are tested in `retry.rs`.
    let settings = ChainSettings {
        cancel_retry: CancelRetry::never(),
        ..settings()
    };
    let c = client_settings(gw, store.clone(), settings);
    let err = c.cancel_order(&key).await.expect_err("fails");
    (err.kind(), status(&store, &key).await)
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn chain_answers_map_to_the_taxonomy() {
    let st = GoodTil::Block(130);
    let lt = GoodTil::BlockTime(CLOCK.block_time + 100);
    let cases = [
        (
            rejected("clob", 9),
            st,
            CLOCK,
            CancelErrorKind::CancelInProgress,
            OrderStatus::Cancelled,
        ),
        (
            rejected("clob", 32),
            lt,
            CLOCK,
            CancelErrorKind::CancelInProgress,
            OrderStatus::Cancelled,
        ),
        (
            rejected("clob", 5001),
            st,
            CLOCK,
            CancelErrorKind::RateLimited,
            OrderStatus::Active,
        ),
        (
            rejected("clob", 10),
            st,
            CLOCK,
            CancelErrorKind::OrderExpired,
            OrderStatus::Expired,
        ),
        (
            rejected("clob", 3003),
            lt,
            CLOCK,
            CancelErrorKind::OrderExpired,
            OrderStatus::Expired,
        ),
        // 3006 while the clock says unexpired: gone (filled or cancelled elsewhere).
        (
            rejected("clob", 3006),
            lt,
            CLOCK,
            CancelErrorKind::AlreadyCancelled,
            OrderStatus::Cancelled,
        ),
        // 3006 and the clock has passed the GTBT meanwhile: expired.
        (
            rejected("clob", 3006),
            lt,
            ChainClock {
                height: 101,
                block_time: CLOCK.block_time + 100,
            },
            CancelErrorKind::OrderExpired,
            OrderStatus::Expired,
        ),
        // sdk 32 is a sequence mismatch that persisted after the gateway's re-sync and
        // retry, not a duplicate cancel: the chain's refusal, not a network error.
        (
            rejected("sdk", 32),
            lt,
            CLOCK,
            CancelErrorKind::Rejected,
            OrderStatus::Active,
        ),
        // A code ordermeta does not act on: the chain's refusal, told as such.
        (
            rejected("clob", 29),
            lt,
            CLOCK,
            CancelErrorKind::Rejected,
            OrderStatus::Active,
        ),
        (
            GatewayError::Timeout {
                operation: "cancel",
                after: std::time::Duration::from_secs(5),
            },
            st,
            CLOCK,
            CancelErrorKind::NetworkError,
            OrderStatus::Active,
        ),
        (
            GatewayError::Unavailable {
                source: "deadline exceeded".into(),
            },
            st,
            CLOCK,
            CancelErrorKind::NetworkError,
            OrderStatus::Active,
        ),
    ];
    for (answer, gt, after, kind, status) in cases {
        let label = answer.to_string();
        assert_eq!(
            cancel_answered(answer, gt, after).await,
            (kind, status),
            "{label}"
        );
    }
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn clock_failure_is_network_error_and_claims_nothing() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(14, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| {
        Err(GatewayError::Unavailable {
            source: "node down".into(),
        })
    });
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let err = c.cancel_order(&key).await.expect_err("fails");
    assert_eq!(err.kind(), CancelErrorKind::NetworkError);
    assert!(err.is_retryable());
    let m = store.get_required(&key).await.expect("get");
    assert_eq!((m.status, m.version), (OrderStatus::Active, 1));
}

/// Issue 17: the switch governs recording new orders; a recorded order is cancelled from its
/// record whatever the switch says. Only the rollback build (no `recording` feature) has no
/// store path: it cancels from the id, or, with `cancel_from_id` off, gives manual guidance.
#[tokio::test]
async fn recording_off_still_cancels_a_recorded_order() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(15, 0);
    let key = seed(&store, &id, GoodTil::Block(130), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let want = id.clone();
    gw.expect_cancel()
        .withf(move |i, g| *i == want && *g == GoodTil::Block(130))
        .times(1)
        .returning(|_, _| Ok("C".into()));
    let c = client(gw, store.clone());
    off(&c);
    let done = c.cancel_order(&key).await.expect("cancelled");
    if RecordingSwitch::compiled_in() {
        assert_eq!(done.path, CancelPath::Record);
        assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);
    } else {
        assert_eq!(done.path, CancelPath::OrderId);
        assert!(!done.recorded);
    }
}

#[cfg(not(feature = "recording"))]
#[tokio::test]
async fn rollback_build_without_cancel_from_id_gives_manual_guidance() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(15, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_cancel().times(0);
    let c = client_settings(
        gw,
        store,
        ChainSettings {
            cancel_from_id: false,
            ..settings()
        },
    );
    let err = c.cancel_order(&key).await.expect_err("disabled");
    assert_eq!(err.kind(), CancelErrorKind::RecordingDisabled);
    assert!(err.to_string().contains("manually"), "{err}");
    assert!(err.to_string().contains("cancel_exact"), "{err}");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn local_rate_limit_refuses_before_the_chain() {
    let store = Arc::new(FlakyStore::default());
    let a = seed(
        &store,
        &oid(16, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let b = seed(
        &store,
        &oid(17, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(1).returning(|_, _| Ok("C".into()));
    let c = client_with(gw, store.clone(), 1);
    c.cancel_order(&a).await.expect("first");
    let err = c.cancel_order(&b).await.expect_err("limited");
    assert_eq!(err.kind(), CancelErrorKind::RateLimited);
    assert_eq!(status(&store, &b).await, OrderStatus::Active);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn corrupt_and_unreachable_store() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(18, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    store.corrupt.store(true, Ordering::SeqCst);
    let err = c.cancel_order(&key).await.expect_err("corrupt");
    assert_eq!(err.kind(), CancelErrorKind::InvalidMetadata);
    assert!(err.to_string().contains("manually"), "{err}");
    store.corrupt.store(false, Ordering::SeqCst);
    store.down.store(true, Ordering::SeqCst);
    let err = c.cancel_order(&key).await.expect_err("down");
    assert_eq!(err.kind(), CancelErrorKind::Storage);
}

#[cfg(feature = "recording")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cancels_send_one_transaction() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(19, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .times(1)
        .returning(|_, _| Ok("ONLY".into()));
    let c = Arc::new(client(gw, store.clone()));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            let k = key.clone();
            tokio::spawn(async move { c.cancel_order(&k).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => ok += 1,
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    CancelErrorKind::CancelInProgress | CancelErrorKind::AlreadyCancelled
                ),
                "{e}"
            ),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn unmapped_refusal_is_rejected_with_the_chains_code() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(20, 64),
        GoodTil::BlockTime(CLOCK.block_time + 100),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    // A refusal is never retried.
    gw.expect_cancel()
        .times(1)
        .returning(|_, _| Err(rejected("clob", 29)));
    let c = client(gw, store.clone());
    let err = c.cancel_order(&key).await.expect_err("refused");
    match &err {
        crate::CancelError::Rejected {
            order_id,
            codespace,
            code,
            log,
        } => {
            assert_eq!(order_id, &key);
            assert_eq!(
                (codespace.as_str(), *code, log.as_str()),
                ("clob", 29, "refused")
            );
        }
        other => panic!("{other}"),
    }
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("clob/29"), "{err}");
    let m = store.get_required(&key).await.expect("get");
    assert_eq!(
        (m.status, m.lease),
        (OrderStatus::Active, None),
        "claim given back"
    );
}
