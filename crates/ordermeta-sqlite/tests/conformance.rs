//! The whole conformance suite on real database files, one fresh temp directory per test:
//! with group commit (the default) and without.

use std::sync::Arc;

use ordermeta_core::conformance::TestStore;
use ordermeta_sqlite::{SqliteStore, SqliteStoreOptions};

async fn setup_with(options: SqliteStoreOptions) -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = options
        .open(dir.path().join("orders.db"))
        .await
        .expect("open SQLite store");
    let pools = store.clone();
    TestStore::with_cleanup(Arc::new(store), async move {
        pools.close().await;
        drop(dir);
    })
}

async fn setup() -> TestStore {
    setup_with(SqliteStore::options()).await
}

ordermeta_core::conformance_tests!(setup);

mod group_commit_off {
    use super::*;

    async fn setup() -> TestStore {
        setup_with(SqliteStore::options().group_commit(false)).await
    }

    ordermeta_core::conformance_tests!(setup);
}
