//! `expire` by height and by block time, and `purge` of old terminal records.

use chrono::{DateTime, Duration, Utc};

use super::fixtures::{long_term, must_get, short_term, t0};
use crate::model::OrderMetadata;
use crate::status::OrderStatus;
use crate::store::{EXPIRE_REASON, ExpireRequest, MetadataStore};

async fn check_expired(
    store: &dyn MetadataStore,
    id: &str,
    at: DateTime<Utc>,
    from: &OrderMetadata,
) {
    let m = must_get(store, id).await;
    assert_eq!(m.status, OrderStatus::Expired, "{id}");
    assert_eq!(m.updated_at, at, "{id}");
    assert_eq!(m.version, from.version + 1, "{id}");
    let last = m.history.last().expect("history");
    assert_eq!(last.reason.as_deref(), Some(EXPIRE_REASON));
    assert_eq!(last.at, at);
}

/// Open short-term orders expire once the height reaches their good-til block.
pub async fn expire_by_height(store: &dyn MetadataStore) {
    let recs = vec![
        short_term("eh-pending", OrderStatus::Pending, 100),
        short_term("eh-active", OrderStatus::Active, 100),
        short_term("eh-cancelling", OrderStatus::Cancelling, 99),
        short_term("eh-later", OrderStatus::Active, 101),
        short_term("eh-cancelled", OrderStatus::Cancelled, 10),
        short_term("eh-filled", OrderStatus::Filled, 10),
        long_term("eh-stateful", OrderStatus::Active, 100),
    ];
    store.record_many(&recs).await.expect("record_many");
    let at = t0() + Duration::seconds(30);
    let n = store
        .expire(&ExpireRequest::new(Some(99), None).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 1, "only eh-cancelling (GTB 99) at height 99");
    let n = store
        .expire(&ExpireRequest::new(Some(100), None).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 2);
    for r in &recs[..3] {
        check_expired(store, &r.order_id, at, r).await;
    }
    for r in &recs[3..] {
        assert_eq!(
            &must_get(store, &r.order_id).await,
            r,
            "{} untouched",
            r.order_id
        );
    }
    let n = store
        .expire(&ExpireRequest::new(Some(100), None).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 0, "idempotent");
    let n = store
        .expire(&ExpireRequest::new(None, None).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 0, "no clock, no expiry");
}

/// Open stateful orders expire once the block time reaches their good-til time.
pub async fn expire_by_time(store: &dyn MetadataStore) {
    let recs = vec![
        long_term("et-active", OrderStatus::Active, 1_000),
        long_term("et-pending", OrderStatus::Pending, 999),
        long_term("et-later", OrderStatus::Active, 1_001),
        long_term("et-failed", OrderStatus::Failed, 1),
        short_term("et-short", OrderStatus::Active, 1),
    ];
    store.record_many(&recs).await.expect("record_many");
    let at = t0() + Duration::seconds(60);
    let n = store
        .expire(&ExpireRequest::new(None, Some(1_000)).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 2);
    for r in &recs[..2] {
        check_expired(store, &r.order_id, at, r).await;
    }
    for r in &recs[2..] {
        assert_eq!(
            &must_get(store, &r.order_id).await,
            r,
            "{} untouched",
            r.order_id
        );
    }
    // Both clocks at once.
    let n = store
        .expire(&ExpireRequest::new(Some(1), Some(u32::MAX)).at(at))
        .await
        .expect("expire");
    assert_eq!(n, 2, "et-later by time and et-short by height");
}

/// Purge deletes terminal records last updated before the cut-off, and nothing else.
pub async fn purge(store: &dyn MetadataStore) {
    let mut recs = Vec::new();
    for (i, st) in OrderStatus::ALL.into_iter().enumerate() {
        recs.push(short_term(&format!("pg-old-{i}"), st, 1));
        let mut m = short_term(&format!("pg-new-{i}"), st, 1);
        m.updated_at = t0() + Duration::days(2);
        m.history[0].at = m.updated_at;
        recs.push(m);
    }
    store.record_many(&recs).await.expect("record_many");
    let cut = t0() + Duration::days(1);
    let n = store.purge(cut).await.expect("purge");
    assert_eq!(n, 4, "the four terminal statuses, old ones only");
    for r in &recs {
        let gone = r.status.is_terminal() && r.updated_at < cut;
        assert_eq!(
            store.get(&r.order_id).await.expect("get").is_none(),
            gone,
            "{}",
            r.order_id
        );
    }
    assert_eq!(store.purge(cut).await.expect("purge"), 0);
    // Exactly at the cut-off is kept (strictly older only).
    assert_eq!(
        store.purge(t0() + Duration::days(2)).await.expect("purge"),
        0
    );
    assert_eq!(
        store
            .purge(t0() + Duration::days(2) + Duration::microseconds(1))
            .await
            .expect("purge"),
        4
    );
}
