//! The server crashes (immediate stop) in the middle of a run and comes back: calls during the
//! outage fail with `Backend` errors, calls afterwards succeed on the same store, and no
//! record is lost or half-written. Uses a private server, never the shared one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use ordermeta_core::conformance::{short_term, t0};
use ordermeta_core::{
    ErrorKind, ExpireRequest, ListQuery, MAX_PAGE_SIZE, MetadataStore, MetadataStoreExt,
    OrderMetadata, OrderStatus, StoreError, TransitionRequest,
};
use ordermeta_postgres::{PgError, PgStore, PgStoreOptions};

use ordermeta_testkit::pg::PrivatePg;
use ordermeta_testkit::poll_until;

const BATCH: usize = 5;

async fn count(store: &PgStore) -> usize {
    store
        .list_all(&ListQuery {
            limit: MAX_PAGE_SIZE,
            ..ListQuery::default()
        })
        .await
        .map(|p| p.items.len())
        .unwrap_or(0)
}

fn assert_backend<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    match r {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Backend, "{what}: {e}");
            // The source says it is the server, not our data or a privilege.
            assert!(
                matches!(common::pg_error(&e), PgError::Database { .. }),
                "{what}: {e:?}"
            );
        }
        Ok(v) => panic!("{what} succeeded during the outage: {v:?}"),
    }
}

/// Records batches until told to stop; returns each batch and whether its call succeeded.
fn spawn_writer(
    store: Arc<PgStore>,
    stop: Arc<AtomicBool>,
    ok_batches: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<(Vec<OrderMetadata>, bool)>> {
    tokio::spawn(async move {
        let mut outcomes = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let batch: Vec<_> = (0..BATCH)
                .map(|k| short_term(&format!("w-{i:05}-{k}"), OrderStatus::Active, 700))
                .collect();
            let r = store.record_many(&batch).await;
            if let Err(e) = &r {
                assert_eq!(e.kind(), ErrorKind::Backend, "writer: {e}");
            } else {
                ok_batches.fetch_add(1, Ordering::SeqCst);
            }
            outcomes.push((batch, r.is_ok()));
            i += 1;
        }
        outcomes
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_run() {
    let pg = PrivatePg::start(None);
    let store = PgStoreOptions::new()
        .schema("restart")
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect(&pg.url())
        .await
        .expect("connect to the private server");
    let store = Arc::new(store);

    let base: Vec<_> = (0..100)
        .map(|i| short_term(&format!("base-{i:03}"), OrderStatus::Active, 500))
        .collect();
    store.record_many(&base).await.expect("record base");

    let stop = Arc::new(AtomicBool::new(false));
    let ok_batches = Arc::new(AtomicUsize::new(0));
    let writer = spawn_writer(store.clone(), stop.clone(), ok_batches.clone());
    poll_until("writes before the outage", Duration::from_secs(30), || {
        let n = ok_batches.load(Ordering::SeqCst);
        async move { n >= 10 }
    })
    .await;

    // Crash: in-flight statements die with their connections.
    tokio::task::block_in_place(|| pg.stop("immediate"));

    let probe = short_term("outage-1", OrderStatus::Active, 1);
    assert_backend("record", store.record(&probe).await);
    assert_backend(
        "record_many",
        store
            .record_many(&[short_term("outage-2", OrderStatus::Active, 1)])
            .await,
    );
    assert_backend("get", store.get("base-000").await);
    assert_backend("claim", store.claim_for_cancel("base-001").await);
    assert_backend("list", store.list(&ListQuery::default()).await);
    assert_backend(
        "expire",
        store.expire(&ExpireRequest::new(Some(10), None)).await,
    );
    assert_backend("purge", store.purge(t0() + ChronoDuration::days(1)).await);
    assert_backend("health", store.health().await);

    tokio::task::block_in_place(|| pg.start_again());
    poll_until("the store answers again", Duration::from_secs(60), || {
        let store = store.clone();
        async move { store.health().await.is_ok() }
    })
    .await;

    // The same store object works again, for every operation.
    let after_restart = ok_batches.load(Ordering::SeqCst);
    poll_until("writes after the restart", Duration::from_secs(30), || {
        let n = ok_batches.load(Ordering::SeqCst);
        async move { n >= after_restart + 10 }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = writer.await.expect("writer");

    store.record(&probe).await.expect("record after restart");
    assert_eq!(store.get("outage-1").await.expect("get"), Some(probe));
    let claimed = store.claim_for_cancel("base-001").await.expect("claim");
    assert_eq!(claimed.version, 2);
    store
        .transition(
            &TransitionRequest::new("base-001", &[OrderStatus::Cancelling], OrderStatus::Active)
                .reason("restored"),
        )
        .await
        .expect("transition");
    assert!(store.list(&ListQuery::default()).await.is_ok());
    assert_eq!(
        store
            .expire(&ExpireRequest::new(Some(1), None))
            .await
            .expect("expire"),
        1,
        "outage-1 (GTB 1) expires"
    );
    store.purge(t0()).await.expect("purge");

    // Nothing lost, nothing half-written.
    for m in &base[2..] {
        assert_eq!(
            store.get(&m.order_id).await.expect("get").as_ref(),
            Some(m),
            "base record {}",
            m.order_id
        );
    }
    let (mut ok, mut failed) = (0, 0);
    for (batch, succeeded) in &outcomes {
        let mut present = 0;
        for m in batch {
            if let Some(got) = store.get(&m.order_id).await.expect("get") {
                assert_eq!(&got, m, "{} reads back exactly", m.order_id);
                present += 1;
            }
        }
        if *succeeded {
            ok += 1;
            assert_eq!(present, BATCH, "a confirmed batch is complete");
        } else {
            failed += 1;
            assert!(
                present == 0 || present == BATCH,
                "a failed batch is all or nothing, found {present} of {BATCH}"
            );
        }
    }
    assert!(ok >= 20, "{ok} batches confirmed");
    assert!(failed >= 1, "the writer saw the outage");
    assert!(count(&store).await >= base.len() + ok * BATCH);

    store.close().await;
}
