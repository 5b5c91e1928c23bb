//! Durability, file handling, options and corrupt rows, on real files in temp directories.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use ordermeta_core::conformance::{long_term, short_term, short_term_at_limits, t0};
use ordermeta_core::{
    ErrorKind, ListQuery, MetadataStore, MetadataStoreExt, ORDER_FLAGS_CONDITIONAL, OrderMetadata,
    OrderStatus, OrderType, StoreError, TransitionRequest,
};
use ordermeta_sqlite::sqlx::{self, sqlite::SqliteConnectOptions, sqlite::SqlitePoolOptions};
use ordermeta_sqlite::{SqliteError, SqliteStore, Synchronous};

/// Records of every shape: both good-til kinds, u32::MAX ids, unicode, no price, hashes,
/// cancelled_at, and a history of several transitions.
async fn varied_records(store: &SqliteStore) -> Vec<OrderMetadata> {
    let a = short_term_at_limits("restart-short", OrderStatus::Pending);
    let mut b = long_term("restart-long/ünïcödé", OrderStatus::Active, u32::MAX);
    b.dydx_order_id.order_flags = ORDER_FLAGS_CONDITIONAL;
    b.order_type = OrderType::StopLimit;
    b.tx_hash = Some("A1B2C3".repeat(10));
    b.cancel_tx_hash = Some("ff".to_owned());
    b.cancelled_at = Some(t0() + ChronoDuration::microseconds(1));
    let c = short_term("restart-history", OrderStatus::Pending, 500);
    let d = short_term("restart-claim", OrderStatus::Active, 600);
    let records = vec![a, b, c, d];
    store.record_many(&records).await.expect("record_many");

    // Give one record a history: pending -> active -> cancelling -> active.
    let steps = [
        (OrderStatus::Pending, OrderStatus::Active, Some("PLACE")),
        (OrderStatus::Active, OrderStatus::Cancelling, None),
        (OrderStatus::Cancelling, OrderStatus::Active, None),
    ];
    let mut expected = records.clone();
    for (i, (from, to, hash)) in steps.into_iter().enumerate() {
        let mut req = TransitionRequest::new("restart-history", &[from], to)
            .at(t0() + ChronoDuration::seconds(i as i64 + 1))
            .reason(format!("step {i} ✓"));
        req.tx_hash = hash.map(str::to_owned);
        req.apply(&mut expected[2]);
        let got = store.transition(&req).await.expect("transition");
        assert_eq!(got, expected[2]);
    }
    expected
}

#[tokio::test]
async fn restart_keeps_every_field_and_the_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("restart.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let expected = varied_records(&store).await;
    assert_eq!(
        store
            .get_required("restart-history")
            .await
            .expect("get")
            .history
            .len(),
        4
    );
    // Dropped without close, like a process that just ends.
    drop(store);

    let store = SqliteStore::open(&path).await.expect("reopen");
    for m in &expected {
        assert_eq!(
            &store.get_required(&m.order_id).await.expect("get"),
            m,
            "{} after restart",
            m.order_id
        );
    }
    let all = store.list_all(&ListQuery::default()).await.expect("list");
    assert!(all.invalid.is_empty());
    assert_eq!(all.items.len(), expected.len());

    // The state machine carries on where it stopped.
    let claimed = store
        .claim_for_cancel("restart-claim")
        .await
        .expect("claim");
    assert_eq!(
        (claimed.status, claimed.version),
        (OrderStatus::Cancelling, 2)
    );
    let err = store
        .claim_for_cancel("restart-claim")
        .await
        .expect_err("claimed twice");
    assert_eq!(err.current_status(), Some(OrderStatus::Cancelling));
    let back = store
        .transition(&TransitionRequest::new(
            "restart-history",
            &[OrderStatus::Active],
            OrderStatus::Filled,
        ))
        .await
        .expect("fill");
    assert_eq!(back.history.len(), 5);
    store.close().await;

    // And that transition is durable too.
    let store = SqliteStore::open(&path).await.expect("reopen again");
    let m = store.get_required("restart-history").await.expect("get");
    assert_eq!(
        (m.status, m.version, m.history.len()),
        (OrderStatus::Filled, 5, 5)
    );
    assert_eq!(m, back);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM ordermeta_migrations")
        .fetch_one(store.pool())
        .await
        .expect("migrations table");
    assert_eq!(
        applied, 3,
        "each migration runs once, whatever the restarts"
    );
    store.close().await;
}

/// A host application's sqlx migrations live in `_sqlx_migrations`; ordermeta must neither
/// read nor write that table (apalis#439), in either order of creation.
#[tokio::test]
async fn host_sqlx_migrations_table_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("host.db");
    let host = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .expect("host pool");
    // What sqlx's Migrator creates, with a migration of the host's own.
    sqlx::raw_sql(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
         checksum BLOB NOT NULL, execution_time BIGINT NOT NULL); \
         INSERT INTO _sqlx_migrations VALUES (20240101, 'host app', CURRENT_TIMESTAMP, 1, x'00', 1);",
    )
    .execute(&host)
    .await
    .expect("host migrations");
    let store = SqliteStore::open(&path)
        .await
        .expect("open next to a host app");
    store
        .record(&short_term("h-1", OrderStatus::Pending, 1))
        .await
        .expect("record");
    let host_rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, description FROM _sqlx_migrations")
            .fetch_all(&host)
            .await
            .expect("read host migrations");
    assert_eq!(host_rows, vec![(20240101, "host app".to_owned())]);
    let ours: Vec<(i64,)> = sqlx::query_as("SELECT version FROM ordermeta_migrations")
        .fetch_all(&host)
        .await
        .expect("read ours");
    assert_eq!(ours, vec![(1,), (2,), (3,)]);
    store.close().await;
    host.close().await;

    // The other order: ordermeta first, then a host pool wrapped with from_pool.
    let path = dir.path().join("first.db");
    let store = SqliteStore::open(&path).await.expect("open");
    store.close().await;
    let pool = SqlitePoolOptions::new()
        .connect_with(SqliteConnectOptions::new().filename(&path))
        .await
        .expect("pool");
    let wrapped = SqliteStore::from_pool(pool.clone()).await.expect("wrap");
    wrapped.health().await.expect("health");
    let sqlx_table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&pool)
    .await
    .expect("schema");
    assert_eq!(sqlx_table, None, "ordermeta never creates _sqlx_migrations");
    pool.close().await;
}

/// A database migrated by a newer ordermeta (a migration this build does not know) is
/// refused at start, with a message saying so.
#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("newer.db");
    let store = SqliteStore::open(&path).await.expect("open");
    sqlx::query("INSERT INTO ordermeta_migrations VALUES (99, 'from the future', 'x', 0)")
        .execute(store.pool())
        .await
        .expect("insert");
    store.close().await;
    let err = SqliteStore::open(&path).await.expect_err("newer schema");
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert!(
        matches!(source(&err), Some(SqliteError::Migration { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("migration 99"), "{err}");
}

fn source(e: &StoreError) -> Option<&SqliteError> {
    match e {
        StoreError::Backend { source } => source.downcast_ref::<SqliteError>(),
        _ => None,
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Order metadata is sensitive: the database and its WAL files are readable by the owner only,
/// whatever the umask.
#[tokio::test]
async fn database_files_are_created_with_mode_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("private.db");
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .record(&short_term("p-1", OrderStatus::Pending, 1))
        .await
        .expect("record");
    assert_eq!(mode(&path), 0o600, "database file");
    for suffix in ["-wal", "-shm"] {
        let side = dir.path().join(format!("private.db{suffix}"));
        assert!(side.exists(), "{} exists in WAL mode", side.display());
        assert_eq!(mode(&side), 0o600, "{}", side.display());
    }
    store.close().await;
}

async fn pragma(pool: &sqlx::SqlitePool, name: &str) -> String {
    // journal_mode answers text, synchronous and busy_timeout integers.
    let sql = format!("PRAGMA {name}");
    match sqlx::query_scalar::<_, String>(&sql).fetch_one(pool).await {
        Ok(s) => s,
        Err(_) => sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(pool)
            .await
            .expect("pragma")
            .to_string(),
    }
}

#[tokio::test]
async fn wal_synchronous_and_busy_timeout_are_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("normal.db"))
        .await
        .expect("open");
    for pool in [store.pool(), store.read_pool()] {
        assert_eq!(pragma(pool, "journal_mode").await, "wal");
        assert_eq!(pragma(pool, "synchronous").await, "1", "NORMAL by default");
        assert_eq!(pragma(pool, "busy_timeout").await, "4000");
    }
    store.close().await;

    let store = SqliteStore::options()
        .synchronous(Synchronous::Full)
        .busy_timeout(Duration::from_millis(1234))
        .max_read_connections(2)
        .open(dir.path().join("full.db"))
        .await
        .expect("open");
    for pool in [store.pool(), store.read_pool()] {
        assert_eq!(pragma(pool, "journal_mode").await, "wal");
        assert_eq!(pragma(pool, "synchronous").await, "2", "FULL");
        assert_eq!(pragma(pool, "busy_timeout").await, "1234");
    }
    store.close().await;
}

#[tokio::test]
async fn urls_memory_and_wrapped_pools_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("url.db").display());
    let store = SqliteStore::connect(&url).await.expect("connect by URL");
    store
        .record(&short_term("u-1", OrderStatus::Pending, 1))
        .await
        .expect("record");
    store.close().await;
    let by_path = SqliteStore::connect(&dir.path().join("url.db").display().to_string())
        .await
        .expect("connect by path");
    assert!(by_path.get("u-1").await.expect("get").is_some());
    by_path.close().await;

    // In-memory stores are private to their store.
    let a = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("memory");
    let b = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("memory");
    a.record(&short_term("m-1", OrderStatus::Active, 1))
        .await
        .expect("record");
    assert!(a.claim_for_cancel("m-1").await.is_ok());
    assert_eq!(b.get("m-1").await.expect("get"), None);

    let err = SqliteStore::connect("sqlite://x?mode=bogus")
        .await
        .expect_err("bad URL");
    assert!(
        matches!(source(&err), Some(SqliteError::InvalidUrl { .. })),
        "{err:?}"
    );
}

/// Corrupt rows (written by hand, as a bug or another tool might) are reported, never skipped
/// and never fatal to the rest.
#[tokio::test]
async fn corrupt_rows_are_invalid_metadata_naming_the_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("corrupt.db"))
        .await
        .expect("open");
    let recs: Vec<_> = (0..7)
        .map(|i| short_term(&format!("c-{i}"), OrderStatus::Active, 100))
        .collect();
    store.record_many(&recs).await.expect("record_many");
    let corruptions = [
        (
            "c-1",
            "UPDATE dydx_order_metadata SET dydx_order_id = '%%not base64%%' WHERE order_id = 'c-1'",
            "dydx_order_id",
        ),
        (
            "c-2",
            "UPDATE dydx_order_metadata SET status = 'bogus' WHERE order_id = 'c-2'",
            "status",
        ),
        (
            "c-3",
            "UPDATE dydx_order_metadata SET good_until_block = -5 WHERE order_id = 'c-3'",
            "good_until_block",
        ),
        (
            "c-4",
            "UPDATE dydx_order_metadata SET history = '[{' WHERE order_id = 'c-4'",
            "history",
        ),
        (
            "c-5",
            "UPDATE dydx_order_metadata SET client_id = 8 WHERE order_id = 'c-5'",
            "client_id",
        ),
    ];
    for (_, sql, _) in &corruptions {
        sqlx::query(sql)
            .execute(store.pool())
            .await
            .expect("corrupt");
    }
    for (id, _, column) in &corruptions {
        let err = store.get(id).await.expect_err("corrupt row");
        match &err {
            StoreError::InvalidMetadata { order_id, reason } => {
                assert_eq!(order_id.as_deref(), Some(*id));
                assert!(reason.contains(column), "{id}: {reason}");
            }
            other => panic!("{id}: expected InvalidMetadata, got {other:?}"),
        }
        assert!(err.to_string().contains(id), "{err}");
    }
    for good in ["c-0", "c-6"] {
        assert_eq!(
            store
                .get_required(good)
                .await
                .expect("good rows still read"),
            recs[good[2..].parse::<usize>().expect("index")]
        );
    }

    // list: every row is either an item or an invalid record, in order, on every page size.
    let page = store
        .list(&ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    let items: Vec<_> = page.items.iter().map(|m| m.order_id.as_str()).collect();
    assert_eq!(items, ["c-0", "c-6"]);
    let invalid: Vec<_> = page.invalid.iter().map(|r| r.order_id.as_str()).collect();
    assert_eq!(invalid, ["c-1", "c-2", "c-3", "c-4", "c-5"]);
    for (r, (_, _, column)) in page.invalid.iter().zip(&corruptions) {
        assert!(r.reason.contains(column), "{r:?}");
    }
    let mut seen = Vec::new();
    let mut q = ListQuery {
        limit: 2,
        ..ListQuery::default()
    };
    loop {
        let page = store.list(&q).await.expect("list");
        assert!(page.items.len() + page.invalid.len() <= 2);
        let mut ids: Vec<_> = page
            .items
            .iter()
            .map(|m| m.order_id.clone())
            .chain(page.invalid.iter().map(|r| r.order_id.clone()))
            .collect();
        ids.sort();
        seen.extend(ids);
        match page.next {
            Some(n) => q.after = Some(n),
            None => break,
        }
    }
    let all: Vec<_> = recs.iter().map(|m| m.order_id.clone()).collect();
    assert_eq!(seen, all, "paging skips nothing");

    // A transition on a row whose status is unreadable names the order too.
    let err = store
        .claim_for_cancel("c-2")
        .await
        .expect_err("unknown status");
    assert_eq!(err.kind(), ErrorKind::InvalidMetadata);
    assert!(err.to_string().contains("c-2"), "{err}");
    // The good rows still work.
    store.claim_for_cancel("c-0").await.expect("claim c-0");
    store.close().await;
}

/// The history is appended inside SQLite (`json_insert`); whatever a reason contains comes
/// back exactly as written.
#[tokio::test]
async fn history_reasons_with_any_text_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("history.db"))
        .await
        .expect("open");
    let mut expected = short_term("hist-1", OrderStatus::Active, 10);
    store.record(&expected).await.expect("record");
    let reasons = [
        "quotes \" and 'single' and \\ backslash",
        "newline\nand\ttab\rcr",
        "nul \u{0} and \u{1f} control",
        "line sep \u{2028} para sep \u{2029}",
        "emoji 🚀 and 市场 and ünïcödé",
        "{\"looks\": [\"like json\"]}",
        "",
    ];
    for (i, reason) in reasons.iter().enumerate() {
        let (from, to) = if i % 2 == 0 {
            (OrderStatus::Active, OrderStatus::Cancelling)
        } else {
            (OrderStatus::Cancelling, OrderStatus::Active)
        };
        let req = TransitionRequest::new("hist-1", &[from], to)
            .at(t0() + ChronoDuration::seconds(i as i64 + 1))
            .reason(*reason);
        req.apply(&mut expected);
        assert_eq!(store.transition(&req).await.expect("transition"), expected);
    }
    assert_eq!(store.get_required("hist-1").await.expect("get"), expected);
    store.close().await;
}
