//! Property tests of the row decoder over outside values: a valid record with a few of its
//! columns overwritten by anything SQLite will store (any integer, any bytes as TEXT, NULL)
//! is read back as a record or reported as `InvalidMetadata` naming the order, by `get`,
//! `list`, `find_by_client_id` and `find_by_label`, and `update`, `claim`, `expire` and
//! `purge` go on; nothing panics or fails the store. The record carries issue 13's fields
//! (label, indexer id, filled quantity, cancel confirmation) or leaves them NULL.
//! The cursor codec for ids that are not UTF-8 round-trips any bytes.
//!
//! Cases per property: 256, or `ORDERMETA_FUZZ_CASES`.

use chrono::{Duration as ChronoDuration, Utc};
use ordermeta_core::conformance::{long_term, short_term};
use ordermeta_core::{
    ClientIdKey, ErrorKind, ExpireRequest, Lease, ListQuery, MetadataStore, MetadataStoreExt,
    OrderMetadata, OrderStatus, StoreError, UpdateRequest,
};
use proptest::prelude::*;

use crate::SqliteStore;
use crate::row::{NAMES, cursor_bytes, lossy_id};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("ORDERMETA_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A value written over a column.
#[derive(Clone, Debug)]
enum Value {
    Null,
    Int(i64),
    Text(Vec<u8>),
}

fn value() -> impl Strategy<Value = Value> {
    let edge_ints = prop_oneof![
        Just(0i64),
        Just(-1),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(i64::from(u32::MAX)),
        Just(i64::from(u32::MAX) + 1),
    ];
    let words = prop_oneof![
        Just(b"active".to_vec()),
        Just(b"cancelling".to_vec()),
        Just(b"expired".to_vec()),
        Just(b"[]".to_vec()),
        Just(b"{}".to_vec()),
        Just(b"[{\"status\":\"active\"}]".to_vec()),
        Just(b"buy".to_vec()),
        Just(b"limit".to_vec()),
        Just(b"".to_vec()),
        Just(b"\xff".to_vec()),
        Just(b"0.5".to_vec()),
        Just(b"1e3".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"a\nb".to_vec()),
        Just(b"0a4d0e53-3c7f-5a4c-9a3b-6a0e1fd1f0aa".to_vec()),
        Just(vec![b'x'; 129]),
    ];
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int),
        edge_ints.prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Value::Text),
        words.prop_map(Value::Text),
    ]
}

/// Which record (long-term or not, status, with issue 13's fields or not), and which of its
/// columns get which values.
type Case = (bool, OrderStatus, bool, Vec<(usize, Value)>);

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop::sample::select(OrderStatus::ALL.to_vec()),
        any::<bool>(),
        proptest::collection::vec((0..NAMES.len(), value()), 1..4),
    )
}

/// The label the fuzzed record carries (when it carries issue 13's fields).
const LABEL: &str = "fuzz-label";

/// A lookup's answer: nothing, the record, or `InvalidMetadata` naming it.
fn check_found(
    what: &str,
    r: Result<Option<OrderMetadata>, StoreError>,
    named: &str,
) -> Result<(), TestCaseError> {
    match r {
        Ok(None) => {}
        Ok(Some(m)) => prop_assert_eq!(m.order_id.as_str(), named),
        Err(StoreError::InvalidMetadata {
            order_id: Some(o), ..
        }) => prop_assert_eq!(o.as_str(), named),
        other => prop_assert!(false, "{what}: {other:?}"),
    }
    Ok(())
}

async fn check(
    store: &SqliteStore,
    long: bool,
    status: OrderStatus,
    extras: bool,
    edits: &[(usize, Value)],
) -> Result<(), TestCaseError> {
    sqlx::query("DELETE FROM dydx_order_metadata")
        .execute(store.pool())
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
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
    store
        .record(&m)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (i, v) in edits {
        let sql = format!("UPDATE dydx_order_metadata SET {} = ?", NAMES[*i]);
        let text_sql = format!(
            "UPDATE dydx_order_metadata SET {} = CAST(? AS TEXT)",
            NAMES[*i]
        );
        // A value the STRICT table refuses (a type, NOT NULL) is simply not stored.
        let _ = match v {
            Value::Null => {
                sqlx::query(&sql)
                    .bind(None::<i64>)
                    .execute(store.pool())
                    .await
            }
            Value::Int(n) => sqlx::query(&sql).bind(*n).execute(store.pool()).await,
            Value::Text(b) => {
                sqlx::query(&text_sql)
                    .bind(b.as_slice())
                    .execute(store.pool())
                    .await
            }
        };
    }
    let id: Vec<u8> = sqlx::query_scalar("SELECT CAST(order_id AS BLOB) FROM dydx_order_metadata")
        .fetch_one(store.pool())
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let named = lossy_id(&id);

    let page = store
        .list(&ListQuery::default())
        .await
        .map_err(|e| TestCaseError::fail(format!("list: {e}")))?;
    prop_assert_eq!(page.items.len() + page.invalid.len(), 1);
    if let Some(r) = page.invalid.first() {
        prop_assert_eq!(&r.order_id, &named);
    }
    check_found(
        "find_by_client_id",
        store.find_by_client_id(&ClientIdKey::of(&m)).await,
        &named,
    )?;
    check_found("find_by_label", store.find_by_label(LABEL).await, &named)?;
    if let Ok(id) = std::str::from_utf8(&id) {
        let updated = store
            .update(&UpdateRequest::new(id).indexer_id("fuzz-indexer-id"))
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
        match store.get(id).await {
            Ok(Some(m)) => prop_assert_eq!(m.order_id.as_str(), id),
            Err(StoreError::InvalidMetadata {
                order_id: Some(o), ..
            }) => prop_assert_eq!(o.as_str(), id),
            other => prop_assert!(false, "get: {other:?}"),
        }
        let now = Utc::now();
        let lease = Lease::new("fuzz", now + ChronoDuration::seconds(30));
        let claimed = store
            .claim(
                id,
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
    }
    store
        .expire(&ExpireRequest::new(Some(u32::MAX), Some(u32::MAX)))
        .await
        .map_err(|e| TestCaseError::fail(format!("expire: {e}")))?;
    store
        .purge(Utc::now() + ChronoDuration::days(1))
        .await
        .map_err(|e| TestCaseError::fail(format!("purge: {e}")))?;
    Ok(())
}

#[test]
fn any_stored_values_are_one_orders_problem() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt
        .block_on(SqliteStore::connect("sqlite::memory:"))
        .expect("in-memory store");
    proptest!(config(), |((long, status, extras, edits) in case())| {
        rt.block_on(check(&store, long, status, extras, &edits))?;
    });
}

proptest! {
    #![proptest_config(config())]

    /// The cursor after an id that is not UTF-8 gives back exactly its bytes; an ordinary
    /// cursor (any order id) is never mistaken for one.
    #[test]
    fn byte_cursors_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64), s in ".*") {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let cursor = format!("\u{0}ordermeta-bytes:{hex}");
        prop_assert_eq!(cursor_bytes(&cursor), Some(bytes));
        if !s.starts_with('\u{0}') {
            prop_assert_eq!(cursor_bytes(&s), None);
        }
        let _ = cursor_bytes(&format!("\u{0}ordermeta-bytes:{s}"));
    }
}
