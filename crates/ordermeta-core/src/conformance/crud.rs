//! Records: writing, reading back, batches, duplicates, invalid records, health.

use chrono::Duration;

use super::fixtures::{OWNER_B, kind, long_term, must_get, short_term, short_term_at_limits, t0};
use crate::error::{ErrorKind, StoreError};
use crate::model::{GoodTil, OrderType};
use crate::order_id::ORDER_FLAGS_CONDITIONAL;
use crate::status::OrderStatus;
use crate::store::{ListQuery, MetadataStore, TransitionRequest};

/// Every field survives a write and a read: unicode symbols, `u32::MAX` ids, no price, both
/// good-til kinds, every order type, hashes, and a long history.
pub async fn round_trip(store: &dyn MetadataStore) {
    let mut records = Vec::new();
    let mut a = short_term_at_limits("rt-short", OrderStatus::Pending);
    a.quantity = "123456789012345678901234567890.000000000000000001".to_owned();
    records.push(a);
    let mut b = long_term("rt-long/ünïcödé id", OrderStatus::Active, u32::MAX);
    b.dydx_order_id.owner = OWNER_B.to_owned();
    b.dydx_order_id.order_flags = ORDER_FLAGS_CONDITIONAL;
    b.order_type = OrderType::TakeProfitMarket;
    b.tx_hash = Some("A1B2C3".repeat(10));
    b.cancel_tx_hash = Some("ff".to_owned());
    b.cancelled_at = Some(t0() + Duration::microseconds(1));
    b = b.with_label("bot-örder-7f3a/é");
    b.indexer_id = Some("5f2ba7a4-7dc6-5f6e-8d8a-2a5e3f5d1c42".to_owned());
    b.filled_quantity = Some("0.000000000000000001".to_owned());
    b.cancel_confirmed_at = Some(t0() + Duration::microseconds(2));
    records.push(b);
    for (i, ot) in OrderType::ALL.into_iter().enumerate() {
        let mut m = short_term(&format!("rt-type-{i}"), OrderStatus::Active, i as u32);
        m.order_type = ot;
        m.dydx_order_id.client_id = i as u32;
        records.push(m);
    }
    for m in &records {
        store.record(m).await.expect("record");
    }
    for m in &records {
        assert_eq!(
            &must_get(store, &m.order_id).await,
            m,
            "round trip of {}",
            m.order_id
        );
    }

    // A long history: 60 transitions between active and cancelling.
    let id = "rt-type-1";
    let mut expected = must_get(store, id).await;
    for i in 0..60u32 {
        let (from, to) = if i % 2 == 0 {
            (OrderStatus::Active, OrderStatus::Cancelling)
        } else {
            (OrderStatus::Cancelling, OrderStatus::Active)
        };
        let req = TransitionRequest::new(id, &[from], to)
            .at(t0() + Duration::milliseconds(i64::from(i) + 1))
            .reason(format!("step {i} — ü"));
        req.apply(&mut expected);
        let got = store.transition(&req).await.expect("transition");
        assert_eq!(got, expected, "transition {i} returns the updated record");
    }
    assert_eq!(expected.history.len(), 61);
    assert_eq!(
        must_get(store, id).await,
        expected,
        "long history reads back"
    );
    let page = store
        .list(&ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert!(page.invalid.is_empty());
    assert_eq!(page.items.len(), records.len());
    assert!(page.items.contains(&expected), "list returns full records");
}

/// `record_many` writes all or nothing.
pub async fn record_many_all_or_nothing(store: &dyn MetadataStore) {
    store.record_many(&[]).await.expect("empty batch is fine");
    let batch: Vec<_> = (0..50)
        .map(|i| short_term(&format!("rm-{i:03}"), OrderStatus::Pending, 100 + i))
        .collect();
    store.record_many(&batch).await.expect("record_many");
    for m in &batch {
        assert_eq!(&must_get(store, &m.order_id).await, m);
    }
    // One existing id poisons the whole batch.
    let mut clash = vec![short_term("rm-new-1", OrderStatus::Pending, 1)];
    clash.push(short_term("rm-007", OrderStatus::Active, 1));
    clash.push(short_term("rm-new-2", OrderStatus::Pending, 1));
    let r = store.record_many(&clash).await;
    assert_eq!(kind(&r), Some(ErrorKind::AlreadyExists), "{r:?}");
    assert_eq!(store.get("rm-new-1").await.expect("get"), None);
    assert_eq!(store.get("rm-new-2").await.expect("get"), None);
    assert_eq!(must_get(store, "rm-007").await.status, OrderStatus::Pending);
    // A duplicate inside the batch.
    let dup = vec![
        short_term("rm-dup", OrderStatus::Pending, 1),
        short_term("rm-dup", OrderStatus::Active, 2),
    ];
    let r = store.record_many(&dup).await;
    assert_eq!(kind(&r), Some(ErrorKind::AlreadyExists), "{r:?}");
    assert_eq!(store.get("rm-dup").await.expect("get"), None);
    // An invalid record.
    let mut bad = short_term("rm-bad", OrderStatus::Pending, 1);
    bad.quantity = "1e9".to_owned();
    let r = store
        .record_many(&[short_term("rm-ok", OrderStatus::Pending, 1), bad])
        .await;
    assert_eq!(kind(&r), Some(ErrorKind::InvalidMetadata), "{r:?}");
    assert_eq!(store.get("rm-ok").await.expect("get"), None);
}

/// A taken id is `AlreadyExists` and the original is untouched; invalid records are refused.
pub async fn duplicate_ids(store: &dyn MetadataStore) {
    let first = short_term("dup-1", OrderStatus::Pending, 10);
    store.record(&first).await.expect("record");
    let second = long_term("dup-1", OrderStatus::Active, 99);
    let r = store.record(&second).await;
    match &r {
        Err(StoreError::AlreadyExists { order_id }) => assert_eq!(order_id, "dup-1"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(must_get(store, "dup-1").await, first);

    let mut invalid = Vec::new();
    let mut m = short_term("", OrderStatus::Pending, 1);
    invalid.push(m.clone());
    m.order_id = "x".repeat(crate::model::MAX_ORDER_ID_LEN + 1);
    invalid.push(m);
    let mut m = short_term("inv-gt", OrderStatus::Pending, 1);
    m.good_til = GoodTil::BlockTime(5);
    invalid.push(m);
    let mut m = long_term("inv-gt2", OrderStatus::Pending, 1);
    m.good_til = GoodTil::Block(5);
    invalid.push(m);
    let mut m = short_term("inv-price", OrderStatus::Pending, 1);
    m.price = Some("NaN".to_owned());
    invalid.push(m);
    let mut m = short_term("inv-hist", OrderStatus::Pending, 1);
    m.status = OrderStatus::Active;
    invalid.push(m);
    invalid.push(short_term("inv-label", OrderStatus::Pending, 1).with_label("a\nb"));
    invalid.push(short_term("inv-label2", OrderStatus::Pending, 1).with_label(""));
    let mut m = short_term("inv-filled", OrderStatus::Pending, 1);
    m.filled_quantity = Some("-1".to_owned());
    invalid.push(m);
    let mut m = short_term("inv-indexer", OrderStatus::Pending, 1);
    m.indexer_id = Some("has space".to_owned());
    invalid.push(m);
    for m in invalid {
        let r = store.record(&m).await;
        assert_eq!(
            kind(&r),
            Some(ErrorKind::InvalidMetadata),
            "{}: {r:?}",
            m.order_id
        );
        if !m.order_id.is_empty() && m.order_id.len() <= crate::model::MAX_ORDER_ID_LEN {
            assert_eq!(store.get(&m.order_id).await.expect("get"), None);
        }
    }
    assert_eq!(store.get("never-recorded").await.expect("get"), None);
}

/// `health` answers Ok on a working store.
pub async fn health(store: &dyn MetadataStore) {
    store.health().await.expect("health");
}
