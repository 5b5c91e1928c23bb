//! The state machine through [`MetadataStore::transition`]: every legal and illegal move,
//! patches and conflicts, and the compare-and-set race every canceller relies on.

use chrono::Duration;

use super::fixtures::{kind, must_get, short_term, t0};
use crate::error::{ErrorKind, StoreError};
use crate::status::OrderStatus;
use crate::store::{MetadataStore, MetadataStoreExt, TransitionRequest};

/// Every legal transition succeeds and does exactly what [`TransitionRequest::apply`] says.
pub async fn legal_transitions(store: &dyn MetadataStore) {
    for from in OrderStatus::ALL {
        for &to in from.successors() {
            let id = format!("legal-{from}-{to}");
            let rec = short_term(&id, from, 50);
            store.record(&rec).await.expect("record");
            let req = TransitionRequest::new(&id, &[from], to)
                .at(t0() + Duration::seconds(5))
                .reason(format!("{from} to {to}"));
            let mut expected = rec.clone();
            req.apply(&mut expected);
            let got = store.transition(&req).await.expect("legal transition");
            assert_eq!(got, expected, "{from} -> {to}");
            assert_eq!(got.version, 2);
            assert_eq!(must_get(store, &id).await, expected);
        }
    }
}

/// Every transition outside the table is `IllegalTransition` and changes nothing, even when
/// mixed into a set of otherwise legal starting statuses.
pub async fn illegal_transitions(store: &dyn MetadataStore) {
    for from in OrderStatus::ALL {
        for to in OrderStatus::ALL {
            if from.can_transition_to(to) {
                continue;
            }
            let id = format!("illegal-{from}-{to}");
            let rec = short_term(&id, from, 50);
            store.record(&rec).await.expect("record");
            let r = store
                .transition(&TransitionRequest::new(&id, &[from], to))
                .await;
            match r {
                Err(StoreError::IllegalTransition { from: f, to: t }) => {
                    assert_eq!((f, t), (from, to));
                }
                other => panic!("{from} -> {to}: expected IllegalTransition, got {other:?}"),
            }
            assert_eq!(
                must_get(store, &id).await,
                rec,
                "{from} -> {to} changed the record"
            );
        }
    }
    // Mixed: one legal and one illegal starting status is still illegal.
    store
        .record(&short_term("illegal-mixed", OrderStatus::Active, 5))
        .await
        .expect("record");
    let r = store
        .transition(&TransitionRequest::new(
            "illegal-mixed",
            &[OrderStatus::Active, OrderStatus::Filled],
            OrderStatus::Cancelling,
        ))
        .await;
    assert_eq!(kind(&r), Some(ErrorKind::IllegalTransition), "{r:?}");
    let r = store
        .transition(&TransitionRequest::new(
            "illegal-mixed",
            &[],
            OrderStatus::Cancelling,
        ))
        .await;
    assert_eq!(kind(&r), Some(ErrorKind::InvalidMetadata), "{r:?}");
}

/// Patches set only what they name; conflicts report the current status; unknown ids are
/// `NotFound`.
pub async fn transition_patch_and_conflicts(store: &dyn MetadataStore) {
    let id = "patch-1";
    store
        .record(&short_term(id, OrderStatus::Pending, 100))
        .await
        .expect("record");
    let t1 = t0() + Duration::seconds(1);
    let got = store
        .transition(
            &TransitionRequest::new(id, &[OrderStatus::Pending], OrderStatus::Active)
                .at(t1)
                .tx_hash("PLACEHASH"),
        )
        .await
        .expect("activate");
    assert_eq!(got.tx_hash.as_deref(), Some("PLACEHASH"));
    assert_eq!(got.updated_at, t1);
    assert_eq!(got.placed_at, t0());
    assert_eq!(got.cancelled_at, None);
    assert_eq!(got.history.last().map(|h| h.reason.clone()), Some(None));

    // Wrong expected status: conflict carrying the current one, nothing changes.
    let r = store
        .transition(&TransitionRequest::new(
            id,
            &[OrderStatus::Pending],
            OrderStatus::Failed,
        ))
        .await;
    assert_eq!(
        r.as_ref().err().and_then(StoreError::current_status),
        Some(OrderStatus::Active),
        "{r:?}"
    );
    assert_eq!(must_get(store, id).await, got);

    let t2 = t0() + Duration::seconds(2);
    let got = store
        .transition(
            &TransitionRequest::new(
                id,
                &[OrderStatus::Active, OrderStatus::Cancelling],
                OrderStatus::Cancelled,
            )
            .at(t2)
            .cancel_tx_hash("CANCELHASH")
            .reason("cancel accepted"),
        )
        .await
        .expect("cancel");
    assert_eq!(got.status, OrderStatus::Cancelled);
    assert_eq!(
        got.tx_hash.as_deref(),
        Some("PLACEHASH"),
        "unnamed fields stay"
    );
    assert_eq!(got.cancel_tx_hash.as_deref(), Some("CANCELHASH"));
    assert_eq!(got.cancelled_at, Some(t2));
    assert_eq!(got.version, 3);
    assert_eq!(got.history.len(), 3);

    let r = store
        .transition(&TransitionRequest::new(
            "no-such-order",
            &[OrderStatus::Active],
            OrderStatus::Cancelling,
        ))
        .await;
    match r {
        Err(StoreError::NotFound { order_id }) => assert_eq!(order_id, "no-such-order"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// 32 concurrent claims of one order: exactly one wins, every other sees `cancelling`.
pub async fn claim_race(store: &dyn MetadataStore) {
    for round in 0..3 {
        let id = format!("race-{round}");
        store
            .record(&short_term(&id, OrderStatus::Active, 100))
            .await
            .expect("record");
        let results = futures::future::join_all((0..32).map(|_| store.claim_for_cancel(&id))).await;
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "exactly one claim wins: {results:?}");
        for r in results.iter().filter(|r| r.is_err()) {
            assert_eq!(
                r.as_ref().err().and_then(StoreError::current_status),
                Some(OrderStatus::Cancelling),
                "{r:?}"
            );
        }
        let m = must_get(store, &id).await;
        assert_eq!(
            (m.status, m.version, m.history.len()),
            (OrderStatus::Cancelling, 2, 2)
        );
    }
}
