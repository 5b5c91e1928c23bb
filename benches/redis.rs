//! Redis store throughput beside bare redis-rs doing the same round trips with the same payload,
//! in the same run, on the same server (`REDIS_URL`, default `redis://127.0.0.1:6379`).
//!
//! - record:     ours = `record` (one EVALSHA: existence check, HSET, index ZADDs);
//!   bare = one HSET of the same fields.
//! - transition: ours = `claim_for_cancel` (one EVALSHA: compare-and-set, history append, index
//!   moves, the updated record decoded); bare = one pipelined HSET of the changed fields plus
//!   HGETALL of the record.
//!
//! Each benchmark runs 8 concurrent tasks over one connection (a multiplexed connection is
//! what both use). At the end the ratio ours/bare of throughput is printed.
//!
//! `CARGO_TARGET_DIR=/work/target-redis cargo bench -p ordermeta --bench redis --features redis`

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ordermeta::redis::RedisStore;
use ordermeta::redis::redis::{self, aio::ConnectionManager};
use ordermeta::{MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus};
use ordermeta_core::conformance::short_term;
// Not public API: the root package's dev-dependency enables `bench-internals` for it.
use ordermeta_redis::hash_fields;

const TASKS: u64 = 8;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// Per benchmark: total operations and total timed wall-clock, from our own timing loop.
static TOTALS: support::Totals = support::Totals::new();

fn order(n: u64, status: OrderStatus) -> OrderMetadata {
    short_term(&format!("bench-{n:012}"), status, 1_000_000)
}

/// Runs `op(n)` for `iters` fresh order numbers, spread over 8 concurrent tasks; the wall-clock.
async fn concurrently<F, Fut>(ids: Arc<Vec<u64>>, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (ids, op) = (ids.clone(), op.clone());
        set.spawn(async move {
            for &n in ids.iter().skip(t as usize).step_by(TASKS as usize) {
                op(n).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("bench task");
    }
    start.elapsed()
}

fn fresh_ids(iters: u64) -> Arc<Vec<u64>> {
    let first = NEXT_ID.fetch_add(iters, Ordering::Relaxed);
    Arc::new((first..first + iters).collect())
}

fn bare_key(ns: &str, n: u64) -> String {
    format!("{{{ns}}}:bare:{n}")
}

async fn bare_cleanup(conn: &ConnectionManager, ns: &str, ids: &[u64]) {
    for chunk in ids.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|&n| bare_key(ns, n)).collect();
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn.clone())
            .await
            .expect("del");
    }
}

fn bench(c: &mut Criterion) {
    let rt = support::multi_thread_runtime(2);
    let url = support::redis_url();
    let ns = support::unique_name("bench");
    let store = rt
        .block_on(RedisStore::options().namespace(&ns).connect(&url))
        .unwrap_or_else(|e| support::redis_missing(&url, e));
    let bare = rt
        .block_on(async {
            let client = redis::Client::open(url.as_str())?;
            ConnectionManager::new(client).await
        })
        .expect("bare connection");

    let mut g = c.benchmark_group("redis");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    g.bench_function("record/ordermeta", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let s = store.clone();
                let took = concurrently(fresh_ids(iters), move |n| {
                    let s = s.clone();
                    async move {
                        s.record(&order(n, OrderStatus::Pending))
                            .await
                            .expect("record");
                    }
                })
                .await;
                TOTALS.note("record/ordermeta", iters, took);
                store.delete_namespace().await.expect("cleanup");
                took
            }
        })
    });

    g.bench_function("record/bare_hset", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (bare, ns) = (bare.clone(), ns.clone());
            async move {
                let ids = fresh_ids(iters);
                let (c, n2) = (bare.clone(), ns.clone());
                let took = concurrently(ids.clone(), move |n| {
                    let (mut c, ns) = (c.clone(), n2.clone());
                    async move {
                        let fields = hash_fields(&order(n, OrderStatus::Pending));
                        let _: () = redis::cmd("HSET")
                            .arg(bare_key(&ns, n))
                            .arg(fields)
                            .query_async(&mut c)
                            .await
                            .expect("hset");
                    }
                })
                .await;
                TOTALS.note("record/bare_hset", iters, took);
                bare_cleanup(&bare, &ns, &ids).await;
                took
            }
        })
    });

    g.bench_function("transition/ordermeta", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let ids = fresh_ids(iters);
                // Untimed: the active orders to claim.
                for chunk in ids.chunks(500) {
                    let recs: Vec<_> = chunk
                        .iter()
                        .map(|&n| order(n, OrderStatus::Active))
                        .collect();
                    store.record_many(&recs).await.expect("setup");
                }
                let s = store.clone();
                let took = concurrently(ids, move |n| {
                    let s = s.clone();
                    async move {
                        let m = s
                            .claim_for_cancel(&format!("bench-{n:012}"))
                            .await
                            .expect("claim");
                        assert_eq!(m.version, 2);
                    }
                })
                .await;
                TOTALS.note("transition/ordermeta", iters, took);
                store.delete_namespace().await.expect("cleanup");
                took
            }
        })
    });

    g.bench_function("transition/bare_hset_hgetall", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (bare, ns) = (bare.clone(), ns.clone());
            async move {
                let ids = fresh_ids(iters);
                for chunk in ids.chunks(500) {
                    let mut p = redis::pipe();
                    for &n in chunk {
                        p.cmd("HSET")
                            .arg(bare_key(&ns, n))
                            .arg(hash_fields(&order(n, OrderStatus::Active)))
                            .ignore();
                    }
                    let _: () = p.query_async(&mut bare.clone()).await.expect("setup");
                }
                let (c, n2) = (bare.clone(), ns.clone());
                let took = concurrently(ids.clone(), move |n| {
                    let (mut c, ns) = (c.clone(), n2.clone());
                    async move {
                        // The same change our script makes, as plain commands.
                        let mut m = order(n, OrderStatus::Active);
                        let req = ordermeta::TransitionRequest::new(
                            &m.order_id,
                            &[OrderStatus::Active],
                            OrderStatus::Cancelling,
                        );
                        req.apply(&mut m);
                        let key = bare_key(&ns, n);
                        let mut p = redis::pipe();
                        p.cmd("HSET")
                            .arg(&key)
                            .arg("status")
                            .arg(m.status.as_str())
                            .arg("updated_at")
                            .arg(ordermeta::to_micros(m.updated_at))
                            .arg("version")
                            .arg(m.version)
                            .arg("history")
                            .arg(serde_history(&m))
                            .ignore();
                        p.cmd("HGETALL").arg(&key);
                        let (h,): (std::collections::HashMap<String, String>,) =
                            p.query_async(&mut c).await.expect("hset+hgetall");
                        assert_eq!(h.get("version").map(String::as_str), Some("2"));
                    }
                })
                .await;
                TOTALS.note("transition/bare_hset_hgetall", iters, took);
                bare_cleanup(&bare, &ns, &ids).await;
                took
            }
        })
    });
    g.finish();

    rt.block_on(store.delete_namespace()).expect("cleanup");
    report();
}

/// The history JSON as stored (what the script appends to, here written whole).
fn serde_history(m: &OrderMetadata) -> String {
    hash_fields(m)
        .into_iter()
        .find(|(f, _)| *f == "history")
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn report() {
    let rows: Vec<support::Row> = [
        ("record", "record/ordermeta", "record/bare_hset"),
        (
            "transition",
            "transition/ordermeta",
            "transition/bare_hset_hgetall",
        ),
    ]
    .into_iter()
    .map(|(name, ours, bare)| {
        let (ours, bare) = (TOTALS.ops_per_sec(ours), TOTALS.ops_per_sec(bare));
        support::Row {
            name: name.to_owned(),
            ours,
            bare,
            ratio: support::ratio(ours, bare),
        }
    })
    .collect();
    support::print_ratio_table(
        &format!("throughput with {TASKS} concurrent tasks, from the timed loops"),
        "bare redis-rs (HSET; HSET + HGETALL)",
        "ops/s",
        &rows,
        "(ratio: ours / bare throughput)",
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
