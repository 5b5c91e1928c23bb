//! Claim leases in the SQLite columns: a database from before leases gets them (and its old
//! claims can be re-claimed), leases written by hand are honoured, half a lease is a corrupt
//! row. The lease semantics themselves are the conformance suite's.

use chrono::{Duration as ChronoDuration, Utc};
use ordermeta_core::conformance::{foreign_lease_is_honoured, long_term, short_term};
use ordermeta_core::{
    ErrorKind, Lease, ListQuery, MetadataStore, MetadataStoreExt, OrderStatus, to_micros,
};
use ordermeta_sqlite::{SqliteStore, sqlx};

async fn exec(store: &SqliteStore, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A database at migration 1 (before leases) holding a `cancelling` record: the next open
/// adds the lease columns (migration 2, once, then 3), the old claim reads back without a lease and
/// is re-claimable at once, and the new claim's lease is stored.
#[tokio::test]
async fn a_database_from_before_leases_is_migrated_and_its_claims_are_re_claimable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let old_claim = long_term("old-claim", OrderStatus::Cancelling, 2_000_000_000);
    store.record(&old_claim).await.expect("record");
    // Back to the file as migration 1 left it (migration 3's indexes go before its columns).
    exec(
        &store,
        "DROP INDEX dydx_order_metadata_client_id_idx; \
         DROP INDEX dydx_order_metadata_label_idx; \
         ALTER TABLE dydx_order_metadata DROP COLUMN label; \
         ALTER TABLE dydx_order_metadata DROP COLUMN indexer_id; \
         ALTER TABLE dydx_order_metadata DROP COLUMN filled_quantity; \
         ALTER TABLE dydx_order_metadata DROP COLUMN cancel_confirmed_at; \
         ALTER TABLE dydx_order_metadata DROP COLUMN lease_token; \
         ALTER TABLE dydx_order_metadata DROP COLUMN lease_until; \
         DELETE FROM ordermeta_migrations WHERE version >= 2",
    )
    .await;
    store.close().await;

    let store = SqliteStore::open(&path).await.expect("reopen and migrate");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM ordermeta_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .expect("migrations");
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(
        store.get_required("old-claim").await.expect("get"),
        old_claim
    );

    let now = Utc::now();
    let lease = Lease::new("canceller-b", now + ChronoDuration::seconds(30));
    let got = store
        .claim(
            "old-claim",
            &[OrderStatus::Active, OrderStatus::Cancelling],
            lease.clone(),
            now,
        )
        .await
        .expect("an unleased claim is re-claimable");
    assert_eq!(got.lease.as_ref(), Some(&lease));
    store.close().await;

    // And the lease survives a restart, to the microsecond.
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(store.get_required("old-claim").await.expect("get"), got);
    store.close().await;
}

/// A lease written by hand into the columns (an operator, another tool) is honoured: a live
/// one is not taken over, only its holder's token releases it, and once it has run out it is
/// re-claimable.
#[tokio::test]
async fn leases_written_by_hand_are_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("hand.db"))
        .await
        .expect("open");
    store
        .record(&short_term("hand", OrderStatus::Cancelling, 100))
        .await
        .expect("record");
    let in_an_hour = to_micros(Utc::now() + ChronoDuration::hours(1));
    exec(
        &store,
        &format!(
            "UPDATE dydx_order_metadata SET lease_token = 'ops', lease_until = {in_an_hour} \
             WHERE order_id = 'hand'"
        ),
    )
    .await;
    foreign_lease_is_honoured(&store, "hand", "ops").await;

    // Run out (by hand): re-claimable.
    store.claim_for_cancel("hand").await.expect("claim");
    let a_second_ago = to_micros(Utc::now() - ChronoDuration::seconds(1));
    exec(
        &store,
        &format!(
            "UPDATE dydx_order_metadata SET lease_until = {a_second_ago} WHERE order_id = 'hand'"
        ),
    )
    .await;
    let got = store
        .claim(
            "hand",
            &[OrderStatus::Cancelling],
            Lease::new("next", Utc::now() + ChronoDuration::seconds(30)),
            Utc::now(),
        )
        .await
        .expect("an expired lease is re-claimed");
    assert_eq!(got.lease.map(|l| l.token), Some("next".to_owned()));
    store.close().await;
}

/// Half a lease (a token without an end, or the other way round), a lease on an order that
/// is not cancelling, or an end of the wrong type is a corrupt row: `get` says which order,
/// `list` reports it and reads on.
#[tokio::test]
async fn half_a_lease_is_a_corrupt_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("half.db"))
        .await
        .expect("open");
    let ids = ["half-token", "half-until", "active-leased", "fine"];
    for id in ids {
        store
            .record(&short_term(id, OrderStatus::Cancelling, 100))
            .await
            .expect("record");
    }
    exec(
        &store,
        "UPDATE dydx_order_metadata SET lease_token = 'x' WHERE order_id = 'half-token'; \
         UPDATE dydx_order_metadata SET lease_until = 1 WHERE order_id = 'half-until'; \
         UPDATE dydx_order_metadata SET status = 'active', lease_token = 'x', lease_until = 1 \
         WHERE order_id = 'active-leased'",
    )
    .await;
    for id in &ids[..3] {
        let e = store.get(id).await.expect_err(id);
        assert_eq!(e.kind(), ErrorKind::InvalidMetadata, "{id}: {e}");
        assert!(e.to_string().contains(id), "{e}");
    }
    // STRICT: text where the end belongs is refused by SQLite itself.
    let typed =
        sqlx::query("UPDATE dydx_order_metadata SET lease_until = 'soon' WHERE order_id = 'fine'")
            .execute(store.pool())
            .await;
    assert!(
        typed.is_err(),
        "a STRICT table refuses text in an INTEGER column"
    );
    let page = store.list(&ListQuery::default()).await.expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.invalid.len(), 3);
    store.close().await;
}
