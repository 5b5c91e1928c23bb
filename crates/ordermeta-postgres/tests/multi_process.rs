//! 4 OS processes × 8 tasks each claim the same 2,000 orders: every order is claimed exactly
//! once, across processes.
//!
//! The test re-invokes its own binary with `ORDERMETA_PG_CLAIM_CHILD` set; a child claims
//! and prints the ids it won (`WON=<id>`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    ListQuery, MAX_PAGE_SIZE, MetadataStore, MetadataStoreExt, OrderStatus, StoreError,
};
use ordermeta_postgres::PgStoreOptions;
use ordermeta_testkit::child::{self, Child};
use ordermeta_testkit::count::assert_each_once;

const PROCESSES: usize = 4;
const TASKS: usize = 8;
const ORDERS: usize = 2_000;
const CHILD_ENV: &str = "ORDERMETA_PG_CLAIM_CHILD";
const TEST_NAME: &str = "four_processes_claim_each_order_once";

fn order_id(i: usize) -> String {
    format!("mp-{i:05}")
}

/// Child role: `CHILD_ENV` = "<index>;<schema>".
async fn claim_all(spec: &str) {
    let (index, schema) = match spec.split_once(';') {
        Some((i, s)) => (i.parse::<usize>().expect("child index"), s),
        None => panic!("bad {CHILD_ENV}: {spec}"),
    };
    let store = PgStoreOptions::new()
        .schema(schema)
        .max_connections(TASKS as u32)
        // No restart here: skip the liveness ping so the run measures claims, not pings.
        .test_before_acquire(false)
        .connect(&ordermeta_testkit::database_url())
        .await
        .expect("child connect");
    let store = Arc::new(store);
    let tasks = (0..TASKS).map(|t| {
        let store = store.clone();
        tokio::spawn(async move {
            // Every task walks all orders, each from its own starting point, so claims collide.
            let start = (index * TASKS + t) * ORDERS / (PROCESSES * TASKS);
            let mut won = Vec::new();
            for k in 0..ORDERS {
                let id = order_id((start + k) % ORDERS);
                match store.claim_for_cancel(&id).await {
                    Ok(m) => {
                        assert_eq!(m.status, OrderStatus::Cancelling);
                        won.push(id);
                    }
                    Err(StoreError::StatusConflict { current, .. }) => {
                        assert_eq!(current, OrderStatus::Cancelling, "{id}");
                    }
                    Err(e) => panic!("claim {id}: {e}"),
                }
            }
            won
        })
    });
    let mut won = Vec::new();
    for t in futures::future::join_all(tasks).await {
        won.extend(t.expect("claim task"));
    }
    store.close().await;
    for id in won {
        println!("WON={id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_processes_claim_each_order_once() {
    if let Some(spec) = child::payload(CHILD_ENV) {
        claim_all(&spec).await;
        return;
    }
    let store = common::fresh_store("mp", PgStoreOptions::new()).await;
    let schema = store.schema().to_owned();
    let store = Arc::new(store);
    let outcome = {
        let store = store.clone();
        tokio::spawn(async move {
            let batch: Vec<_> = (0..ORDERS)
                .map(|i| short_term(&order_id(i), OrderStatus::Active, 1_000))
                .collect();
            store.record_many(&batch).await.expect("record_many");

            let children: Vec<_> = (0..PROCESSES)
                .map(|p| Child::spawn(TEST_NAME, CHILD_ENV, &format!("{p};{schema}")))
                .collect();
            let mut claims = Vec::new();
            for child in children {
                let out = child.wait_success_async(Duration::from_secs(300)).await;
                claims.extend(out.values("WON").into_iter().map(str::to_owned));
            }
            // Every order claimed, none more than once.
            assert_each_once(claims, ORDERS);

            let all = store
                .list_all(&ListQuery {
                    limit: MAX_PAGE_SIZE,
                    ..ListQuery::default()
                })
                .await
                .expect("list_all");
            assert_eq!(all.items.len(), ORDERS);
            for m in &all.items {
                assert_eq!(
                    (m.status, m.version, m.history.len()),
                    (OrderStatus::Cancelling, 2, 2),
                    "{}",
                    m.order_id
                );
            }
        })
        .await
    };
    common::drop_store(Arc::unwrap_or_clone(store)).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
