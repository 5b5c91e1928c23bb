//! Claim leases: a stale claim is taken over and its cancel re-sent, a live one never; a
//! claim is given back only by the canceller that still holds it.

use super::*;

#[test]
fn claim_tokens_name_the_signer_and_differ_per_client() {
    let store = Arc::new(FlakyStore::default());
    let a = client(gateway(), store.clone());
    let b = client(gateway(), store);
    assert_ne!(a.claim_token(), b.claim_token());
    let pid = std::process::id().to_string();
    for token in [a.claim_token(), b.claim_token()] {
        assert!(token.starts_with(&ME[..16]), "{token}");
        assert!(token.contains(&format!("-{pid}-")), "{token}");
        assert!(Lease::new(token, now()).validate().is_ok(), "{token}");
    }
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn stale_claim_is_reclaimed_and_its_cancel_resent() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(30, 0);
    let key = seed_stale(&store, &id, GoodTil::Block(130)).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let held_by = Arc::new(std::sync::Mutex::new(None));
    let (seen, k, want) = (store.clone(), key.clone(), id.clone());
    let held = held_by.clone();
    gw.expect_cancel()
        .withf(move |i, g| *i == want && *g == GoodTil::Block(130))
        .times(1)
        .returning(move |_, _| {
            // While the cancel is in flight, the claim is ours, with a fresh lease.
            let m = futures::executor::block_on(seen.get_required(&k)).expect("get");
            let lease = m.lease.expect("a lease while cancelling");
            assert!(!lease.is_expired_at(now()));
            *held.lock().expect("lock") = Some(lease.token);
            Ok("RESENT".into())
        });
    let c = client(gw, store.clone());
    let done = c
        .cancel_order(&key)
        .await
        .expect("re-claimed and cancelled");
    assert_eq!(done.tx_hash, "RESENT");
    assert_eq!(
        held_by.lock().expect("lock").as_deref(),
        Some(c.claim_token())
    );
    let m = store.get_required(&key).await.expect("get");
    assert_eq!((m.status, m.lease), (OrderStatus::Cancelled, None));
    let steps: Vec<_> = m.history.iter().map(|h| h.status).collect();
    assert_eq!(
        steps,
        [
            OrderStatus::Cancelling,
            OrderStatus::Cancelling,
            OrderStatus::Cancelled
        ]
    );
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn live_claim_answers_cancel_in_progress_and_sends_nothing() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(31, 64),
        GoodTil::BlockTime(CLOCK.block_time + 600),
        OrderStatus::Cancelling,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let err = c.cancel_order(&key).await.expect_err("in progress");
    assert_eq!(err.kind(), CancelErrorKind::CancelInProgress);
    let m = store.get_required(&key).await.expect("get");
    assert_eq!(m.version, 1, "untouched");
    assert_eq!(
        m.lease.map(|l| l.token).as_deref(),
        Some(OTHER_CANCELLER),
        "the live claim stays its holder's"
    );
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn resent_cancel_answered_already_exists_settles_the_claim() {
    let store = Arc::new(FlakyStore::default());
    let key = seed_stale(&store, &oid(32, 0), GoodTil::Block(130)).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .times(1)
        .returning(|_, _| Err(rejected("clob", codes::CANCEL_ALREADY_EXISTS)));
    let c = client(gw, store.clone());
    let err = c.cancel_order(&key).await.expect_err("already sent");
    assert_eq!(err.kind(), CancelErrorKind::CancelInProgress);
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn stale_claim_past_its_good_til_is_marked_expired_without_a_cancel() {
    let store = Arc::new(FlakyStore::default());
    let key = seed_stale(&store, &oid(33, 0), GoodTil::Block(CLOCK.height)).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let err = c.cancel_order(&key).await.expect_err("expired");
    assert_eq!(err.kind(), CancelErrorKind::OrderExpired);
    let m = store.get_required(&key).await.expect("get");
    assert_eq!((m.status, m.lease), (OrderStatus::Expired, None));
}

/// Our lease runs out while the cancel is in flight and another canceller re-claims the
/// order: when our cancel then fails, we must not give back a claim that is no longer ours.
#[cfg(feature = "recording")]
#[tokio::test]
async fn release_requires_our_own_lease() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(34, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    let (seen, k) = (store.clone(), key.clone());
    gw.expect_cancel().times(1).returning(move |_, _| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        let until = now() + chrono::Duration::seconds(30);
        futures::executor::block_on(seen.claim(
            &k,
            &[OrderStatus::Cancelling],
            Lease::new("canceller-b", until),
            now(),
        ))
        .expect("our lease ran out: B re-claims");
        Err(GatewayError::Unavailable {
            source: "connection reset".into(),
        })
    });
    let settings = ChainSettings {
        claim_lease: std::time::Duration::from_millis(1),
        cancel_retry: CancelRetry::never(),
        ..settings()
    };
    let c = client_settings(gw, store.clone(), settings);
    let err = c.cancel_order(&key).await.expect_err("network");
    assert_eq!(err.kind(), CancelErrorKind::NetworkError);
    let m = store.get_required(&key).await.expect("get");
    assert_eq!(m.status, OrderStatus::Cancelling, "not given back");
    assert_eq!(m.lease.map(|l| l.token).as_deref(), Some("canceller-b"));
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn failed_cancel_gives_our_claim_back() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(
        &store,
        &oid(35, 0),
        GoodTil::Block(130),
        OrderStatus::Active,
    )
    .await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(1).returning(|_, _| {
        Err(GatewayError::Unavailable {
            source: "connection reset".into(),
        })
    });
    let settings = ChainSettings {
        cancel_retry: CancelRetry::never(),
        ..settings()
    };
    let c = client_settings(gw, store.clone(), settings);
    c.cancel_order(&key).await.expect_err("network");
    let m = store.get_required(&key).await.expect("get");
    assert_eq!((m.status, m.lease), (OrderStatus::Active, None));
}
