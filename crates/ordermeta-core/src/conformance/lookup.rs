//! What the chain teaches after placement, and lookups by the bot's own identity:
//! [`update`](crate::MetadataStore::update), transitions carrying a [`FieldPatch`](crate::FieldPatch),
//! [`find_by_client_id`](crate::MetadataStore::find_by_client_id) and
//! [`find_by_label`](crate::MetadataStore::find_by_label).

use chrono::Duration;

use super::fixtures::{OWNER_B, kind, long_term, must_get, short_term, t0};
use crate::error::{ErrorKind, StoreError};
use crate::model::{Lease, OrderMetadata};
use crate::status::OrderStatus;
use crate::store::{ExpireRequest, MetadataStore, TransitionRequest};
use crate::update::{ClientIdKey, UpdateRequest};

fn placed(mut m: OrderMetadata, offset_s: i64) -> OrderMetadata {
    let at = t0() + Duration::seconds(offset_s);
    m.placed_at = at;
    m.updated_at = at;
    m.history[0].at = at;
    m
}

fn found(r: Result<Option<OrderMetadata>, StoreError>) -> Option<String> {
    r.expect("lookup").map(|m| m.order_id)
}

/// `find_by_client_id` returns the newest record of (owner, subaccount, market, client id),
/// whatever its flags, status or good-til; ties on `placed_at` go to the greatest order id;
/// other owners, subaccounts, markets and client ids never match; purge moves the answer to
/// the next newest; an unknown key is `None`.
pub async fn find_by_client_id_newest(store: &dyn MetadataStore) {
    let key = ClientIdKey::of(&short_term("x", OrderStatus::Active, 1));
    let mut records = vec![
        placed(short_term("cid-old", OrderStatus::Cancelled, 10), 0),
        placed(long_term("cid-mid", OrderStatus::Active, 99), 1),
        placed(short_term("cid-new-a", OrderStatus::Expired, 30), 2),
        placed(short_term("cid-new-b", OrderStatus::Expired, 20), 2),
    ];
    // Newer records that differ in one field of the key each.
    let mut other_owner = placed(short_term("cid-x-owner", OrderStatus::Active, 40), 9);
    other_owner.dydx_order_id.owner = OWNER_B.to_owned();
    let mut other_sub = placed(short_term("cid-x-sub", OrderStatus::Active, 40), 9);
    other_sub.dydx_order_id.subaccount_number = 1;
    let mut other_clob = placed(short_term("cid-x-clob", OrderStatus::Active, 40), 9);
    other_clob.dydx_order_id.clob_pair_id = 1;
    let mut other_cid = placed(short_term("cid-x-cid", OrderStatus::Active, 40), 9);
    other_cid.dydx_order_id.client_id = key.client_id + 1;
    records.extend([other_owner, other_sub, other_clob, other_cid]);
    store.record_many(&records).await.expect("record_many");

    assert_eq!(
        found(store.find_by_client_id(&key).await).as_deref(),
        Some("cid-new-b"),
        "newest placed_at, tie broken by the greatest order id"
    );
    for m in &records[4..] {
        assert_eq!(
            found(store.find_by_client_id(&ClientIdKey::of(m)).await).as_deref(),
            Some(m.order_id.as_str()),
            "each differing key finds only its own record"
        );
    }
    let unknown = ClientIdKey {
        client_id: 999_999,
        ..key.clone()
    };
    assert_eq!(found(store.find_by_client_id(&unknown).await), None);

    // The two newest are terminal; purging them leaves the stateful one as the newest.
    let purged = store
        .purge(t0() + Duration::seconds(3) + Duration::days(1))
        .await
        .expect("purge");
    assert!(purged >= 3, "purged {purged}");
    assert_eq!(
        found(store.find_by_client_id(&key).await).as_deref(),
        Some("cid-mid"),
        "purged records leave the index"
    );
}

/// `find_by_label` returns the newest record with that exact label (unicode, case and
/// spaces significant); labels survive transitions and expiry; purge drops them; records
/// without a label are never found.
pub async fn find_by_label_newest(store: &dyn MetadataStore) {
    let label = "bot ÜUID 7f3a-🚀";
    let records = vec![
        placed(
            short_term("lbl-1", OrderStatus::Active, 10).with_label(label),
            0,
        ),
        placed(
            short_term("lbl-2", OrderStatus::Pending, 10).with_label(label),
            5,
        ),
        placed(
            short_term("lbl-3", OrderStatus::Active, 10).with_label("bot üuid 7f3a-🚀"),
            9,
        ),
        placed(short_term("lbl-4", OrderStatus::Active, 10), 9),
    ];
    store.record_many(&records).await.expect("record_many");
    assert_eq!(
        found(store.find_by_label(label).await).as_deref(),
        Some("lbl-2")
    );
    assert_eq!(
        found(store.find_by_label("bot üuid 7f3a-🚀").await).as_deref(),
        Some("lbl-3")
    );
    assert_eq!(found(store.find_by_label("no such label").await), None);

    let moved = store
        .transition(
            &TransitionRequest::new("lbl-2", &[OrderStatus::Pending], OrderStatus::Active)
                .at(t0() + Duration::seconds(6)),
        )
        .await
        .expect("transition");
    assert_eq!(
        moved.label.as_deref(),
        Some(label),
        "a transition keeps the label"
    );
    let expired = store
        .expire(&ExpireRequest::new(Some(10), None).at(t0() + Duration::seconds(7)))
        .await
        .expect("expire");
    assert_eq!(expired, 4);
    let got = store
        .find_by_label(label)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(
        (got.order_id.as_str(), got.status),
        ("lbl-2", OrderStatus::Expired)
    );
    store.purge(t0() + Duration::days(1)).await.expect("purge");
    assert_eq!(
        found(store.find_by_label(label).await),
        None,
        "purge drops labels"
    );
}

/// `update` sets the patch and nothing else: status, history and lease stay, the version
/// and `updated_at` move, a later patch never erases an earlier field; it is a
/// compare-and-set on the status and the version; bad requests are refused before anything
/// is written.
pub async fn update_patch_and_conflicts(store: &dyn MetadataStore) {
    let until = t0() + Duration::seconds(30);
    let claimed = {
        let mut m = short_term("upd-1", OrderStatus::Active, 50);
        let req = TransitionRequest::new("upd-1", &[OrderStatus::Active], OrderStatus::Cancelling)
            .lease(Lease::new("canceller-a", until))
            .at(t0() + Duration::seconds(1));
        store.record(&m).await.expect("record");
        req.apply(&mut m);
        store.transition(&req).await.expect("claim");
        m
    };
    let at = t0() + Duration::seconds(2);
    let req = UpdateRequest::new("upd-1")
        .in_statuses(&[OrderStatus::Cancelling])
        .if_version(claimed.version)
        .at(at)
        .indexer_id("0a4d0e53-3c7f-5a4c-9a3b-6a0e1fd1f0aa")
        .filled_quantity("0.0004");
    let mut expected = claimed.clone();
    req.apply(&mut expected);
    let got = store.update(&req).await.expect("update");
    assert_eq!(got, expected, "update returns the updated record");
    assert_eq!(got.status, OrderStatus::Cancelling);
    assert_eq!(got.history, claimed.history, "history untouched");
    assert_eq!(got.lease, claimed.lease, "lease untouched");
    assert_eq!(got.version, claimed.version + 1);
    assert_eq!(got.updated_at, at);
    assert_eq!(must_get(store, "upd-1").await, expected);

    // A later patch with only the quantity keeps the indexer id.
    let req2 = UpdateRequest::new("upd-1").filled_quantity("0.0007");
    req2.apply(&mut expected);
    assert_eq!(store.update(&req2).await.expect("update 2"), expected);
    assert_eq!(
        expected.indexer_id.as_deref(),
        Some("0a4d0e53-3c7f-5a4c-9a3b-6a0e1fd1f0aa")
    );

    // Stale version, wrong status, unknown order: nothing written.
    let stale = UpdateRequest::new("upd-1")
        .if_version(claimed.version)
        .filled_quantity("0.001");
    match store.update(&stale).await {
        Err(StoreError::StatusConflict { current, .. }) => {
            assert_eq!(current, OrderStatus::Cancelling)
        }
        other => panic!("stale version: expected StatusConflict, got {other:?}"),
    }
    let wrong = UpdateRequest::new("upd-1")
        .in_statuses(&[OrderStatus::Active, OrderStatus::Pending])
        .filled_quantity("0.001");
    let r = store.update(&wrong).await;
    assert_eq!(kind(&r), Some(ErrorKind::StatusConflict), "{r:?}");
    let r = store
        .update(&UpdateRequest::new("upd-none").filled_quantity("1"))
        .await;
    assert_eq!(kind(&r), Some(ErrorKind::NotFound), "{r:?}");
    for bad in [
        UpdateRequest::new("upd-1"),
        UpdateRequest::new("upd-1").filled_quantity("1e3"),
        UpdateRequest::new("upd-1").filled_quantity("-0.1"),
        UpdateRequest::new("upd-1").indexer_id(""),
        UpdateRequest::new("upd-1").indexer_id("x".repeat(65)),
    ] {
        let r = store.update(&bad).await;
        assert_eq!(kind(&r), Some(ErrorKind::InvalidMetadata), "{bad:?}: {r:?}");
    }
    assert_eq!(
        must_get(store, "upd-1").await,
        expected,
        "refusals wrote nothing"
    );
}

/// A transition carries a patch in the same write: a cancel later confirmed, and a cancel
/// that lost to a fill (`cancelled -> filled` with the filled quantity).
pub async fn transition_with_patch(store: &dyn MetadataStore) {
    let mut m = short_term("tp-1", OrderStatus::Active, 50);
    store.record(&m).await.expect("record");
    let cancel = TransitionRequest::new("tp-1", &[OrderStatus::Active], OrderStatus::Cancelled)
        .at(t0() + Duration::seconds(1))
        .indexer_id("0a4d0e53-3c7f-5a4c-9a3b-6a0e1fd1f0ab");
    cancel.apply(&mut m);
    assert_eq!(store.transition(&cancel).await.expect("cancel"), m);
    assert_eq!(m.cancel_confirmed_at, None, "accepted, not yet confirmed");
    let confirmed = t0() + Duration::seconds(2);
    let confirm = UpdateRequest::new("tp-1")
        .in_statuses(&[OrderStatus::Cancelled])
        .at(confirmed)
        .cancel_confirmed_at(confirmed);
    confirm.apply(&mut m);
    assert_eq!(store.update(&confirm).await.expect("confirm"), m);

    let mut f = short_term("tp-2", OrderStatus::Cancelled, 50);
    store.record(&f).await.expect("record");
    let fill = TransitionRequest::new("tp-2", &[OrderStatus::Cancelled], OrderStatus::Filled)
        .at(t0() + Duration::seconds(3))
        .reason("fill won the race")
        .filled_quantity(f.quantity.clone());
    fill.apply(&mut f);
    let got = store.transition(&fill).await.expect("fill");
    assert_eq!(got, f);
    assert_eq!(got.filled_quantity.as_deref(), Some("0.001"));
    assert_eq!(must_get(store, "tp-2").await, f);

    let bad = TransitionRequest::new("tp-2", &[OrderStatus::Filled], OrderStatus::Filled)
        .filled_quantity("x");
    assert!(store.transition(&bad).await.is_err());
}

/// Of 16 concurrent updates conditioned on the same version, exactly one applies.
pub async fn update_race(store: &dyn MetadataStore) {
    let m = short_term("ur-1", OrderStatus::Active, 50);
    store.record(&m).await.expect("record");
    let reqs: Vec<_> = (0..16)
        .map(|i| {
            UpdateRequest::new("ur-1")
                .if_version(m.version)
                .filled_quantity(format!("0.000{i}"))
        })
        .collect();
    let results = futures::future::join_all(reqs.iter().map(|r| store.update(r))).await;
    let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(wins.len(), 1, "exactly one winner: {results:?}");
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e.kind(), ErrorKind::StatusConflict, "{e:?}");
        }
    }
    let stored = must_get(store, "ur-1").await;
    assert_eq!(&stored, wins[0]);
    assert_eq!(stored.version, m.version + 1);
}
