//! redis-server killed (SIGKILL) and restarted mid-run: the same store recovers by itself, every
//! acknowledged write survives (AOF), and nothing is half-written: every record
//! decodes and every index agrees with the records.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    ErrorKind, MetadataStore, MetadataStoreExt, OrderStatus, StoreError, TransitionRequest,
};
use ordermeta_redis::RedisStore;
use ordermeta_redis::redis::AsyncCommands as _;
use ordermeta_testkit::redis::RedisServer;

const ORDERS: usize = 240;
// `always`: with `everysec` Redis may postpone the AOF write() by up to 2 s while a slow
// background fsync runs and still reply, so under load (parallel tests) an acknowledged write
// could be lost to a SIGKILL; seen once in CI-like runs.
const AOF: [&str; 4] = ["--appendonly", "yes", "--appendfsync", "always"];

/// Retries `op` until it succeeds, accepting `done` errors as "an earlier attempt applied".
async fn until_ok<F, Fut>(errors: &AtomicUsize, mut op: F, done: impl Fn(&StoreError) -> bool)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match op().await {
            Ok(()) => return,
            Err(e) if done(&e) => return,
            Err(e) => {
                // A write whose reply was lost while the server was down cannot be read back
                // before its deadline: Timeout (outcome unknown), resolved by the retry.
                assert!(
                    matches!(e.kind(), ErrorKind::Backend | ErrorKind::Timeout),
                    "only outages are retried: {e}"
                );
                errors.fetch_add(1, Ordering::SeqCst);
                assert!(Instant::now() < deadline, "the store never recovered: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_and_restarted_mid_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = ordermeta_testkit::net::free_port();
    let server = RedisServer::start(port, dir.path(), &AOF);
    let store = RedisStore::options()
        .namespace(ordermeta_testkit::unique_name("restart"))
        .response_timeout(Some(Duration::from_secs(1)))
        .connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .expect("connect");

    let progress = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (store, progress, errors) = (store.clone(), progress.clone(), errors.clone());
        tokio::spawn(async move {
            for i in 0..ORDERS {
                let id = format!("r-{i:04}");
                let rec = short_term(&id, OrderStatus::Pending, 1_000 + i as u32);
                until_ok(
                    &errors,
                    || store.record(&rec),
                    // A lost reply whose read-back also failed: the record is ours if equal.
                    |e| e.kind() == ErrorKind::AlreadyExists,
                )
                .await;
                for (from, to) in [
                    (OrderStatus::Pending, OrderStatus::Active),
                    (OrderStatus::Active, OrderStatus::Cancelling),
                ] {
                    let req = TransitionRequest::new(&id, &[from], to);
                    until_ok(
                        &errors,
                        || async { store.transition(&req).await.map(drop) },
                        |e| e.current_status() == Some(to),
                    )
                    .await;
                }
                progress.store(i + 1, Ordering::SeqCst);
            }
        })
    };

    // Kill the server a third of the way in; restart it once the writer has failed a few times.
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::SeqCst) < ORDERS / 3 {
        assert!(Instant::now() < deadline, "writer stalled before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    while errors.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "the outage was never noticed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let progress_at_restart = progress.load(Ordering::SeqCst);
    let _server = RedisServer::start(port, dir.path(), &AOF);
    writer.await.expect("writer");
    assert!(progress_at_restart < ORDERS, "the kill happened mid-run");
    eprintln!(
        "outage errors: {}, progress at restart: {progress_at_restart}",
        errors.load(Ordering::SeqCst)
    );

    // Every order is whole, and exactly where the writer left it.
    let mut ids = BTreeSet::new();
    for i in 0..ORDERS {
        let id = format!("r-{i:04}");
        let m = store
            .get_required(&id)
            .await
            .expect("every order survives and decodes");
        assert_eq!(
            (m.status, m.version, m.history.len()),
            (OrderStatus::Cancelling, 3, 3),
            "{id}"
        );
        assert_eq!(m.good_til.block(), Some(1_000 + i as u32));
        ids.insert(id);
    }
    // The indexes agree with the records.
    let k = store.keys();
    let mut conn = store.connection();
    let zset = |key: String| {
        let mut conn = conn.clone();
        async move {
            conn.zrange::<_, Vec<String>>(key, 0, -1)
                .await
                .expect("zrange")
                .into_iter()
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(zset(k.ids()).await, ids);
    assert_eq!(zset(k.status(OrderStatus::Cancelling)).await, ids);
    assert_eq!(zset(k.open_by_block()).await, ids);
    for s in OrderStatus::ALL
        .into_iter()
        .filter(|s| *s != OrderStatus::Cancelling)
    {
        assert!(zset(k.status(s)).await.is_empty(), "{s}");
    }
    assert!(zset(k.terminal()).await.is_empty());
    let score: f64 = conn
        .zscore(k.open_by_block(), "r-0007")
        .await
        .expect("zscore");
    assert_eq!(score, 1_007.0);
    store.health().await.expect("healthy after the restart");
    store.delete_namespace().await.expect("cleanup");
}
