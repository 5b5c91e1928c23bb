//! Group commit through the public API, on real files: many tasks' calls written together,
//! each with its own answer and its own deadline.
//!
//! To make the writer task batch them, another connection holds SQLite's write lock while
//! the calls queue: the first call (alone, so it writes itself) waits for it holding the
//! store's write lock, and everything queued behind goes into the writer task's next
//! transaction.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    ErrorKind, Lease, MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus, StoreError, now,
};
use ordermeta_sqlite::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use ordermeta_sqlite::sqlx::{self, Connection as _};
use ordermeta_sqlite::{SqliteError, SqliteStore};

/// Another connection to `path` holding SQLite's write lock until [`release`](Self::release).
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

/// A record and what `record` answered for it.
type Recorded = (OrderMetadata, Result<(), StoreError>);

async fn open(path: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(path).await.expect("open"))
}

/// 64 tasks record 16 ids, four records per id, all queued together: per id exactly one
/// record is written and the three others answer `AlreadyExists` for that id; the stored
/// record is the winner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_with_duplicates_each_get_their_own_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dups.db");
    let store = open(&path).await;
    let holder = Holder::lock(&path).await;
    let mut calls = Vec::new();
    for t in 0..64u32 {
        let store = store.clone();
        let mut m = short_term(&format!("dup-{}", t % 16), OrderStatus::Pending, 100);
        m.quantity = format!("{}", t + 1);
        calls.push(tokio::spawn(async move {
            let answer = store.record(&m).await;
            (m, answer)
        }));
    }
    // Let every call queue behind the first one, which waits for the lock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.release().await;
    let mut by_id: BTreeMap<String, Vec<Recorded>> = BTreeMap::new();
    for c in calls {
        let (m, answer) = c.await.expect("task");
        by_id
            .entry(m.order_id.clone())
            .or_default()
            .push((m, answer));
    }
    assert_eq!(by_id.len(), 16);
    for (id, answers) in by_id {
        let winners: Vec<&OrderMetadata> = answers
            .iter()
            .filter(|(_, a)| a.is_ok())
            .map(|(m, _)| m)
            .collect();
        assert_eq!(winners.len(), 1, "{id}: {answers:?}");
        for (_, a) in answers.iter().filter(|(_, a)| a.is_err()) {
            assert!(
                matches!(a, Err(StoreError::AlreadyExists { order_id }) if *order_id == id),
                "{id}: {a:?}"
            );
        }
        let stored = store.get(&id).await.expect("get").expect("stored");
        assert_eq!(&stored, winners[0], "the winner's record is stored");
    }
    store.close().await;
}

/// 64 tasks claim 8 orders, 8 claimers per order with their own tokens, all queued together:
/// per order exactly one claim wins, the others answer `StatusConflict` (now cancelling), and
/// the stored lease is the winner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_in_one_batch_have_one_winner_per_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("claims.db");
    let store = open(&path).await;
    for o in 0..8 {
        store
            .record(&short_term(&format!("o{o}"), OrderStatus::Active, 100))
            .await
            .expect("record");
    }
    let holder = Holder::lock(&path).await;
    let mut calls = Vec::new();
    for t in 0..64 {
        let store = store.clone();
        let (id, token) = (format!("o{}", t % 8), format!("claimer-{t}"));
        calls.push(tokio::spawn(async move {
            let until = now() + chrono::Duration::seconds(60);
            let lease = Lease::new(token.as_str(), until);
            let answer = store.claim(&id, &[OrderStatus::Active], lease, now()).await;
            (id, token, answer)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.release().await;
    let mut winners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in calls {
        let (id, token, answer) = c.await.expect("task");
        match answer {
            Ok(m) => {
                assert_eq!(
                    m.lease.as_ref().map(|l| l.token.as_str()),
                    Some(token.as_str())
                );
                winners.entry(id).or_default().push(token);
            }
            Err(StoreError::StatusConflict {
                order_id, current, ..
            }) => {
                assert_eq!((order_id, current), (id, OrderStatus::Cancelling));
            }
            Err(e) => panic!("{id}: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 8, "{winners:?}");
    for (id, tokens) in winners {
        assert_eq!(tokens.len(), 1, "{id}: {tokens:?}");
        let stored = store.get_required(&id).await.expect("get");
        assert_eq!(stored.lease.map(|l| l.token), Some(tokens[0].clone()));
    }
    store.close().await;
}

/// A caller that gives up while its write is queued (its own deadline, shorter than the
/// store's) is never written: the writer leaves out a call nobody waits for.
#[tokio::test(flavor = "current_thread")]
async fn a_call_given_up_while_queued_is_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("given-up.db");
    let store = open(&path).await;
    let holder = Holder::lock(&path).await;
    // Alone, this call writes itself, and waits for SQLite's lock holding the store's.
    let first = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .record(&short_term("first", OrderStatus::Pending, 100))
                .await
        }
    });
    // One thread: every task that can run has run (the first call is waiting in SQLite).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        store.record(&short_term("gave-up", OrderStatus::Pending, 100)),
    )
    .await;
    assert!(gave_up.is_err(), "the call was still queued: {gave_up:?}");
    holder.release().await;
    first
        .await
        .expect("task")
        .expect("the first call is written");
    // Answered after the left-out call's turn: the writer has passed it.
    store
        .record(&short_term("after", OrderStatus::Pending, 100))
        .await
        .expect("a call after the release");
    assert_eq!(store.get("gave-up").await.expect("get"), None);
    store.close().await;
}

/// A call whose operation deadline passes while it waits behind a transaction kept out by
/// another process answers within its deadline (and read-back): `Timeout`, its write never
/// applied; the call ahead of it fails busy, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_deadline_passes_behind_a_blocked_batch_times_out() {
    let deadline = Duration::from_secs(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deadline.db");
    let store = Arc::new(
        SqliteStore::options()
            .operation_timeout(deadline)
            .open(&path)
            .await
            .expect("open"),
    );
    let holder = Holder::lock(&path).await;
    let ahead = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .record(&short_term("ahead", OrderStatus::Pending, 100))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let behind = tokio::time::timeout(
        deadline * 5,
        store.record(&short_term("behind", OrderStatus::Pending, 100)),
    )
    .await
    .expect("answered within its deadline and read-back");
    let ahead = ahead.await.expect("task");
    assert!(is_busy(ahead.as_ref().expect_err("ahead")), "{ahead:?}");
    let e = behind.expect_err("behind");
    assert!(
        e.kind() == ErrorKind::Timeout || is_busy(&e),
        "a timeout, or busy if it was taken in time: {e:?}"
    );
    // Its write is never applied later: what it waited for fails busy while the lock is held.
    tokio::time::sleep(deadline * 2).await;
    holder.release().await;
    store
        .record(&short_term("after", OrderStatus::Pending, 100))
        .await
        .expect("a call after the release");
    assert_eq!(store.get("behind").await.expect("get"), None);
    assert_eq!(store.get("ahead").await.expect("get"), None);
    store.close().await;
}

/// With group commit off, calls still write one statement each and answer for themselves
/// (the conformance suite runs both ways; this checks the option is honoured end to end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_off_writes_each_call_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::options()
            .group_commit(false)
            .open(dir.path().join("off.db"))
            .await
            .expect("open"),
    );
    let mut calls = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            store
                .record(&short_term(
                    &format!("same-{}", t % 4),
                    OrderStatus::Pending,
                    100,
                ))
                .await
        }));
    }
    let mut ok = 0;
    for c in calls {
        match c.await.expect("task") {
            Ok(()) => ok += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e:?}"),
        }
    }
    assert_eq!(ok, 4);
    store.close().await;
}
