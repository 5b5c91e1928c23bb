//! End to end on the PostgreSQL store: the real `dydx` client against the local node
//! simulator over gRPC, the store on a real server (`DATABASE_URL`, else the local default;
//! `./scripts/test.sh` provides one). Each test has its own schema and drops it.

#[macro_use]
mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use ordermeta::MetadataStore;
use ordermeta::postgres::{PgStore, sqlx};

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A schema no other test or test process uses.
fn unique_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "om_e2e_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A new handle (its own pool) on `schema`: what a restarted process opens.
async fn open(schema: String) -> Arc<dyn MetadataStore> {
    let url = database_url();
    let store = PgStore::options()
        .schema(schema)
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {url} is required (run ./scripts/test.sh or set DATABASE_URL): {e}"
            )
        });
    Arc::new(store)
}

/// Runs `flow` on a fresh schema, then drops the schema.
async fn fresh<F, Fut>(flow: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let schema = unique_schema();
    flow(schema.clone()).await;
    drop_schema(&schema).await;
}

async fn drop_schema(schema: &str) {
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
