//! Group commit on a real server: writes that meet in one batch statement each keep their own
//! answer — duplicate ids (first wins, the rest `AlreadyExists`), claims of one order
//! (exactly one winner), a row another transaction holds locked (skipped, resolved alone,
//! the rest of the batch not held up) — and a lone caller never batches.
//!
//! A batch is formed deterministically: a transaction holds the table in SHARE mode (writes
//! wait, reads and row locks do not), a first write waits on it alone and a second in the
//! store's only writer; the writes under test then queue behind it and, once the table is
//! released, go in one statement.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    ErrorKind, MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus, StoreError,
};
use ordermeta_postgres::{PgStore, PgStoreOptions, sqlx};
use ordermeta_testkit::poll_until;
use tokio::task::JoinHandle;

type Write<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Claimed = Result<OrderMetadata, StoreError>;

/// A store whose group commit has one writer and batches whenever another write is in
/// progress; generous deadlines, since the tests hold locks.
async fn store(prefix: &str) -> PgStore {
    common::fresh_store(
        prefix,
        PgStoreOptions::new()
            .max_connections(12)
            .group_commit_writers(1)
            .group_commit_threshold(1)
            .operation_timeout(Duration::from_secs(60)),
    )
    .await
}

/// Writes waiting for a lock on the store's table (not granted).
async fn waiting_on_table(store: &PgStore) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass",
    )
    .bind(store.table())
    .fetch_one(store.pool())
    .await
    .expect("pg_locks")
}

/// Runs `writes` as one group commit batch (see the module docs); returns their tasks.
async fn in_one_batch<T: Send + 'static>(
    store: &PgStore,
    writes: Vec<Write<T>>,
) -> Vec<JoinHandle<T>> {
    let mut hold = store.pool().begin().await.expect("begin");
    sqlx::query(&format!("LOCK TABLE {} IN SHARE MODE", store.table()))
        .execute(&mut *hold)
        .await
        .expect("lock table");
    let mut holders = Vec::new();
    for (i, id) in ["hold-a", "hold-b"].into_iter().enumerate() {
        let s = store.clone();
        holders.push(tokio::spawn(async move {
            s.record(&short_term(id, OrderStatus::Active, 10)).await
        }));
        // The first runs alone, the second in the writer; both wait on the table.
        poll_until(
            "a write waits on the table",
            Duration::from_secs(30),
            || {
                let s = store.clone();
                async move { waiting_on_table(&s).await == i as i64 + 1 }
            },
        )
        .await;
    }
    let n = writes.len();
    let tasks: Vec<_> = writes.into_iter().map(tokio::spawn).collect();
    poll_until("the writes queue", Duration::from_secs(30), || {
        let in_progress = store.group_commit_stats().in_progress;
        async move { in_progress == n + 2 }
    })
    .await;
    hold.commit().await.expect("release the table");
    for h in holders {
        h.await.expect("holder").expect("holder records");
    }
    tasks
}

async fn join<T>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// 48 records in one statement: 16 ids twice (different quantities), 8 ids already stored,
/// 8 new ids once. Per id exactly one call succeeds and the stored record is its record;
/// every other call answers `AlreadyExists` naming its own id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_with_duplicates_in_one_batch() {
    let store = store("gc_dup").await;
    for i in 0..8 {
        store
            .record(&short_term(&format!("old-{i}"), OrderStatus::Active, 10))
            .await
            .expect("record");
    }
    let mut metas = Vec::new();
    for i in 0..16 {
        for q in ["1", "2"] {
            let mut m = short_term(&format!("dup-{i}"), OrderStatus::Pending, 10);
            m.quantity = q.to_owned();
            metas.push(m);
        }
    }
    metas.extend((0..8).map(|i| short_term(&format!("old-{i}"), OrderStatus::Pending, 10)));
    metas.extend((0..8).map(|i| short_term(&format!("new-{i}"), OrderStatus::Pending, 10)));
    let before = store.group_commit_stats();
    let writes: Vec<Write<(OrderMetadata, Result<(), StoreError>)>> = metas
        .iter()
        .cloned()
        .map(|m| {
            let s = store.clone();
            Box::pin(async move { (m.clone(), s.record(&m).await) }) as Write<_>
        })
        .collect();
    let results = join(in_one_batch(&store, writes).await).await;
    let after = store.group_commit_stats();
    assert_eq!(after.batches - before.batches, 1, "{after:?}");
    assert_eq!(
        after.batched_writes - before.batched_writes,
        48,
        "{after:?}"
    );

    for (m, r) in &results {
        let others_ok = results
            .iter()
            .filter(|(o, r)| o.order_id == m.order_id && r.is_ok())
            .count();
        let stored = store.get(&m.order_id).await.expect("get").expect("stored");
        match r {
            Ok(()) => assert_eq!(&stored, m, "the winner's record is stored"),
            Err(StoreError::AlreadyExists { order_id }) => assert_eq!(order_id, &m.order_id),
            Err(e) => panic!("{}: {e:?}", m.order_id),
        }
        let expected = usize::from(!m.order_id.starts_with("old-"));
        assert_eq!(others_ok, expected, "{}: successes", m.order_id);
    }
    common::drop_store(store).await;
}

/// 32 claims of one order plus one claim each of 8 others, in one statement: exactly one
/// claim of the contested order wins, each loser gets `StatusConflict` with `cancelling`,
/// and the 8 others all win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_one_order_in_one_batch_have_one_winner() {
    let store = store("gc_cas").await;
    let ids: Vec<String> = std::iter::once("contested".to_owned())
        .chain((0..8).map(|i| format!("other-{i}")))
        .collect();
    for id in &ids {
        store
            .record(&short_term(id, OrderStatus::Active, 10))
            .await
            .expect("record");
    }
    let targets: Vec<String> = std::iter::repeat_n("contested".to_owned(), 32)
        .chain(ids[1..].iter().cloned())
        .collect();
    let before = store.group_commit_stats();
    let writes: Vec<Write<(String, Claimed)>> = targets
        .iter()
        .cloned()
        .map(|id| {
            let s = store.clone();
            Box::pin(async move { (id.clone(), s.claim_for_cancel(&id).await) }) as Write<_>
        })
        .collect();
    let results = join(in_one_batch(&store, writes).await).await;
    let after = store.group_commit_stats();
    assert_eq!(
        after.batched_writes - before.batched_writes,
        40,
        "{after:?}"
    );

    let mut winners = 0;
    for (id, r) in &results {
        match r {
            Ok(m) => {
                assert_eq!(m.status, OrderStatus::Cancelling);
                assert_eq!(m.version, 2, "{id}: one transition");
                winners += usize::from(id == "contested");
            }
            Err(StoreError::StatusConflict { current, .. }) if id == "contested" => {
                assert_eq!(*current, OrderStatus::Cancelling);
            }
            Err(e) => panic!("{id}: {e:?}"),
        }
    }
    assert_eq!(winners, 1, "exactly one claim of the contested order wins");
    let others_ok = results
        .iter()
        .filter(|(id, r)| id != "contested" && r.is_ok());
    assert_eq!(others_ok.count(), 8);
    let contested = store.get("contested").await.expect("get").expect("stored");
    assert_eq!((contested.version, contested.history.len()), (2, 2));
    common::drop_store(store).await;
}

/// A row another transaction holds locked does not hold up its batch: the statement skips it
/// (the others' claims are answered while the lock is still held) and its own caller
/// resolves alone, waiting for the lock like a single statement, and wins once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_row_does_not_hold_up_its_batch() {
    let store = store("gc_lock").await;
    let ids: Vec<String> = (0..10).map(|i| format!("free-{i}")).collect();
    for id in ids.iter().chain(std::iter::once(&"locked".to_owned())) {
        store
            .record(&short_term(id, OrderStatus::Active, 10))
            .await
            .expect("record");
    }
    let mut row_lock = store.pool().begin().await.expect("begin");
    sqlx::query(&format!(
        "SELECT 1 FROM {} WHERE order_id = 'locked' FOR UPDATE",
        store.table()
    ))
    .execute(&mut *row_lock)
    .await
    .expect("lock the row");

    let writes: Vec<Write<Claimed>> = std::iter::once("locked".to_owned())
        .chain(ids.iter().cloned())
        .map(|id| {
            let s = store.clone();
            Box::pin(async move { s.claim_for_cancel(&id).await }) as Write<_>
        })
        .collect();
    let mut tasks = in_one_batch(&store, writes).await;
    let locked = tasks.remove(0);
    for r in join(tasks).await {
        assert_eq!(
            r.expect("a free row's claim").status,
            OrderStatus::Cancelling
        );
    }
    assert!(
        !locked.is_finished(),
        "the locked row's claim waits for the lock"
    );
    row_lock.commit().await.expect("release the row");
    let claimed = locked
        .await
        .expect("task")
        .expect("claim once the lock is gone");
    assert_eq!(
        (claimed.status, claimed.version),
        (OrderStatus::Cancelling, 2)
    );
    common::drop_store(store).await;
}

/// Writes made one after another never batch: each runs its single statement directly.
#[tokio::test]
async fn a_lone_caller_never_batches() {
    let store = store("gc_alone").await;
    for i in 0..5 {
        let id = format!("solo-{i}");
        store
            .record(&short_term(&id, OrderStatus::Active, 10))
            .await
            .expect("record");
        store.claim_for_cancel(&id).await.expect("claim");
        let again = store
            .record(&short_term(&id, OrderStatus::Active, 10))
            .await;
        assert_eq!(
            again.err().map(|e| e.kind()),
            Some(ErrorKind::AlreadyExists)
        );
    }
    let stats = store.group_commit_stats();
    assert_eq!((stats.batches, stats.in_progress), (0, 0), "{stats:?}");
    assert!(store.group_commit());
    common::drop_store(store).await;
}

/// Records and claims in one batch (two statements, on two connections when the pool has an
/// idle one): each call answered, each write applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_claims_in_one_batch() {
    let store = store("gc_mixed").await;
    for i in 0..8 {
        store
            .record(&short_term(&format!("open-{i}"), OrderStatus::Active, 10))
            .await
            .expect("record");
    }
    let before = store.group_commit_stats();
    let mut writes: Vec<Write<Result<u64, StoreError>>> = Vec::new();
    for i in 0..8 {
        let s = store.clone();
        writes.push(Box::pin(async move {
            let m = short_term(&format!("fresh-{i}"), OrderStatus::Pending, 10);
            s.record(&m).await.map(|()| 1)
        }));
        let s = store.clone();
        writes.push(Box::pin(async move {
            s.claim_for_cancel(&format!("open-{i}"))
                .await
                .map(|m| m.version)
        }));
    }
    for r in join(in_one_batch(&store, writes).await).await {
        let v = r.expect("every write of the batch succeeds");
        assert!(v == 1 || v == 2, "{v}");
    }
    let after = store.group_commit_stats();
    assert_eq!(
        (
            after.batches - before.batches,
            after.batched_writes - before.batched_writes
        ),
        (2, 16),
        "{after:?}"
    );
    for i in 0..8 {
        let fresh = store.get(&format!("fresh-{i}")).await.expect("get");
        assert_eq!(fresh.map(|m| m.status), Some(OrderStatus::Pending));
        let open = store
            .get(&format!("open-{i}"))
            .await
            .expect("get")
            .expect("open");
        assert_eq!((open.status, open.version), (OrderStatus::Cancelling, 2));
    }
    common::drop_store(store).await;
}
