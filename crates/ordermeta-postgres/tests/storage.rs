//! PostgreSQL-specific behaviour beyond the conformance suite: corrupt rows, values
//! PostgreSQL cannot hold, and the migrations (own table, concurrency, checksums).

mod common;

use futures::FutureExt as _;
use ordermeta_core::conformance::{long_term, short_term};
use ordermeta_core::{ErrorKind, ListQuery, MetadataStore, OrderStatus, StoreError};
use ordermeta_postgres::{PgError, PgStore, PgStoreOptions, sqlx};

async fn exec(store: &PgStore, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `body`, then drops the store's schema even if `body` panicked.
async fn with_store<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(PgStore) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let store = common::fresh_store(prefix, PgStoreOptions::new()).await;
    let r = tokio::spawn(body(store.clone())).await;
    common::drop_store(store).await;
    if let Err(e) = r {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn corrupt_rows_are_reported_not_skipped() {
    with_store("corrupt", |store| async move {
        let ids = [
            "c-0-ok",
            "c-1-neg",
            "c-2-status",
            "c-3-b64",
            "c-4-owner",
            "c-5-both",
            "c-6-history",
            "c-7-version",
            "c-8-ok",
        ];
        let recs: Vec<_> = ids
            .iter()
            .map(|id| short_term(id, OrderStatus::Active, 10))
            .collect();
        store.record_many(&recs).await.expect("record_many");
        let t = store.table();
        for sql in [
            format!("UPDATE {t} SET client_id = -7 WHERE order_id = 'c-1-neg'"),
            format!("UPDATE {t} SET status = 'ACTIVE' WHERE order_id = 'c-2-status'"),
            format!("UPDATE {t} SET dydx_order_id = '%%%' WHERE order_id = 'c-3-b64'"),
            format!("UPDATE {t} SET owner = 'dydx1other' WHERE order_id = 'c-4-owner'"),
            format!("UPDATE {t} SET good_til_block_time = 5 WHERE order_id = 'c-5-both'"),
            format!("UPDATE {t} SET history = '{{}}' WHERE order_id = 'c-6-history'"),
            format!("UPDATE {t} SET version = -1 WHERE order_id = 'c-7-version'"),
        ] {
            exec(&store, &sql).await;
        }
        for id in &ids[1..8] {
            match store.get(id).await {
                Err(StoreError::InvalidMetadata { order_id, reason }) => {
                    assert_eq!(order_id.as_deref(), Some(*id), "{reason}");
                }
                other => panic!("{id}: expected InvalidMetadata, got {other:?}"),
            }
        }
        assert_eq!(
            store.get("c-0-ok").await.expect("get").as_ref(),
            Some(&recs[0])
        );
        // A transition on a corrupt row still applies atomically, and reports the corruption.
        let r = store
            .transition(&ordermeta_core::TransitionRequest::new(
                "c-1-neg",
                &[OrderStatus::Active],
                OrderStatus::Cancelling,
            ))
            .await;
        assert_eq!(r.err().map(|e| e.kind()), Some(ErrorKind::InvalidMetadata));

        let page = store
            .list(&ListQuery {
                limit: 4,
                ..ListQuery::default()
            })
            .await
            .expect("list");
        assert_eq!(page.items.len(), 1, "c-0-ok");
        assert_eq!(
            page.invalid
                .iter()
                .map(|i| i.order_id.as_str())
                .collect::<Vec<_>>(),
            ids[1..4],
            "corrupt rows count toward the page"
        );
        assert_eq!(page.next.as_deref(), Some("c-3-b64"));
        let page = store
            .list(&ListQuery::default().after("c-3-b64"))
            .await
            .expect("list");
        assert_eq!(page.invalid.len(), 4);
        assert_eq!(page.items, vec![recs[8].clone()]);
        assert_eq!(page.next, None);
    })
    .await;
}

#[tokio::test]
async fn values_postgres_cannot_hold_are_invalid_metadata() {
    with_store("nul", |store| async move {
        let mut m = short_term("nul-1", OrderStatus::Pending, 1);
        m.symbol = "BTC\0USD".to_owned();
        let e = store.record(&m).await.expect_err("NUL in text");
        assert_eq!(e.kind(), ErrorKind::InvalidMetadata, "{e}");
        let e = store
            .record_many(&[short_term("nul-0", OrderStatus::Pending, 1), m])
            .await
            .expect_err("NUL in a batch");
        assert_eq!(e.kind(), ErrorKind::InvalidMetadata, "{e}");
        assert_eq!(store.get("nul-0").await.expect("get"), None);
        assert_eq!(store.get("nul-1").await.expect("get"), None);
        // u32::MAX and stateful orders are fine.
        let mut m = long_term("max", OrderStatus::Active, u32::MAX);
        m.dydx_order_id.client_id = u32::MAX;
        store.record(&m).await.expect("record");
        assert_eq!(store.get("max").await.expect("get"), Some(m));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_in_their_own_table() {
    let url = ordermeta_testkit::database_url();
    let schema = ordermeta_testkit::unique_name("mig");
    let opts = PgStoreOptions::new().schema(&schema).max_connections(1);

    // Not migrated yet and migrations off: refused, nothing created.
    let e = opts
        .clone()
        .migrate(false)
        .connect(&url)
        .await
        .expect_err("not migrated");
    assert!(
        matches!(
            common::pg_error(&e),
            PgError::NotMigrated { version: 1, .. }
        ),
        "{e:?}"
    );

    // Eight processes' worth of stores starting at once on a fresh schema.
    let stores = futures::future::join_all((0..8).map(|_| opts.clone().connect(&url))).await;
    let stores: Vec<PgStore> = stores
        .into_iter()
        .map(|r| r.expect("concurrent migrate"))
        .collect();
    let store = stores[0].clone();
    let body = async {
        let applied: Vec<(i64, String)> = sqlx::query_as(&format!(
            "SELECT version, description FROM \"{schema}\".ordermeta_migrations"
        ))
        .fetch_all(store.pool())
        .await
        .expect("migrations table");
        assert_eq!(
            applied,
            vec![
                (1, "create dydx_order_metadata".to_owned()),
                (2, "claim leases".to_owned()),
                (3, "lookup and chain fields".to_owned())
            ]
        );
        let sqlx_table: Option<String> = sqlx::query_scalar(&format!(
            "SELECT to_regclass('\"{schema}\"._sqlx_migrations')::text"
        ))
        .fetch_one(store.pool())
        .await
        .expect("to_regclass");
        assert_eq!(
            sqlx_table, None,
            "sqlx's own table is left to the application"
        );

        // Migrations off on a migrated schema: fine.
        opts.clone()
            .migrate(false)
            .connect(&url)
            .await
            .expect("migrated schema")
            .close()
            .await;

        // A changed script, or a migration from a newer build, is refused.
        sqlx::query(&format!(
            "UPDATE \"{schema}\".ordermeta_migrations SET checksum = '\\x00'"
        ))
        .execute(store.pool())
        .await
        .expect("tamper");
        let e = opts.clone().connect(&url).await.expect_err("tampered");
        assert!(
            matches!(
                common::pg_error(&e),
                PgError::MigrationChanged { version: 1, .. }
            ),
            "{e:?}"
        );
        sqlx::raw_sql(&format!(
            "UPDATE \"{schema}\".ordermeta_migrations \
             SET checksum = sha256(convert_to('x', 'UTF8')); \
             DELETE FROM \"{schema}\".ordermeta_migrations; \
             INSERT INTO \"{schema}\".ordermeta_migrations (version, description, checksum) \
             VALUES (99, 'from the future', '\\x00')"
        ))
        .execute(store.pool())
        .await
        .expect("future migration");
        let e = opts.clone().connect(&url).await.expect_err("newer schema");
        assert!(
            matches!(
                common::pg_error(&e),
                PgError::UnknownMigration { version: 99, .. }
            ),
            "{e:?}"
        );
    };
    let r = std::panic::AssertUnwindSafe(body).catch_unwind().await;
    for s in &stores[1..] {
        s.close().await;
    }
    common::drop_store(store).await;
    if let Err(panic) = r {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn store_works_through_a_wrapped_pool_and_mixed_case_schema() {
    let url = ordermeta_testkit::database_url();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("pool");
    let schema = format!("Mixed_{}", ordermeta_testkit::unique_name("pool"));
    let store = PgStoreOptions::new()
        .schema(&schema)
        .with_pool(pool)
        .await
        .expect("from pool");
    assert_eq!(store.schema(), schema);
    let r = tokio::spawn({
        let store = store.clone();
        async move {
            let m = short_term("p-1", OrderStatus::Active, 3);
            store.record(&m).await.expect("record");
            assert_eq!(store.get("p-1").await.expect("get"), Some(m));
            // The table is in the mixed-case schema, not in a lower-cased one.
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", store.table()))
                .fetch_one(store.pool())
                .await
                .expect("count");
            assert_eq!(n, 1);
        }
    })
    .await;
    common::drop_store(store).await;
    if let Err(e) = r {
        std::panic::resume_unwind(e.into_panic());
    }
}
