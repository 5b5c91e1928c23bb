//! A database another connection keeps locked: every call ends within its deadline with a
//! typed error, reads go on, and the store works again once the lock is released. Real files
//! and a real second connection (its own sqlx connection on the same file, as another
//! process would hold it).

use std::path::Path;
use std::time::{Duration, Instant};

use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    ErrorKind, MetadataStore, MetadataStoreExt, OrderStatus, StoreError, UpdateRequest,
};
use ordermeta_sqlite::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use ordermeta_sqlite::sqlx::{self, Connection as _};
use ordermeta_sqlite::{SqliteError, SqliteStore};
use ordermeta_testkit::fails_within;

/// What a call may take beyond its deadline on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(4);

/// Another connection to `path` holding SQLite's write lock (`BEGIN IMMEDIATE`) until
/// [`release`](Self::release).
struct Holder(SqliteConnection);

impl Holder {
    async fn lock(path: &Path) -> Self {
        let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
            .await
            .expect("second connection");
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .expect("take the write lock");
        Holder(conn)
    }

    async fn release(mut self) {
        sqlx::raw_sql("COMMIT")
            .execute(&mut self.0)
            .await
            .expect("release the write lock");
        self.0.close().await.expect("close");
    }
}

fn is_busy(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend { source }
        if source.downcast_ref::<SqliteError>().is_some_and(SqliteError::is_busy))
}

/// Another connection holds the write lock: `record`, `transition` and `update` fail within the
/// deadline with a busy error (nothing written) even with a busy timeout far beyond it (it
/// is capped below the deadline), reads go on, and the next write after the release succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_write_lock_fails_writes_within_the_deadline() {
    let deadline = Duration::from_secs(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("locked.db");
    let store = SqliteStore::options()
        .operation_timeout(deadline)
        .busy_timeout(Duration::from_secs(60))
        .open(&path)
        .await
        .expect("open");
    store
        .record(&short_term("active", OrderStatus::Active, 100))
        .await
        .expect("record");

    let holder = Holder::lock(&path).await;
    let (e, took) = fails_within(
        "record under a held lock",
        deadline + MARGIN,
        store.record(&short_term("blocked", OrderStatus::Pending, 100)),
    )
    .await;
    assert!(is_busy(&e), "{e:?}");
    assert!(
        took >= deadline * 3 / 4,
        "waited its busy timeout: {took:?}"
    );
    let (e, _) = fails_within(
        "claim under a held lock",
        deadline + MARGIN,
        store.claim_for_cancel("active"),
    )
    .await;
    assert!(is_busy(&e), "{e:?}");
    let (e, _) = fails_within(
        "update under a held lock",
        deadline + MARGIN,
        store.update(&UpdateRequest::new("active").filled_quantity("0.5")),
    )
    .await;
    assert!(is_busy(&e), "{e:?}");
    // WAL: reads are not blocked by a writer.
    let m = store
        .get_required("active")
        .await
        .expect("read under a held lock");
    assert_eq!(
        (m.status, m.version),
        (OrderStatus::Active, 1),
        "nothing written"
    );
    assert_eq!(store.get("blocked").await.expect("get"), None);

    holder.release().await;
    store
        .record(&short_term("blocked", OrderStatus::Pending, 100))
        .await
        .expect("record after the release");
    let claimed = store
        .claim_for_cancel("active")
        .await
        .expect("claim after the release");
    assert_eq!(claimed.status, OrderStatus::Cancelling);
    store.close().await;
}

/// Two writers of one store queue for its write lock while another connection holds
/// SQLite's: the first fails busy, the second runs out of its deadline while queued and
/// answers `Timeout` (its read-back found nothing yet). Its statement may still commit when
/// the lock frees: reading back, not writing again, tells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_writer_times_out_and_is_resolved_by_reading_back() {
    queued_writers(false).await;
}

/// The same with group commit: the two calls share the writer's queue. Queued together they
/// share one transaction, which fails busy for both (nothing written); if the writer took the
/// first alone, the second times out behind it as above. Either way reading back resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writers_of_a_group_commit_are_resolved_by_reading_back() {
    queued_writers(true).await;
}

async fn queued_writers(group_commit: bool) {
    let deadline = Duration::from_secs(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queued.db");
    let store = SqliteStore::options()
        .operation_timeout(deadline)
        .group_commit(group_commit)
        .open(&path)
        .await
        .expect("open");
    let holder = Holder::lock(&path).await;
    let (a, b) = (
        short_term("queued-a", OrderStatus::Pending, 100),
        short_term("queued-b", OrderStatus::Pending, 100),
    );
    let started = Instant::now();
    let (ra, rb) = tokio::join!(store.record(&a), store.record(&b));
    let took = started.elapsed();
    eprintln!("two queued writers: {took:?} -> {ra:?} / {rb:?}");
    assert!(took < deadline + MARGIN, "{took:?}");
    let errors = [ra.expect_err("a"), rb.expect_err("b")];
    let busy = errors.iter().filter(|e| is_busy(e)).count();
    let timed_out = errors
        .iter()
        .filter(|e| matches!(e, StoreError::Timeout { operation: "record", after } if *after == deadline))
        .count();
    if group_commit && busy == 2 {
        eprintln!("both calls were in one transaction");
    } else {
        assert_eq!((busy, timed_out), (1, 1), "{errors:?}");
    }
    holder.release().await;
    // A statement left behind by a timed-out call ends (commits, or fails busy) at most its
    // busy timeout after it started; after that, a read-back is final.
    tokio::time::sleep(deadline).await;

    // The timed-out write's outcome was unknown: resolve it by reading back.
    for m in [&a, &b] {
        match store.get(&m.order_id).await.expect("read back") {
            Some(stored) => {
                eprintln!("{} applied after its deadline", m.order_id);
                assert_eq!(&stored, m);
                assert_eq!(
                    store.record(m).await.err().map(|e| e.kind()),
                    Some(ErrorKind::AlreadyExists)
                );
            }
            None => store.record(m).await.expect("record after the release"),
        }
        assert_eq!(store.get(&m.order_id).await.expect("get").as_ref(), Some(m));
    }
    store.close().await;
}

/// Opening a file another connection keeps locked (it needs the WAL switch and the
/// migrations, which need the lock) fails within the deadline; once released, it opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_locked_file_fails_within_the_deadline() {
    let deadline = Duration::from_secs(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fresh.db");
    let mut creator = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .expect("create the file");
    sqlx::raw_sql("CREATE TABLE other_app (x INTEGER)")
        .execute(&mut creator)
        .await
        .expect("a table of another application");
    creator.close().await.expect("close");
    let holder = Holder::lock(&path).await;

    let (e, _) = fails_within(
        "open under a held lock",
        deadline + MARGIN,
        SqliteStore::options()
            .operation_timeout(deadline)
            .open(&path),
    )
    .await;
    assert!(
        is_busy(&e) || e.kind() == ErrorKind::Timeout,
        "a busy database or a timeout: {e:?}"
    );

    holder.release().await;
    let store = SqliteStore::options()
        .operation_timeout(deadline)
        .open(&path)
        .await
        .expect("open after the release");
    store.health().await.expect("health");
    store.close().await;
}
