//! A quick probe of group commit, run by hand (the lifecycle bench in the root `benches/` is
//! the measurement of record):
//!
//! ```text
//! cargo run --release -p ordermeta-postgres --example group_commit -- [tasks] [rounds] [url]
//! ```
//!
//! Each order's life (record `pending` → `active` → claim → `cancelled`) from `tasks`
//! concurrent tasks, for two seconds per round, rounds interleaved: "today" (group commit
//! off, a ping before every call), "off" (group commit off, pings only after idling), the
//! defaults, and `GC_VARIANTS` (writers x threshold, e.g. `4x8,8x8`); prints orders/s per
//! round and the medians, as ratios to "today".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ordermeta_core::conformance::short_term;
use ordermeta_core::{MetadataStore, MetadataStoreExt, OrderStatus, TransitionRequest};
use ordermeta_postgres::{PgStore, PgStoreOptions, sqlx};

async fn lifecycle(store: &PgStore, id: &str) {
    let m = short_term(id, OrderStatus::Pending, 1_000_000);
    store.record(&m).await.expect("record");
    store
        .transition(&TransitionRequest::new(
            id,
            &[OrderStatus::Pending],
            OrderStatus::Active,
        ))
        .await
        .expect("active");
    store.claim_for_cancel(id).await.expect("claim");
    store
        .transition(&TransitionRequest::new(
            id,
            &[OrderStatus::Cancelling],
            OrderStatus::Cancelled,
        ))
        .await
        .expect("cancelled");
}

async fn round(store: &PgStore, tasks: usize, tag: &str, for_: Duration) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (store, next, tag) = (store.clone(), next.clone(), tag.to_owned());
        handles.push(tokio::spawn(async move {
            while start.elapsed() < for_ {
                let i = next.fetch_add(1, Ordering::Relaxed);
                lifecycle(&store, &format!("{tag}-{i}")).await;
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    next.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tasks: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let url = args.get(3).cloned().unwrap_or_else(|| {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    });
    let schema = format!("gc_probe_{}", std::process::id());
    let base = PgStoreOptions::new().schema(&schema).max_connections(16);
    // Writers x threshold variants from the environment, e.g. GC_VARIANTS=4x4,8x8.
    let spec = std::env::var("GC_VARIANTS").unwrap_or_default();
    // "today": as before group commit and the idle threshold (a ping before every call).
    let today = base
        .clone()
        .group_commit(false)
        .ping_after_idle(Duration::ZERO);
    let mut variants = vec![
        ("today".to_owned(), today),
        ("off".to_owned(), base.clone().group_commit(false)),
        ("default".to_owned(), base.clone()),
    ];
    for v in spec.split(',').filter(|v| !v.is_empty()) {
        let (w, t) = v.split_once('x').expect("WxT");
        let opts = base
            .clone()
            .group_commit_writers(w.parse().expect("writers"))
            .group_commit_threshold(t.parse().expect("threshold"));
        variants.push((format!("on-{v}"), opts));
    }
    let mut stores = Vec::new();
    for (name, opts) in variants {
        stores.push((name, opts.connect(&url).await.expect("connect")));
    }
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); stores.len()];
    for r in 0..rounds {
        for (i, (name, store)) in stores.iter().enumerate() {
            let tag = format!("{name}-{r}");
            let rate = round(store, tasks, &tag, Duration::from_secs(2)).await;
            let stats = store.group_commit_stats();
            println!("round {r} {name:>7}: {rate:>8.0} orders/s  ({stats:?})");
            results[i].push(rate);
        }
    }
    let off = median(results[0].clone());
    for (i, (name, _)) in stores.iter().enumerate() {
        let m = median(results[i].clone());
        println!("{name:>7}: median {m:>8.0} orders/s, {:.2}x today", m / off);
    }
    if let Some((_, store)) = stores.first() {
        let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        let _ = sqlx::query(&drop).execute(store.pool()).await;
    }
}
