//! One group commit at a time, built by hand: every call of a batch gets its own answer.

use std::sync::Arc;
use std::time::Duration;

use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    Lease, MetadataStore, OrderMetadata, OrderStatus, StoreError, TransitionRequest, UpdateRequest,
    now,
};

use super::{Done, Op, record_of};
use crate::SqliteStore;
use crate::sql::cas_rows;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("group.db"))
        .await
        .expect("open");
    (dir, store)
}

/// The answers of one batch, each as its caller gets it (a returned row decoded).
async fn group(store: &SqliteStore, ops: &[Op]) -> Vec<Result<Option<OrderMetadata>, StoreError>> {
    let writes = store.writes();
    let _writing = writes.lock.lock().await;
    let answers = writes.group_held(ops).await;
    ops.iter()
        .zip(answers)
        .map(|(op, a)| match a {
            Ok(Done::Recorded) => Ok(None),
            a => record_of(op.order_id(), a).map(Some),
        })
        .collect()
}

type Answer = Result<Option<OrderMetadata>, StoreError>;

fn claim(id: &str, token: &str) -> Op {
    let until = now() + chrono::Duration::seconds(30);
    Op::Transition(
        TransitionRequest::new(id, &[OrderStatus::Active], OrderStatus::Cancelling)
            .lease(Lease::new(token, until)),
    )
}

fn already_exists(a: &Answer, id: &str) -> bool {
    matches!(a, Err(StoreError::AlreadyExists { order_id }) if order_id == id)
}

fn conflict(a: &Answer, id: &str, now_in: OrderStatus) -> bool {
    matches!(a, Err(StoreError::StatusConflict { order_id, current, .. })
        if order_id == id && *current == now_in)
}

fn invalid(a: &Answer, id: &str) -> bool {
    matches!(a, Err(StoreError::InvalidMetadata { order_id: Some(o), .. }) if o == id)
}

/// Records in one batch: new ids are written, the second record of an id in the batch and
/// the record of an id stored before answer `AlreadyExists`, each for itself; the first of
/// the two is what is stored.
#[tokio::test]
async fn records_of_one_batch_each_get_their_own_answer() {
    let (_dir, store) = store().await;
    store
        .record(&short_term("old", OrderStatus::Active, 100))
        .await
        .expect("record");
    let mut second = short_term("a", OrderStatus::Pending, 100);
    second.quantity = "7".into();
    let ops = [
        Op::Record(short_term("a", OrderStatus::Pending, 100)),
        Op::Record(short_term("b", OrderStatus::Pending, 100)),
        Op::Record(second),
        Op::Record(short_term("old", OrderStatus::Pending, 100)),
        Op::Record(short_term("c", OrderStatus::Pending, 100)),
    ];
    let answers = group(&store, &ops).await;
    assert!(matches!(answers[0], Ok(None)), "{:?}", answers[0]);
    assert!(matches!(answers[1], Ok(None)), "{:?}", answers[1]);
    assert!(already_exists(&answers[2], "a"), "{:?}", answers[2]);
    assert!(already_exists(&answers[3], "old"), "{:?}", answers[3]);
    assert!(matches!(answers[4], Ok(None)), "{:?}", answers[4]);
    let a = store.get("a").await.expect("get").expect("a stored");
    assert_eq!(a, short_term("a", OrderStatus::Pending, 100));
    let old = store.get("old").await.expect("get").expect("old");
    assert_eq!(
        old.status,
        OrderStatus::Active,
        "the stored record is untouched"
    );
    store.close().await;
}

/// Claims of one order in one batch: exactly one wins (the first queued), the others see the
/// claim it took. Two steps of one order in one batch apply one after the other.
#[tokio::test]
async fn compare_and_sets_on_one_order_in_one_batch_have_one_winner() {
    let (_dir, store) = store().await;
    for id in ["x", "y"] {
        store
            .record(&short_term(id, OrderStatus::Active, 100))
            .await
            .expect("record");
    }
    let ops = [
        claim("x", "t1"),
        claim("x", "t2"),
        Op::Transition(TransitionRequest::new(
            "y",
            &[OrderStatus::Active],
            OrderStatus::Cancelling,
        )),
        claim("x", "t3"),
        Op::Transition(TransitionRequest::new(
            "y",
            &[OrderStatus::Cancelling],
            OrderStatus::Cancelled,
        )),
    ];
    let answers = group(&store, &ops).await;
    let won = answers.iter().take(4).filter(|a| a.is_ok()).count();
    assert_eq!(won, 2, "one claim of x and y's first step: {answers:?}");
    let x = answers[0].as_ref().expect("the first claim wins").as_ref();
    assert_eq!(
        x.and_then(|m| m.lease.as_ref()).map(|l| l.token.as_str()),
        Some("t1")
    );
    assert!(
        conflict(&answers[1], "x", OrderStatus::Cancelling),
        "{:?}",
        answers[1]
    );
    assert!(
        conflict(&answers[3], "x", OrderStatus::Cancelling),
        "{:?}",
        answers[3]
    );
    let y = answers[4]
        .as_ref()
        .expect("y's second step")
        .as_ref()
        .expect("record");
    assert_eq!(y.status, OrderStatus::Cancelled);
    let before = short_term("y", OrderStatus::Active, 100).history.len();
    assert_eq!(y.history.len(), before + 2, "both steps are in the history");
    assert_eq!(y.lease, None, "leaving cancelling clears the lease");
    let stored = store.get("x").await.expect("get").expect("x");
    assert_eq!(stored.lease.map(|l| l.token), Some("t1".into()));
    let before = short_term("x", OrderStatus::Active, 100).version;
    assert_eq!(stored.version, before + 1, "one change of x");
    store.close().await;
}

/// A corrupt stored row, a record that cannot be encoded, an unknown order and an update that
/// lost on its version fail alone; the other calls of the batch are written.
#[tokio::test]
async fn a_bad_row_in_a_batch_fails_only_its_own_call() {
    let (_dir, store) = store().await;
    for id in ["good", "corrupt", "bogus", "versioned"] {
        store
            .record(&short_term(id, OrderStatus::Active, 100))
            .await
            .expect("record");
    }
    sqlx::query("UPDATE dydx_order_metadata SET dydx_order_id = 'not base64' WHERE order_id = ?")
        .bind("corrupt")
        .execute(store.pool())
        .await
        .expect("corrupt");
    sqlx::query("UPDATE dydx_order_metadata SET status = 'bogus' WHERE order_id = ?")
        .bind("bogus")
        .execute(store.pool())
        .await
        .expect("corrupt status");
    let mut huge = short_term("huge", OrderStatus::Pending, 100);
    huge.version = u64::MAX;
    let to_cancelling = |id: &str| {
        Op::Transition(TransitionRequest::new(
            id,
            &[OrderStatus::Active],
            OrderStatus::Cancelling,
        ))
    };
    let mut stale = UpdateRequest::new("versioned");
    stale.version = Some(41);
    stale.patch.indexer_id = Some("00000000-0000-0000-0000-000000000001".into());
    let mut beyond = UpdateRequest::new("versioned");
    beyond.version = Some(u64::MAX);
    let ops = [
        to_cancelling("corrupt"),
        Op::Record(huge),
        to_cancelling("good"),
        to_cancelling("missing"),
        to_cancelling("bogus"),
        Op::Update(stale),
        Op::Update(beyond),
        Op::Record(short_term("fresh", OrderStatus::Pending, 100)),
    ];
    let answers = group(&store, &ops).await;
    assert!(invalid(&answers[0], "corrupt"), "{:?}", answers[0]);
    assert!(invalid(&answers[1], "huge"), "{:?}", answers[1]);
    let good = answers[2].as_ref().expect("good").as_ref().expect("record");
    assert_eq!(good.status, OrderStatus::Cancelling);
    assert!(
        matches!(&answers[3], Err(StoreError::NotFound { order_id }) if order_id == "missing"),
        "{:?}",
        answers[3]
    );
    assert!(invalid(&answers[4], "bogus"), "{:?}", answers[4]);
    assert!(
        conflict(&answers[5], "versioned", OrderStatus::Active),
        "{:?}",
        answers[5]
    );
    assert!(
        conflict(&answers[6], "versioned", OrderStatus::Active),
        "{:?}",
        answers[6]
    );
    assert!(matches!(answers[7], Ok(None)), "{:?}", answers[7]);
    // The corrupt row's status matched: changed all the same, as by the single statement.
    let (status,): (String,) =
        sqlx::query_as("SELECT status FROM dydx_order_metadata WHERE order_id = 'corrupt'")
            .fetch_one(store.pool())
            .await
            .expect("status");
    assert_eq!(status, "cancelling");
    assert!(store.get("huge").await.expect("get").is_none());
    assert!(store.get("fresh").await.expect("get").is_some());
    let versioned = store
        .get("versioned")
        .await
        .expect("get")
        .expect("versioned");
    let before = short_term("versioned", OrderStatus::Active, 100);
    assert_eq!(
        (versioned.version, versioned.indexer_id),
        (before.version, None)
    );
    store.close().await;
}

/// A row the database refuses (here a trigger of another application's, raising an abort for
/// one order) fails the batch statement; the statement is run again row by row, and only that
/// call fails, with the database's error. Records and compare-and-sets alike.
#[tokio::test]
async fn a_row_the_database_refuses_fails_only_its_own_call() {
    let (_dir, store) = store().await;
    for id in ["ok-1", "refused-cas", "ok-2"] {
        store
            .record(&short_term(id, OrderStatus::Active, 100))
            .await
            .expect("record");
    }
    for trigger in [
        "CREATE TRIGGER refuse_insert BEFORE INSERT ON dydx_order_metadata \
         WHEN NEW.order_id = 'refused-record' BEGIN SELECT RAISE(ABORT, 'refused'); END",
        "CREATE TRIGGER refuse_update BEFORE UPDATE ON dydx_order_metadata \
         WHEN NEW.order_id = 'refused-cas' BEGIN SELECT RAISE(ABORT, 'refused'); END",
    ] {
        sqlx::query(trigger)
            .execute(store.pool())
            .await
            .expect("trigger");
    }
    let to_cancelling = |id: &str| {
        Op::Transition(TransitionRequest::new(
            id,
            &[OrderStatus::Active],
            OrderStatus::Cancelling,
        ))
    };
    let ops = [
        Op::Record(short_term("new-1", OrderStatus::Pending, 100)),
        Op::Record(short_term("refused-record", OrderStatus::Pending, 100)),
        Op::Record(short_term("new-2", OrderStatus::Pending, 100)),
        Op::Record(short_term("ok-1", OrderStatus::Pending, 100)),
        to_cancelling("ok-1"),
        to_cancelling("refused-cas"),
        to_cancelling("ok-2"),
    ];
    let answers = group(&store, &ops).await;
    assert!(matches!(answers[0], Ok(None)), "{:?}", answers[0]);
    assert!(
        matches!(&answers[1], Err(StoreError::Backend { .. })),
        "{:?}",
        answers[1]
    );
    assert!(matches!(answers[2], Ok(None)), "{:?}", answers[2]);
    assert!(already_exists(&answers[3], "ok-1"), "{:?}", answers[3]);
    for i in [4, 6] {
        let m = answers[i]
            .as_ref()
            .expect("written")
            .as_ref()
            .expect("record");
        assert_eq!(m.status, OrderStatus::Cancelling);
    }
    assert!(
        matches!(&answers[5], Err(StoreError::Backend { .. })),
        "{:?}",
        answers[5]
    );
    for (id, status) in [
        ("new-1", Some(OrderStatus::Pending)),
        ("refused-record", None),
        ("new-2", Some(OrderStatus::Pending)),
        ("ok-1", Some(OrderStatus::Cancelling)),
        ("refused-cas", Some(OrderStatus::Active)),
        ("ok-2", Some(OrderStatus::Cancelling)),
    ] {
        let stored = store.get(id).await.expect("get").map(|m| m.status);
        assert_eq!(stored, status, "{id}");
    }
    store.close().await;
}

/// An update on the right version and statuses is written by the batch statement.
#[tokio::test]
async fn updates_ride_in_the_batch_statement() {
    let (_dir, store) = store().await;
    store
        .record(&short_term("u", OrderStatus::Active, 100))
        .await
        .expect("record");
    let mut req = UpdateRequest::new("u");
    let version = short_term("u", OrderStatus::Active, 100).version;
    req.version = Some(version);
    req.statuses = vec![OrderStatus::Active];
    req.patch.filled_quantity = Some("0.5".into());
    let ops = [
        Op::Update(req),
        Op::Record(short_term("v", OrderStatus::Pending, 100)),
    ];
    let answers = group(&store, &ops).await;
    let u = answers[0]
        .as_ref()
        .expect("update")
        .as_ref()
        .expect("record");
    assert_eq!(
        (u.version, u.filled_quantity.as_deref()),
        (version + 1, Some("0.5"))
    );
    let before = short_term("u", OrderStatus::Active, 100).history.len();
    assert_eq!(u.history.len(), before, "an update adds no history entry");
    assert!(matches!(answers[1], Ok(None)));
    store.close().await;
}

/// The batch compare-and-set finds each order by primary key: no scan of the table.
#[tokio::test]
async fn the_batch_compare_and_set_searches_the_primary_key() {
    let (_dir, store) = store().await;
    let records: Vec<OrderMetadata> = (0..200)
        .map(|i| short_term(&format!("p-{i}"), OrderStatus::Active, 100))
        .collect();
    store.record_many(&records).await.expect("record_many");
    sqlx::query("ANALYZE")
        .execute(store.pool())
        .await
        .expect("analyze");
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", cas_rows(3)))
            .fetch_all(store.pool())
            .await
            .expect("explain");
    let plan = rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ");
    assert!(
        plan.contains("SEARCH dydx_order_metadata USING INDEX sqlite_autoindex"),
        "{plan}"
    );
    assert!(!plan.contains("SCAN dydx_order_metadata"), "{plan}");
    store.close().await;
}

/// The writer task ends with the store, calls in flight or not: dropped tasks, dropped
/// clones, nothing left holding the write side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_task_ends_when_the_store_is_dropped() {
    let (_dir, store) = store().await;
    let store = Arc::new(store);
    let lock = Arc::downgrade(&store.writes().lock);
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("t{t}-{i}");
                let _ = store
                    .record(&short_term(&id, OrderStatus::Pending, 100))
                    .await;
            }
        }));
    }
    // Writes in flight: wait until some have been answered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.writes().pool.size() == 0 || count(&store).await < 32 {
        assert!(tokio::time::Instant::now() < deadline, "no write answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        store
            .group_commit()
            .is_some_and(super::GroupCommit::running)
    );
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    drop(store);
    while lock.strong_count() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer task still holds the write side"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn count(store: &SqliteStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM dydx_order_metadata")
        .fetch_one(store.read_pool())
        .await
        .expect("count")
}
