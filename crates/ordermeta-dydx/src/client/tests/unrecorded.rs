//! Issue 17, cancel side: an order without a record is cancelled from its id (ownership
//! checked, the chain deciding), `cancel_exact` is the legacy path, a string that is not an
//! id is `InvalidOrderId`, and `MetadataNotFound` says what the client knows.

use super::*;
use crate::{CancelError, NotRecorded, RecordOutcome, RolloutScope};

/// A gateway expecting exactly one cancel of `id` with `good_til`, answering `answer`.
fn one_cancel(
    id: OrderId,
    good_til: GoodTil,
    answer: fn() -> Result<String, GatewayError>,
) -> MockOrderGateway {
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .withf(move |i, g| *i == id && *g == good_til)
        .times(1)
        .returning(move |_, _| answer());
    gw
}

#[tokio::test]
async fn an_id_without_a_record_is_cancelled_from_the_id_itself() {
    let store = Arc::new(FlakyStore::default());
    for (id, gt) in [
        (oid(1, 0), GoodTil::Block(130)),
        (oid(2, 64), GoodTil::BlockTime(CLOCK.block_time + 60)),
    ] {
        let key = order_key(&id, gt);
        let c = client(one_cancel(id, gt, || Ok("FROMID".into())), store.clone());
        let done = c.cancel_order(&key).await.expect("cancelled from the id");
        assert_eq!(done.path, CancelPath::OrderId);
        assert_eq!((done.tx_hash.as_str(), done.recorded), ("FROMID", false));
        assert_eq!(done.order_id, key);
        assert_eq!(c.rollout_stats().cancelled_without_record, 1);
    }
    assert!(
        store.inner.is_empty(),
        "nothing written for an unrecorded order"
    );
}

#[tokio::test]
async fn cancel_from_the_id_checks_the_owner_and_lets_the_chain_decide() {
    let store = Arc::new(FlakyStore::default());
    // Someone else's order: refused locally, nothing sent.
    let theirs = OrderId {
        owner: OTHER.into(),
        ..oid(3, 0)
    };
    let mut gw = gateway();
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    let err = c
        .cancel_order(&order_key(&theirs, GoodTil::Block(130)))
        .await
        .expect_err("not ours");
    assert_eq!(err.kind(), CancelErrorKind::NotOwner);

    let gt = GoodTil::Block(130);
    for (answer, want) in [
        (
            (|| {
                Err(rejected(
                    codes::CODESPACE_CLOB,
                    codes::CANCEL_ALREADY_EXISTS,
                ))
            }) as fn() -> Result<String, GatewayError>,
            CancelErrorKind::CancelInProgress,
        ),
        (
            || {
                Err(rejected(
                    codes::CODESPACE_CLOB,
                    codes::HEIGHT_EXCEEDS_GOOD_TIL_BLOCK,
                ))
            },
            CancelErrorKind::OrderExpired,
        ),
        (
            || {
                Err(rejected(
                    codes::CODESPACE_CLOB,
                    codes::STATEFUL_ORDER_DOES_NOT_EXIST,
                ))
            },
            CancelErrorKind::AlreadyCancelled,
        ),
        (
            || {
                Err(rejected(
                    codes::CODESPACE_CLOB,
                    codes::BLOCK_RATE_LIMIT_EXCEEDED,
                ))
            },
            CancelErrorKind::RateLimited,
        ),
        (
            || Err(rejected(codes::CODESPACE_CLOB, 29)),
            CancelErrorKind::Rejected,
        ),
        (
            || {
                Err(GatewayError::Unavailable {
                    source: "connection refused".into(),
                })
            },
            CancelErrorKind::NetworkError,
        ),
    ] {
        let id = oid(4, 0);
        let key = order_key(&id, gt);
        let c = client_settings(
            one_cancel(id, gt, answer),
            store.clone(),
            ChainSettings {
                cancel_retry: CancelRetry::never(),
                ..settings()
            },
        );
        let err = c.cancel_order(&key).await.expect_err("refused");
        assert_eq!(err.kind(), want, "{err}");
        assert_eq!(err.order_id(), key);
    }
    assert!(store.inner.is_empty());
}

#[tokio::test]
async fn a_string_that_is_not_an_id_is_invalid_order_id() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_cancel().times(0);
    let c = client(gw, store.clone());
    for bad in [
        "",
        "no-such-order",
        "dydx1abc/0/1/0/7",
        "dydx1abc/0/1/0/7@t5",
    ] {
        let err = c.cancel_order(bad).await.expect_err(bad);
        assert_eq!(err.kind(), CancelErrorKind::InvalidOrderId, "{bad}: {err}");
        assert!(
            err.to_string().contains("owner/subaccount/clob_pair"),
            "{err}"
        );
        assert!(!err.is_retryable());
    }
}

/// A record kept under an id of the caller's own (not printed by `place_order`) is still
/// cancelled from the record: the store is asked before the id is parsed.
#[cfg(feature = "recording")]
#[tokio::test]
async fn a_record_under_a_custom_id_is_still_cancelled_from_the_record() {
    let store = Arc::new(FlakyStore::default());
    let id = oid(5, 0);
    let mut meta = new_meta(&id, GoodTil::Block(130), OrderStatus::Active);
    meta.order_id = "bot-1/0/0/0/42".into();
    store.record(&meta).await.expect("seed");
    let c = client(
        one_cancel(id, GoodTil::Block(130), || Ok("C".into())),
        store.clone(),
    );
    let done = c.cancel_order("bot-1/0/0/0/42").await.expect("cancelled");
    assert_eq!(done.path, CancelPath::Record);
    assert_eq!(
        status(&store, "bot-1/0/0/0/42").await,
        OrderStatus::Cancelled
    );
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn without_cancel_from_id_metadata_not_found_says_why() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().returning(|_| Ok("P".into()));
    gw.expect_cancel().times(0);
    let c = OrderMetaClient::new(
        Arc::new(gw),
        store.clone(),
        RecordingSwitch::with_scope(RolloutScope::clob_pairs([1])),
        ChainSettings {
            cancel_from_id: false,
            ..settings()
        },
    )
    .describe_store("memory store of the unit tests");
    assert_eq!(
        c.store_description(),
        Some("memory store of the unit tests")
    );
    let outside = OrderId {
        clob_pair_id: 7,
        ..oid(6, 0)
    };
    let p = c
        .place_order(built_order(&outside, Some(GoodTil::Block(120))), details())
        .await
        .expect("placed");
    assert_eq!(p.record, RecordOutcome::OutOfScope);
    let not_found = |err: CancelError| match err {
        CancelError::MetadataNotFound {
            store,
            not_recorded,
            ..
        } => (store, not_recorded),
        other => panic!("{other}"),
    };
    let err = c.cancel_order(&p.order_id).await.expect_err("no record");
    let text = err.to_string();
    assert!(text.contains("memory store of the unit tests"), "{text}");
    assert!(text.contains("outside the rollout scope"), "{text}");
    assert!(text.contains("cancel_exact"), "{text}");
    assert_eq!(
        not_found(err),
        (
            Some("memory store of the unit tests".to_owned()),
            Some(NotRecorded::OutOfScope)
        )
    );
    // Not placed by this client, but the scope in force leaves it out.
    let other_market = order_key(
        &OrderId {
            clob_pair_id: 9,
            ..oid(7, 0)
        },
        GoodTil::Block(120),
    );
    let err = c.cancel_order(&other_market).await.expect_err("no record");
    assert_eq!(not_found(err).1, Some(NotRecorded::OutsideCurrentScope));
    // In scope and unknown: placed before ordermeta, or lost; nothing to add.
    let in_scope = order_key(&oid(8, 0), GoodTil::Block(120));
    let err = c.cancel_order(&in_scope).await.expect_err("no record");
    assert_eq!(not_found(err).1, None);
}

#[tokio::test]
async fn cancel_exact_sends_exactly_what_it_is_given_without_the_store() {
    let store = Arc::new(FlakyStore::default());
    // The store is down: the legacy path does not need it.
    store.down.store(true, Ordering::SeqCst);
    for (id, gt) in [
        (oid(10, 0), GoodTil::Block(130)),
        (oid(11, 64), GoodTil::BlockTime(CLOCK.block_time + 60)),
    ] {
        let c = client(
            one_cancel(id.clone(), gt, || Ok("EXACT".into())),
            store.clone(),
        );
        let done = c.cancel_exact(&id, gt).await.expect("cancelled");
        assert_eq!(done.path, CancelPath::Exact);
        assert_eq!(done.order_id, order_key(&id, gt));
        assert!(!done.recorded);
        assert_eq!(c.rollout_stats().cancelled_without_record, 1);
    }
    let mut gw = gateway();
    gw.expect_cancel().times(0);
    let c = client(gw, store);
    let err = c
        .cancel_exact(&oid(12, 0), GoodTil::BlockTime(5))
        .await
        .expect_err("kind mismatch");
    assert_eq!(err.kind(), CancelErrorKind::InvalidOrderId);
    let theirs = OrderId {
        owner: OTHER.into(),
        ..oid(13, 0)
    };
    let err = c
        .cancel_exact(&theirs, GoodTil::Block(130))
        .await
        .expect_err("not ours");
    assert_eq!(err.kind(), CancelErrorKind::NotOwner);
}

/// Without `describe_store`, the client names the store as the store describes itself: a
/// bot looking in the wrong store reads where it looked.
#[cfg(feature = "recording")]
#[tokio::test]
async fn metadata_not_found_names_the_store_by_its_own_description() {
    let mut gw = gateway();
    gw.expect_cancel().times(0);
    let store = Arc::new(MemoryStore::new());
    let c = OrderMetaClient::new(
        Arc::new(gw),
        store.clone(),
        RecordingSwitch::new(true),
        ChainSettings {
            cancel_from_id: false,
            ..settings()
        },
    );
    let own = store
        .description()
        .expect("the memory store describes itself");
    assert_eq!(c.store_description(), Some(own.as_str()));
    let id = order_key(&oid(9, 0), GoodTil::Block(120));
    match c.cancel_order(&id).await {
        Err(CancelError::MetadataNotFound { store, .. }) => {
            assert_eq!(store.as_deref(), Some(own.as_str()));
        }
        other => panic!("expected MetadataNotFound, got {other:?}"),
    }
    let text = c.cancel_order(&id).await.expect_err("again").to_string();
    assert!(text.contains(&own), "{text}");
}
