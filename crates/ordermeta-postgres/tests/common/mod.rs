//! What the PostgreSQL tests share beyond `ordermeta_testkit`: stores on fresh schemas of the
//! shared server, and the `PgError` behind a `StoreError`.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;

use ordermeta_core::StoreError;
use ordermeta_core::conformance::TestStore;
use ordermeta_postgres::{PgError, PgStore, PgStoreOptions, sqlx};
use ordermeta_testkit::{database_url, env::postgres_missing, unique_name};

/// A store on a fresh schema of the shared server. A missing server fails the test.
pub async fn fresh_store(prefix: &str, opts: PgStoreOptions) -> PgStore {
    let url = database_url();
    opts.schema(unique_name(prefix))
        .connect(&url)
        .await
        .unwrap_or_else(|e| postgres_missing(&url, e))
}

/// Drops the store's schema and closes its pool.
pub async fn drop_store(store: PgStore) {
    let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", store.schema());
    if let Err(e) = sqlx::query(&sql).execute(store.pool()).await {
        eprintln!("cleanup of schema {} failed: {e}", store.schema());
    }
    store.close().await;
}

/// The conformance `setup`: a fresh schema, dropped afterwards.
pub async fn conformance_setup() -> TestStore {
    let store = fresh_store("conf", PgStoreOptions::new().max_connections(8)).await;
    let cleanup = drop_store(store.clone());
    TestStore::with_cleanup(Arc::new(store), cleanup)
}

/// The conformance `setup` with group commit off: every write its own single statement.
pub async fn conformance_setup_without_group_commit() -> TestStore {
    let opts = PgStoreOptions::new().max_connections(8).group_commit(false);
    let store = fresh_store("conf_nogc", opts).await;
    let cleanup = drop_store(store.clone());
    TestStore::with_cleanup(Arc::new(store), cleanup)
}

/// The conformance `setup` with eager group commit: a write joins a batch as soon as another
/// is in progress.
pub async fn conformance_setup_eager_group_commit() -> TestStore {
    let opts = PgStoreOptions::new()
        .max_connections(8)
        .group_commit_threshold(1)
        .group_commit_writers(2);
    let store = fresh_store("conf_eager", opts).await;
    let cleanup = drop_store(store.clone());
    TestStore::with_cleanup(Arc::new(store), cleanup)
}

/// The `PgError` inside a `Backend` error.
pub fn pg_error(e: &StoreError) -> &PgError {
    match e {
        StoreError::Backend { source } => source
            .downcast_ref::<PgError>()
            .unwrap_or_else(|| panic!("Backend error without a PgError source: {e:?}")),
        other => panic!("expected a Backend error, got {other:?}"),
    }
}
