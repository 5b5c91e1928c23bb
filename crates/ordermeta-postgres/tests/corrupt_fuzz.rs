//! Property test of the row decoder over outside values, against the real server: a valid
//! record with a few columns overwritten by anything PostgreSQL will store in them (edge
//! integers, `infinity`, times beyond chrono's range, any text, any JSON) is read back as a
//! record or reported as `InvalidMetadata` naming the order, by `get`, `list`,
//! `find_by_client_id` and `find_by_label`, and `update`, `claim`, `expire` and `purge` go
//! on; nothing panics or fails the store. The record carries issue 13's fields (label,
//! indexer id, filled quantity, cancel confirmation) or leaves them NULL.
//!
//! Cases: 48, or `ORDERMETA_FUZZ_CASES`.

mod common;

use chrono::{Duration as ChronoDuration, Utc};
use ordermeta_core::conformance::{long_term, short_term};
use ordermeta_core::{
    ClientIdKey, ErrorKind, ExpireRequest, Lease, ListQuery, MetadataStore, MetadataStoreExt,
    OrderMetadata, OrderStatus, StoreError, UpdateRequest,
};
use ordermeta_postgres::{PgStore, PgStoreOptions, sqlx};
use proptest::prelude::*;

use common::{drop_store, fresh_store};

/// Every column and its type.
const COLUMNS: [(&str, &str); 28] = [
    ("order_id", "text"),
    ("dydx_order_id", "text"),
    ("good_until_block", "bigint"),
    ("good_til_block_time", "bigint"),
    ("client_id", "bigint"),
    ("subaccount_number", "bigint"),
    ("owner", "text"),
    ("order_flags", "bigint"),
    ("clob_pair_id", "bigint"),
    ("symbol", "text"),
    ("side", "text"),
    ("quantity", "text"),
    ("price", "text"),
    ("order_type", "text"),
    ("placed_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("cancelled_at", "timestamptz"),
    ("tx_hash", "text"),
    ("cancel_tx_hash", "text"),
    ("status", "text"),
    ("version", "bigint"),
    ("history", "jsonb"),
    ("lease_token", "text"),
    ("lease_until", "timestamptz"),
    ("label", "text"),
    ("indexer_id", "text"),
    ("filled_quantity", "text"),
    ("cancel_confirmed_at", "timestamptz"),
];

/// The label the fuzzed record carries (when it carries issue 13's fields).
const LABEL: &str = "fuzz-label";

/// A lookup's answer: nothing, the record, or `InvalidMetadata` naming it.
fn check_found(
    what: &str,
    r: Result<Option<OrderMetadata>, StoreError>,
    id: &str,
) -> Result<(), TestCaseError> {
    match r {
        Ok(None) => {}
        Ok(Some(m)) => prop_assert_eq!(m.order_id.as_str(), id),
        Err(StoreError::InvalidMetadata {
            order_id: Some(o), ..
        }) => prop_assert_eq!(o.as_str(), id),
        other => prop_assert!(false, "{what}: {other:?}"),
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("ORDERMETA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// A value as text, cast to the column's type by the server (`None` is NULL); a value the
/// column refuses is simply not stored.
fn value() -> impl Strategy<Value = Option<String>> {
    let edges = prop::sample::select(vec![
        "infinity",
        "-infinity",
        "290000-01-01 00:00:00+00",
        "262143-12-31 23:59:59+00",
        "4713-01-01 00:00:00+00 BC",
        "1970-01-01 00:00:00+00",
        "epoch",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "4294967295",
        "4294967296",
        "active",
        "cancelling",
        "bogus",
        "[]",
        "{}",
        "\"text\"",
        "[{\"status\": \"active\", \"at\": \"x\"}]",
        "null",
        "",
        "0.5",
        "1e3",
        "fuzz-label",
        "0a4d0e53-3c7f-5a4c-9a3b-6a0e1fd1f0aa",
        "a\tb",
    ]);
    prop_oneof![
        Just(None),
        edges.prop_map(|s| Some(s.to_owned())),
        any::<i64>().prop_map(|n| Some(n.to_string())),
        "[ -~]{0,16}".prop_map(Some),
    ]
}

async fn check(
    store: &PgStore,
    long: bool,
    status: OrderStatus,
    extras: bool,
    edits: &[(usize, Option<String>)],
) -> Result<(), TestCaseError> {
    let t = store.table();
    let fail = |what: &str, e: &dyn std::fmt::Display| TestCaseError::fail(format!("{what}: {e}"));
    sqlx::query(&format!("DELETE FROM {t}"))
        .execute(store.pool())
        .await
        .map_err(|e| fail("delete", &e))?;
    let mut m = if long {
        long_term("fuzzed", status, 2_000_000_000)
    } else {
        short_term("fuzzed", status, 100)
    };
    if extras {
        m = m.with_label(LABEL);
        m.indexer_id = Some("0a4d0e53-3c7f-5a4c-9a3b-6a0e1fd1f0aa".to_owned());
        m.filled_quantity = Some("0.0005".to_owned());
        m.cancel_confirmed_at = Some(m.placed_at);
    }
    store.record(&m).await.map_err(|e| fail("record", &e))?;
    for (i, v) in edits {
        let (name, ty) = COLUMNS[*i];
        let sql = format!("UPDATE {t} SET {name} = CAST($1::text AS {ty})");
        let _ = sqlx::query(&sql)
            .bind(v.as_deref())
            .execute(store.pool())
            .await;
    }
    let id: String = sqlx::query_scalar(&format!("SELECT order_id FROM {t}"))
        .fetch_one(store.pool())
        .await
        .map_err(|e| fail("select", &e))?;

    let page = store
        .list(&ListQuery::default())
        .await
        .map_err(|e| fail("list", &e))?;
    prop_assert_eq!(page.items.len() + page.invalid.len(), 1);
    if let Some(r) = page.invalid.first() {
        prop_assert_eq!(&r.order_id, &id);
    }
    check_found(
        "find_by_client_id",
        store.find_by_client_id(&ClientIdKey::of(&m)).await,
        &id,
    )?;
    check_found("find_by_label", store.find_by_label(LABEL).await, &id)?;
    let updated = store
        .update(&UpdateRequest::new(&id).indexer_id("fuzz-indexer-id"))
        .await;
    if let Err(e) = updated {
        prop_assert!(
            matches!(
                e.kind(),
                ErrorKind::InvalidMetadata | ErrorKind::StatusConflict | ErrorKind::NotFound
            ),
            "update: {e:?}"
        );
    }
    match store.get(&id).await {
        Ok(Some(m)) => prop_assert_eq!(&m.order_id, &id),
        Err(StoreError::InvalidMetadata {
            order_id: Some(o), ..
        }) => prop_assert_eq!(&o, &id),
        other => prop_assert!(false, "get: {other:?}"),
    }
    let now = Utc::now();
    let lease = Lease::new("fuzz", now + ChronoDuration::seconds(30));
    let claimed = store
        .claim(
            &id,
            &[OrderStatus::Active, OrderStatus::Cancelling],
            lease,
            now,
        )
        .await;
    if let Err(e) = claimed {
        prop_assert!(
            matches!(
                e.kind(),
                ErrorKind::InvalidMetadata | ErrorKind::StatusConflict | ErrorKind::NotFound
            ),
            "claim: {e:?}"
        );
    }
    store
        .expire(&ExpireRequest::new(Some(u32::MAX), Some(u32::MAX)))
        .await
        .map_err(|e| fail("expire", &e))?;
    store
        .purge(Utc::now() + ChronoDuration::days(1))
        .await
        .map_err(|e| fail("purge", &e))?;
    Ok(())
}

#[test]
fn any_stored_values_are_one_orders_problem() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt.block_on(fresh_store("fuzz", PgStoreOptions::new()));
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let strategy = (
        any::<bool>(),
        prop::sample::select(OrderStatus::ALL.to_vec()),
        any::<bool>(),
        proptest::collection::vec((0..COLUMNS.len(), value()), 1..4),
    );
    let result = proptest::test_runner::TestRunner::new(config)
        .run(&strategy, |(long, status, extras, edits)| {
            rt.block_on(check(&store, long, status, extras, &edits))
        });
    rt.block_on(drop_store(store));
    if let Err(e) = result {
        panic!("{e}");
    }
}
