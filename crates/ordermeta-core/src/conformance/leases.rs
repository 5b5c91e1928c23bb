//! Claim leases: a `cancelling` claim records who holds it and until when; a claim whose lease
//! has run out is re-claimed by exactly one canceller, and a live one is never taken over.

use chrono::Duration;

use super::fixtures::{kind, long_term, must_get, short_term, t0};
use crate::error::{ErrorKind, StoreError};
use crate::model::Lease;
use crate::status::OrderStatus;
use crate::store::{ExpireRequest, MetadataStore, MetadataStoreExt, TransitionRequest};

/// A cancelling record holding `lease`, as a canceller left it.
fn claimed(id: &str, lease: Option<Lease>) -> crate::model::OrderMetadata {
    let mut m = long_term(id, OrderStatus::Cancelling, 2_000_000_000);
    m.lease = lease;
    m
}

fn secs(n: i64) -> chrono::DateTime<chrono::Utc> {
    t0() + Duration::seconds(n)
}

/// A lease written by a claim, or by `record`, reads back exactly (token, instant to the
/// microsecond); leaving `cancelling` clears it, whatever the next status.
pub async fn leases_round_trip(store: &dyn MetadataStore) {
    let lease = Lease::new("canceller-a", t0() + Duration::microseconds(30_000_001));
    store
        .record(&short_term("lease-rt", OrderStatus::Active, 100))
        .await
        .expect("record");
    let got = store
        .claim("lease-rt", &[OrderStatus::Active], lease.clone(), t0())
        .await
        .expect("claim");
    assert_eq!(got.lease.as_ref(), Some(&lease));
    assert_eq!(must_get(store, "lease-rt").await, got);

    // `record` keeps a lease on a cancelling record.
    let rec = claimed("lease-rec", Some(lease.clone()));
    store.record(&rec).await.expect("record with lease");
    assert_eq!(must_get(store, "lease-rec").await, rec);

    for (i, to) in [
        OrderStatus::Active,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
        OrderStatus::Filled,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("lease-clear-{i}");
        store
            .record(&claimed(&id, Some(lease.clone())))
            .await
            .expect("record");
        let got = store
            .transition(&TransitionRequest::new(&id, &[OrderStatus::Cancelling], to).at(secs(1)))
            .await
            .expect("leave cancelling");
        assert_eq!(got.lease, None, "cancelling -> {to} keeps no lease");
        assert_eq!(must_get(store, &id).await.lease, None);
    }

    // A lease on a record that is not cancelling is invalid, and nothing is written.
    let mut bad = short_term("lease-bad", OrderStatus::Active, 100);
    bad.lease = Some(lease);
    assert_eq!(
        kind(&store.record(&bad).await),
        Some(ErrorKind::InvalidMetadata)
    );
    assert!(store.get("lease-bad").await.expect("get").is_none());
}

/// The lease boundary: a lease until `T` is live at `T - 1µs` and expired at `T`; a
/// cancelling record without a lease is re-claimable at once; a re-claim writes the new
/// lease; a condition on the holder's token is checked; requests the table forbids are
/// refused before anything is read.
pub async fn lease_boundaries(store: &dyn MetadataStore) {
    let until = secs(30);
    store
        .record(&claimed("lease-b", Some(Lease::new("old", until))))
        .await
        .expect("record");
    let reclaim = |at| {
        TransitionRequest::new(
            "lease-b",
            &[OrderStatus::Cancelling],
            OrderStatus::Cancelling,
        )
        .at(at)
        .lease(Lease::new("new", secs(90)))
        .require_expired_lease()
    };
    let early = store
        .transition(&reclaim(until - Duration::microseconds(1)))
        .await;
    assert_eq!(
        early.as_ref().err().and_then(StoreError::current_status),
        Some(OrderStatus::Cancelling),
        "a live lease is not taken over: {early:?}"
    );
    let before = must_get(store, "lease-b").await;
    assert_eq!(
        before.lease,
        Some(Lease::new("old", until)),
        "nothing written"
    );
    assert_eq!(before.version, 1);

    let got = store
        .transition(&reclaim(until))
        .await
        .expect("expired at T");
    assert_eq!(got.lease, Some(Lease::new("new", secs(90))));
    assert_eq!((got.status, got.version), (OrderStatus::Cancelling, 2));

    // Only the holder's token satisfies `require_lease`.
    let release = |token: &str| {
        TransitionRequest::new("lease-b", &[OrderStatus::Cancelling], OrderStatus::Active)
            .at(secs(31))
            .require_lease(token)
    };
    let wrong = store.transition(&release("old")).await;
    assert_eq!(
        wrong.as_ref().err().and_then(StoreError::current_status),
        Some(OrderStatus::Cancelling),
        "{wrong:?}"
    );
    let released = store
        .transition(&release("new"))
        .await
        .expect("holder releases");
    assert_eq!(
        (released.status, released.lease),
        (OrderStatus::Active, None)
    );

    // No lease at all (a claim from before leases existed) counts as expired.
    store
        .record(&claimed("lease-none", None))
        .await
        .expect("record");
    let got = store
        .claim(
            "lease-none",
            &[OrderStatus::Active, OrderStatus::Cancelling],
            Lease::new("c", secs(60)),
            secs(0),
        )
        .await
        .expect("an unleased claim is re-claimable");
    assert_eq!(got.lease.map(|l| l.token), Some("c".to_owned()));

    // cancelling -> cancelling without the expired-lease condition is not in the table, and
    // a lease is only taken when entering cancelling.
    let r = store
        .transition(&TransitionRequest::new(
            "lease-none",
            &[OrderStatus::Cancelling],
            OrderStatus::Cancelling,
        ))
        .await;
    assert_eq!(kind(&r), Some(ErrorKind::IllegalTransition));
    let r = store
        .transition(
            &TransitionRequest::new(
                "lease-none",
                &[OrderStatus::Cancelling],
                OrderStatus::Active,
            )
            .lease(Lease::new("c", secs(60))),
        )
        .await;
    assert_eq!(kind(&r), Some(ErrorKind::InvalidMetadata));
    assert_eq!(must_get(store, "lease-none").await.version, 2, "unchanged");
}

/// One stale claim, 32 cancellers re-claiming it at once, each with its own token: exactly
/// one wins and its lease is the one stored; the others see `cancelling`.
pub async fn stale_reclaim_race(store: &dyn MetadataStore) {
    for round in 0..3 {
        let id = format!("stale-race-{round}");
        store
            .record(&claimed(&id, Some(Lease::new("dead", secs(10)))))
            .await
            .expect("record");
        let results = futures::future::join_all((0..32).map(|i| {
            let lease = Lease::new(format!("canceller-{i}"), secs(100));
            let id = id.clone();
            async move {
                store
                    .claim(
                        &id,
                        &[OrderStatus::Active, OrderStatus::Cancelling],
                        lease,
                        secs(20),
                    )
                    .await
                    .map(|m| (i, m))
            }
        }))
        .await;
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "exactly one re-claim wins: {results:?}");
        for r in results.iter().filter(|r| r.is_err()) {
            assert_eq!(
                r.as_ref().err().and_then(StoreError::current_status),
                Some(OrderStatus::Cancelling),
                "{r:?}"
            );
        }
        let (i, _) = winners[0];
        let m = must_get(store, &id).await;
        assert_eq!(
            m.lease,
            Some(Lease::new(format!("canceller-{i}"), secs(100)))
        );
        assert_eq!((m.version, m.history.len()), (2, 2));
    }
}

/// A claim whose lease has not run out is never stolen, however many try.
pub async fn fresh_claim_not_stolen(store: &dyn MetadataStore) {
    let lease = Lease::new("alive", secs(60));
    store
        .record(&claimed("fresh", Some(lease.clone())))
        .await
        .expect("record");
    let results = futures::future::join_all((0..32).map(|i| {
        store.claim(
            "fresh",
            &[OrderStatus::Active, OrderStatus::Cancelling],
            Lease::new(format!("thief-{i}"), secs(120)),
            secs(59),
        )
    }))
    .await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().err().and_then(StoreError::current_status)
                == Some(OrderStatus::Cancelling)),
        "{results:?}"
    );
    let m = must_get(store, "fresh").await;
    assert_eq!((m.lease, m.version), (Some(lease), 1));
}

/// Expiring a claimed order clears its lease; an unrelated order keeps its own.
pub async fn expire_clears_lease(store: &dyn MetadataStore) {
    store
        .record(&claimed("exp-lease", Some(Lease::new("x", secs(60)))))
        .await
        .expect("record");
    let mut keep = claimed("keep-lease", Some(Lease::new("y", secs(60))));
    keep.good_til = crate::model::GoodTil::BlockTime(2_100_000_000);
    store.record(&keep).await.expect("record");
    let n = store
        .expire(&ExpireRequest::new(None, Some(2_000_000_000)).at(secs(5)))
        .await
        .expect("expire");
    assert_eq!(n, 1);
    let m = must_get(store, "exp-lease").await;
    assert_eq!((m.status, m.lease), (OrderStatus::Expired, None));
    assert_eq!(must_get(store, "keep-lease").await, keep);
}

/// For a store's own tests of leases written outside ordermeta (an operator's `UPDATE`, a
/// restore): `order_id` is `cancelling` with a live lease held by `token`. Asserts that the
/// store honours it like one it wrote: another canceller cannot take it over, a release
/// with another token is refused, and the holder's release succeeds and clears it.
pub async fn foreign_lease_is_honoured(store: &dyn MetadataStore, order_id: &str, token: &str) {
    let m = must_get(store, order_id).await;
    assert_eq!(m.lease.as_ref().map(|l| l.token.as_str()), Some(token));
    let now = crate::model::now();
    let steal = store
        .claim(
            order_id,
            &[OrderStatus::Cancelling],
            Lease::new("thief", now + Duration::seconds(30)),
            now,
        )
        .await;
    assert_eq!(
        steal.err().and_then(|e| e.current_status()),
        Some(OrderStatus::Cancelling),
        "a live foreign lease is not taken over"
    );
    let release = |t: &str| {
        TransitionRequest::new(order_id, &[OrderStatus::Cancelling], OrderStatus::Active)
            .require_lease(t)
    };
    let wrong = store.transition(&release("not-the-holder")).await;
    assert_eq!(
        wrong.err().and_then(|e| e.current_status()),
        Some(OrderStatus::Cancelling)
    );
    let released = store.transition(&release(token)).await.expect("release");
    assert_eq!(
        (released.status, released.lease),
        (OrderStatus::Active, None)
    );
}
