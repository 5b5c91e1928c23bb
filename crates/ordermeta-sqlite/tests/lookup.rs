//! Issue 13's columns and indexes in the SQLite file: a database at migration 2 holding
//! records upgrades in place (migration 3, once), and its records are then found, updated and
//! transitioned like new ones; every new field survives a restart. The semantics themselves
//! are the conformance suite's (`lookup` group).

use chrono::Duration as ChronoDuration;
use ordermeta_core::conformance::{long_term, short_term, t0};
use ordermeta_core::{
    ClientIdKey, Lease, MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus,
    TransitionRequest, UpdateRequest,
};
use ordermeta_sqlite::{SqliteStore, sqlx};

async fn exec(store: &SqliteStore, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn placed(mut m: OrderMetadata, offset_s: i64) -> OrderMetadata {
    let at = t0() + ChronoDuration::seconds(offset_s);
    m.placed_at = at;
    m.updated_at = at;
    m.history[0].at = at;
    m
}

async fn columns(store: &SqliteStore) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM pragma_table_info('dydx_order_metadata')")
        .fetch_all(store.pool())
        .await
        .expect("table info")
}

async fn versions(store: &SqliteStore) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM ordermeta_migrations ORDER BY version")
        .fetch_all(store.pool())
        .await
        .expect("migrations")
}

#[tokio::test]
async fn a_database_at_migration_2_upgrades_and_its_records_work_like_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v2.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let mut claimed = placed(
        long_term("old-claimed", OrderStatus::Cancelling, 2_000_000_000),
        1,
    );
    claimed.lease = Some(Lease::new("canceller-a", t0() + ChronoDuration::hours(1)));
    let old = vec![
        placed(short_term("old-1", OrderStatus::Active, 100), 0),
        placed(short_term("old-2", OrderStatus::Cancelled, 100), 5),
        claimed,
    ];
    store.record_many(&old).await.expect("record");
    // Back to the file as migration 2 left it (indexes before the columns they cover).
    exec(
        &store,
        "DROP INDEX dydx_order_metadata_client_id_idx; \
         DROP INDEX dydx_order_metadata_label_idx; \
         ALTER TABLE dydx_order_metadata DROP COLUMN label; \
         ALTER TABLE dydx_order_metadata DROP COLUMN indexer_id; \
         ALTER TABLE dydx_order_metadata DROP COLUMN filled_quantity; \
         ALTER TABLE dydx_order_metadata DROP COLUMN cancel_confirmed_at; \
         DELETE FROM ordermeta_migrations WHERE version = 3",
    )
    .await;
    assert_eq!(columns(&store).await.len(), 24);
    assert_eq!(versions(&store).await, [1, 2]);
    store.close().await;

    let store = SqliteStore::open(&path).await.expect("reopen and migrate");
    assert_eq!(versions(&store).await, [1, 2, 3]);
    assert_eq!(
        columns(&store).await,
        ordermeta_core::backend::STORED_FIELDS,
        "the columns, in the order the core lists them"
    );
    for m in &old {
        assert_eq!(
            store.get_required(&m.order_id).await.expect("get"),
            *m,
            "old records read back unchanged, the new fields unset"
        );
    }
    let key = ClientIdKey::of(&old[0]);
    let newest = store.find_by_client_id(&key).await.expect("find");
    assert_eq!(
        newest.as_ref(),
        Some(&old[1]),
        "old rows are in the new index"
    );
    assert_eq!(store.find_by_label("old-1").await.expect("find"), None);

    // Old records take the new fields like new ones.
    let update = UpdateRequest::new("old-1")
        .in_statuses(&[OrderStatus::Active])
        .if_version(1)
        .at(t0() + ChronoDuration::seconds(10))
        .indexer_id("0a4d0e53-3c7f-5a4c-9a3b-6a0e1fd1f0aa")
        .filled_quantity("0.0004");
    let mut old_1 = old[0].clone();
    update.apply(&mut old_1);
    assert_eq!(store.update(&update).await.expect("update"), old_1);
    let confirm = TransitionRequest::new(
        "old-claimed",
        &[OrderStatus::Cancelling],
        OrderStatus::Cancelled,
    )
    .require_lease("canceller-a")
    .at(t0() + ChronoDuration::seconds(11))
    .cancel_confirmed_at(t0() + ChronoDuration::seconds(11));
    let mut old_claimed = old[2].clone();
    confirm.apply(&mut old_claimed);
    assert_eq!(
        store.transition(&confirm).await.expect("cancel"),
        old_claimed
    );
    let new = placed(short_term("new-1", OrderStatus::Pending, 100), 20).with_label("bot-uuid-1");
    store.record(&new).await.expect("record new");
    store.close().await;

    // Everything is durable, and the migration does not run again.
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(versions(&store).await, [1, 2, 3]);
    assert_eq!(store.get_required("old-1").await.expect("get"), old_1);
    assert_eq!(
        store.get_required("old-claimed").await.expect("get"),
        old_claimed
    );
    assert_eq!(
        store.find_by_label("bot-uuid-1").await.expect("find"),
        Some(new.clone())
    );
    assert_eq!(
        store.find_by_client_id(&key).await.expect("find"),
        Some(new),
        "the newest placement of the client id"
    );
    store.close().await;
}
