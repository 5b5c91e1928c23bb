//! The whole conformance suite on real database files, one fresh temp directory per test.

use std::sync::Arc;

use ordermeta_core::conformance::TestStore;
use ordermeta_sqlite::SqliteStore;

async fn setup() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("orders.db"))
        .await
        .expect("open SQLite store");
    let pools = store.clone();
    TestStore::with_cleanup(Arc::new(store), async move {
        pools.close().await;
        drop(dir);
    })
}

ordermeta_core::conformance_tests!(setup);
