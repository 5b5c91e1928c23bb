//! End to end on the embedded SQLite store: the real `dydx` client against the local node
//! simulator over gRPC. Each test has its own database file in a temporary directory.

#[macro_use]
mod common;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use ordermeta::MetadataStore;
use ordermeta::sqlite::SqliteStore;

/// Runs `flow` on the path of a new database file, then removes its directory.
async fn fresh<F, Fut>(flow: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    flow(dir.path().join("orders.db").display().to_string()).await;
}

/// A new handle on the file: what a restarted process opens.
async fn open(path: String) -> Arc<dyn MetadataStore> {
    Arc::new(
        SqliteStore::open(PathBuf::from(path))
            .await
            .expect("open sqlite store"),
    )
}

e2e_flows!();

/// The store's pool is closed under the client (the database is gone): nothing is placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_at_placement() {
    fresh(|path| async move {
        let store = SqliteStore::open(PathBuf::from(path)).await.expect("open");
        store.close().await;
        common::store_down_places_nothing(Arc::new(store)).await;
    })
    .await;
}
