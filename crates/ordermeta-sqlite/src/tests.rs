//! Unit tests that need the crate's private statements.

use crate::SqliteStore;
use crate::sql::{EXPIRE_BY_BLOCK, EXPIRE_BY_TIME, PURGE};

async fn plan(store: &SqliteStore, sql: &str) -> String {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
        .fetch_all(store.pool())
        .await
        .expect("explain");
    rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
}

/// expire and purge search their partial / composite indexes: O(matching rows), not a scan.
#[tokio::test]
async fn expire_and_purge_use_their_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("plan.db"))
        .await
        .expect("open");
    let (by_block, by_time) = (EXPIRE_BY_BLOCK, EXPIRE_BY_TIME);
    let p = plan(&store, by_block).await;
    assert!(
        p.contains("INDEX dydx_order_metadata_expire_block_idx (status=? AND good_until_block"),
        "{p}"
    );
    assert!(!p.contains("SCAN dydx_order_metadata"), "{p}");
    let p = plan(&store, by_time).await;
    assert!(
        p.contains("INDEX dydx_order_metadata_expire_time_idx (status=? AND good_til_block_time"),
        "{p}"
    );
    let p = plan(&store, PURGE).await;
    assert!(
        p.contains("INDEX dydx_order_metadata_purge_idx (status=? AND updated_at<?)"),
        "{p}"
    );
    assert!(!p.contains("SCAN dydx_order_metadata"), "{p}");
    store.close().await;
}
