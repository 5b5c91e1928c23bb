//! 4 OS processes × 8 tasks each claim the same 2,000 orders: every order is claimed exactly
//! once, across processes.
//!
//! The test re-invokes its own binary with `ORDERMETA_PG_CLAIM_CHILD` set; a child claims
//! and writes the ids it won to a file the parent reads.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;

use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    ListQuery, MAX_PAGE_SIZE, MetadataStore, MetadataStoreExt, OrderStatus, StoreError,
};
use ordermeta_postgres::PgStoreOptions;

const PROCESSES: usize = 4;
const TASKS: usize = 8;
const ORDERS: usize = 2_000;
const CHILD_ENV: &str = "ORDERMETA_PG_CLAIM_CHILD";
const TEST_NAME: &str = "four_processes_claim_each_order_once";

fn order_id(i: usize) -> String {
    format!("mp-{i:05}")
}

/// Child role: `CHILD_ENV` = "<index>;<schema>;<output file>".
async fn child(spec: &str) {
    let mut parts = spec.splitn(3, ';');
    let (index, schema, out) = match (parts.next(), parts.next(), parts.next()) {
        (Some(i), Some(s), Some(o)) => (i.parse::<usize>().expect("child index"), s, o),
        _ => panic!("bad {CHILD_ENV}: {spec}"),
    };
    let store = PgStoreOptions::new()
        .schema(schema)
        .max_connections(TASKS as u32)
        // No restart here: skip the liveness ping so the run measures claims, not pings.
        .test_before_acquire(false)
        .connect(&common::database_url())
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
    std::fs::write(out, won.join("\n")).expect("write claimed ids");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_processes_claim_each_order_once() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec).await;
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

            let dir = tempfile::tempdir().expect("tempdir");
            let exe = std::env::current_exe().expect("current_exe");
            let children: Vec<_> = (0..PROCESSES)
                .map(|p| {
                    let out = dir.path().join(format!("claims-{p}"));
                    let child = Command::new(&exe)
                        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
                        .env(CHILD_ENV, format!("{p};{schema};{}", out.display()))
                        .spawn()
                        .expect("spawn child");
                    (child, out)
                })
                .collect();
            let mut claims: HashMap<String, usize> = HashMap::new();
            for (p, (mut child, out)) in children.into_iter().enumerate() {
                let status = tokio::task::block_in_place(|| child.wait()).expect("wait child");
                assert!(status.success(), "child {p} failed: {status}");
                let text = std::fs::read_to_string(&out).expect("child output");
                for id in text.lines().filter(|l| !l.is_empty()) {
                    *claims.entry(id.to_owned()).or_default() += 1;
                }
            }
            assert_eq!(claims.len(), ORDERS, "every order claimed");
            let twice: Vec<_> = claims.iter().filter(|(_, n)| **n != 1).collect();
            assert!(twice.is_empty(), "claimed more than once: {twice:?}");

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
