//! Claim leases in the PostgreSQL columns: a schema migrated before leases existed gets them
//! (and its old claims can be re-claimed), leases written by hand are honoured, half a lease
//! is a corrupt row. The lease semantics themselves are the conformance suite's.

use chrono::{Duration as ChronoDuration, Utc};
use ordermeta_core::conformance::{foreign_lease_is_honoured, long_term, short_term};
use ordermeta_core::{
    ErrorKind, Lease, ListQuery, MetadataStore, MetadataStoreExt, OrderStatus, StoreError,
};
use ordermeta_postgres::sqlx;
use ordermeta_postgres::{PgError, PgStore, PgStoreOptions};
use ordermeta_testkit::{database_url, unique_name};

async fn exec(store: &PgStore, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `body` on a store in a fresh schema of the shared server, dropping the schema after.
async fn with_schema<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let schema = unique_name(prefix);
    let r =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body(schema.clone()))).await;
    if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&database_url()).await {
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut conn)
            .await;
    }
    if let Err(panic) = r {
        std::panic::resume_unwind(panic);
    }
}

async fn connect(schema: &str, opts: PgStoreOptions) -> Result<PgStore, StoreError> {
    opts.schema(schema).connect(&database_url()).await
}

/// A schema at migration 1 (before leases) with a `cancelling` record: the next start adds
/// the lease columns (migration 2, once, then 3), the old claim reads back without a lease and is
/// re-claimable at once, and the new claim's lease is stored.
#[tokio::test]
async fn a_schema_from_before_leases_is_migrated_and_its_claims_are_re_claimable() {
    with_schema("lease_upgrade", |schema| async move {
        let store = connect(&schema, PgStoreOptions::new())
            .await
            .expect("connect");
        let old_claim = long_term("old-claim", OrderStatus::Cancelling, 2_000_000_000);
        store.record(&old_claim).await.expect("record");
        // Back to the schema as migration 1 left it (dropping migration 3's columns drops
        // its indexes too).
        exec(
            &store,
            &format!(
                "ALTER TABLE {t} DROP COLUMN lease_token, DROP COLUMN lease_until, \
                 DROP COLUMN label, DROP COLUMN indexer_id, DROP COLUMN filled_quantity, \
                 DROP COLUMN cancel_confirmed_at; \
                 DROP INDEX \"{schema}\".dydx_order_metadata_client_id_idx; \
                 DELETE FROM \"{schema}\".ordermeta_migrations WHERE version >= 2",
                t = store.table()
            ),
        )
        .await;
        store.close().await;

        let e = connect(&schema, PgStoreOptions::new().migrate(false))
            .await
            .expect_err("not migrated");
        assert!(
            matches!(
                e,
                StoreError::Backend { ref source }
                    if matches!(
                        source.downcast_ref::<PgError>(),
                        Some(PgError::NotMigrated { version: 2, .. })
                    )
            ),
            "{e:?}"
        );

        let store = connect(&schema, PgStoreOptions::new())
            .await
            .expect("migrate");
        let versions: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT version FROM \"{schema}\".ordermeta_migrations ORDER BY version"
        ))
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
        assert_eq!(store.get_required("old-claim").await.expect("get"), got);
        store.close().await;
    })
    .await;
}

/// A lease written by hand into the columns (an operator, another tool) is honoured: a live
/// one is not taken over, only its holder's token releases it, and once it has run out it is
/// re-claimable.
#[tokio::test]
async fn leases_written_by_hand_are_honoured() {
    with_schema("lease_hand", |schema| async move {
        let store = connect(&schema, PgStoreOptions::new())
            .await
            .expect("connect");
        store
            .record(&short_term("hand", OrderStatus::Cancelling, 100))
            .await
            .expect("record");
        exec(
            &store,
            &format!(
                "UPDATE {} SET lease_token = 'ops', lease_until = now() + interval '1 hour' \
                 WHERE order_id = 'hand'",
                store.table()
            ),
        )
        .await;
        foreign_lease_is_honoured(&store, "hand", "ops").await;

        // Run out (by hand): re-claimable.
        store.claim_for_cancel("hand").await.expect("claim");
        exec(
            &store,
            &format!(
                "UPDATE {} SET lease_until = now() - interval '1 second' WHERE order_id = 'hand'",
                store.table()
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
    })
    .await;
}

/// Half a lease (a token without an end, or the other way round), or a lease on an order
/// that is not cancelling, is a corrupt row: `get` says which order, `list` reports it and
/// reads on.
#[tokio::test]
async fn half_a_lease_is_a_corrupt_row() {
    with_schema("lease_half", |schema| async move {
        let store = connect(&schema, PgStoreOptions::new())
            .await
            .expect("connect");
        for id in ["half-token", "half-until", "active-leased", "fine"] {
            store
                .record(&short_term(id, OrderStatus::Cancelling, 100))
                .await
                .expect("record");
        }
        let t = store.table();
        exec(
            &store,
            &format!(
                "UPDATE {t} SET lease_token = 'x' WHERE order_id = 'half-token'; \
                 UPDATE {t} SET lease_until = now() WHERE order_id = 'half-until'; \
                 UPDATE {t} SET status = 'active', lease_token = 'x', lease_until = now() \
                 WHERE order_id = 'active-leased'"
            ),
        )
        .await;
        for id in ["half-token", "half-until", "active-leased"] {
            let e = store.get(id).await.expect_err(id);
            assert_eq!(e.kind(), ErrorKind::InvalidMetadata, "{id}: {e}");
            assert!(e.to_string().contains(id), "{e}");
        }
        let page = store.list(&ListQuery::default()).await.expect("list");
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.invalid.len(), 3);
        store.close().await;
    })
    .await;
}
