//! End to end on the PostgreSQL store: the real `dydx` client against the local node
//! simulator over gRPC, the store on a real server (`DATABASE_URL`, else the local default;
//! `./scripts/test.sh` provides one). Each test has its own schema and drops it.

#[macro_use]
mod common;

use std::future::Future;
use std::sync::Arc;

use ordermeta::MetadataStore;
use ordermeta::postgres::{PgStore, sqlx};
use ordermeta_testkit::{database_url, env::postgres_missing, unique_name};

/// A new handle (its own pool) on `schema`: what a restarted process opens.
async fn open(schema: String) -> Arc<dyn MetadataStore> {
    let url = database_url();
    let store = PgStore::options()
        .schema(schema)
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap_or_else(|e| postgres_missing(&url, e));
    Arc::new(store)
}

/// Runs `flow` on a fresh schema, then drops the schema.
async fn fresh<F, Fut>(flow: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    common::run_then_clean(unique_name("e2e"), flow, drop_schema).await;
}

async fn drop_schema(schema: String) {
    let pool = match sqlx::PgPool::connect(&database_url()).await {
        Ok(pool) => pool,
        Err(e) => return eprintln!("cleanup of schema {schema} failed: {e}"),
    };
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    if let Err(e) = sqlx::query(&sql).execute(&pool).await {
        eprintln!("cleanup of schema {schema} failed: {e}");
    }
    pool.close().await;
}

e2e_flows!();

/// The store's pool is closed under the client (the database is gone): nothing is placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_at_placement() {
    fresh(|s| async move {
        let url = database_url();
        let store = PgStore::options()
            .schema(s)
            .connect(&url)
            .await
            .expect("connect");
        store.close().await;
        common::store_down_places_nothing(Arc::new(store)).await;
    })
    .await;
}
