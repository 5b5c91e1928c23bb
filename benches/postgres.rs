//! PostgreSQL store vs bare sqlx running the same SQL on the same pool, in the same run.
//!
//! ```text
//! CARGO_TARGET_DIR=… cargo bench -p ordermeta --bench postgres --features postgres
//! ```
//!
//! Single operations (get, record, transition, list page, record_many of 100) and throughput
//! with 8 concurrent tasks. "Bare" binds values prepared in advance and reads the columns as
//! plain types; "ours" also encodes and validates (base64 protobuf OrderId, JSON history), so
//! the ratio is the store's whole overhead. After criterion, an interleaved timing loop
//! (ours and bare alternating call by call, medians, which keeps a busy machine's drift out of
//! the comparison) prints the ratio table. Uses `DATABASE_URL` (default local server) and a
//! schema of its own, dropped at the end.

mod support;

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use ordermeta::postgres::sqlx;
use ordermeta::postgres::sqlx::postgres::PgPool;
use ordermeta::postgres::{PgStore, PgStoreOptions};
use ordermeta::{ListQuery, MetadataStore, OrderMetadata, OrderStatus, TransitionRequest};
use ordermeta_core::conformance::{short_term, t0};
// Not public API: the root package's dev-dependency enables `bench-internals` for it.
use ordermeta_postgres::BenchSql;
use support::pg_bare::bare_decode;
use support::{Row as TableRow, interleaved, timed};
use tokio::runtime::Runtime;

const TASKS: usize = 8;
/// Orders the get and transition benches cycle through: a transition appends to the order's
/// history, so hammering one order would measure an ever longer jsonb instead of the store.
const POOL: usize = 4096;
const LIST_OWNER: &str = "dydx1zg69v7ys40x77y352eufp27daufrg4ncnjqz7q";

/// The store's own statements, run by bare sqlx.
struct Sql {
    store: BenchSql,
    /// `list` with an owner filter: the store's head and the clauses it appends for one.
    list: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        let store = BenchSql::new(schema).expect("the bench schema is a valid name");
        let list = format!(
            "{} AND owner = $1 ORDER BY order_id LIMIT $2",
            store.list_head
        );
        Sql { store, list }
    }
}

/// A record's values, prepared before timing starts (what a bare-sqlx program would hold).
struct Values {
    dydx_order_id: String,
    owner: String,
    history: String,
    /// History entries appended by bare transitions, to cancelling and back to active.
    entry_cancelling: String,
    entry_active: String,
}

struct Bench {
    store: Arc<PgStore>,
    pool: PgPool,
    sql: Sql,
    values: Values,
    template: OrderMetadata,
    next_id: AtomicU64,
    /// Flips the direction of the next transition of each bench order (active <-> cancelling).
    flips: Vec<AtomicU64>,
    /// The next bench order to transition.
    cursor: AtomicU64,
}

fn bench_order(i: usize) -> String {
    format!("bench-{i:03}")
}

impl Bench {
    async fn new() -> Self {
        let url = support::database_url();
        let store = PgStoreOptions::new()
            .schema(support::unique_name("bench"))
            .max_connections(TASKS as u32)
            .connect(&url)
            .await
            .unwrap_or_else(|e| support::postgres_missing(&url, e));
        // Orders the get/transition benches hit, and a page of 100 for list.
        let mut seed: Vec<_> = (0..POOL)
            .map(|i| short_term(&bench_order(i), OrderStatus::Active, 1_000))
            .collect();
        for i in 0..150 {
            let mut m = short_term(&format!("list-{i:03}"), OrderStatus::Active, 1_000);
            m.dydx_order_id.owner = LIST_OWNER.to_owned();
            seed.push(m);
        }
        for chunk in seed.chunks(1000) {
            store.record_many(chunk).await.expect("seed");
        }
        let template = short_term("template", OrderStatus::Pending, 1_000);
        let entry = |from, to| {
            let e = TransitionRequest::new("x", &[from], to)
                .at(t0())
                .history_entry()
                .to_json();
            format!("[{e}]")
        };
        let values = Values {
            dydx_order_id: template.dydx_order_id.to_base64(),
            owner: template.dydx_order_id.owner.clone(),
            history: ordermeta_core::backend::history_to_json(&template.history),
            entry_cancelling: entry(OrderStatus::Active, OrderStatus::Cancelling),
            entry_active: entry(OrderStatus::Cancelling, OrderStatus::Active),
        };
        Bench {
            pool: store.pool().clone(),
            sql: Sql::new(store.schema()),
            store: Arc::new(store),
            values,
            template,
            next_id: AtomicU64::new(0),
            flips: (0..POOL).map(|_| AtomicU64::new(0)).collect(),
            cursor: AtomicU64::new(0),
        }
    }

    fn fresh_id(&self, who: &str) -> String {
        format!("{who}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The next bench order to transition and the direction to take it in. Concurrent tasks
    /// get different orders (the cursor goes round 4,096 orders).
    fn next_transition(&self) -> (usize, OrderStatus, OrderStatus) {
        let i = (self.cursor.fetch_add(1, Ordering::Relaxed) as usize) % POOL;
        let (from, to) = self.direction(i);
        (i, from, to)
    }

    /// Direction of the next transition of bench order `i`.
    fn direction(&self, i: usize) -> (OrderStatus, OrderStatus) {
        if self.flips[i]
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(2)
        {
            (OrderStatus::Active, OrderStatus::Cancelling)
        } else {
            (OrderStatus::Cancelling, OrderStatus::Active)
        }
    }

    // ---- ours

    async fn ours_get(&self, i: usize) {
        let m = self.store.get(&bench_order(i % POOL)).await;
        black_box(m.expect("get").expect("present"));
    }

    async fn ours_record(&self) {
        let mut m = self.template.clone();
        m.order_id = self.fresh_id("ours");
        self.store.record(&m).await.expect("record");
    }

    async fn ours_record_many(&self) {
        let batch: Vec<_> = (0..100)
            .map(|_| {
                let mut m = self.template.clone();
                m.order_id = self.fresh_id("ours-many");
                m
            })
            .collect();
        self.store.record_many(&batch).await.expect("record_many");
    }

    async fn ours_transition(&self) {
        let (i, from, to) = self.next_transition();
        let req = TransitionRequest::new(bench_order(i), &[from], to).at(t0());
        black_box(self.store.transition(&req).await.expect("transition"));
    }

    async fn ours_list(&self) {
        let q = ListQuery {
            owner: Some(LIST_OWNER.to_owned()),
            limit: 100,
            ..ListQuery::default()
        };
        let page = self.store.list(&q).await.expect("list");
        assert_eq!(page.items.len(), 100);
        black_box(page);
    }

    // ---- bare sqlx, same SQL

    async fn bare_get(&self, i: usize) {
        let row = sqlx::query(&self.sql.store.select_one)
            .bind(bench_order(i % POOL))
            .fetch_optional(&self.pool)
            .await
            .expect("bare get")
            .expect("present");
        black_box(bare_decode(&row));
    }

    fn bare_insert_args(&self) -> (String, &OrderMetadata) {
        (self.fresh_id("bare"), &self.template)
    }

    async fn bare_record(&self) {
        let (id, m) = self.bare_insert_args();
        let v = &self.values;
        sqlx::query(&self.sql.store.insert_one)
            .bind(&id)
            .bind(&v.dydx_order_id)
            .bind(Some(1_000i64))
            .bind(None::<i64>)
            .bind(7i64)
            .bind(0i64)
            .bind(&v.owner)
            .bind(0i64)
            .bind(0i64)
            .bind(&m.symbol)
            .bind("buy")
            .bind(&m.quantity)
            .bind(m.price.as_deref())
            .bind("limit")
            .bind(m.placed_at)
            .bind(m.updated_at)
            .bind(None::<chrono::DateTime<chrono::Utc>>)
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind("pending")
            .bind(1i64)
            .bind(&v.history)
            .bind(None::<&str>)
            .bind(None::<chrono::DateTime<chrono::Utc>>)
            // label, indexer id, filled quantity, cancel confirmation
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(None::<chrono::DateTime<chrono::Utc>>)
            .execute(&self.pool)
            .await
            .expect("bare insert");
    }

    async fn bare_record_many(&self) {
        let n = 100;
        let m = &self.template;
        let v = &self.values;
        let ids: Vec<String> = (0..n).map(|_| self.fresh_id("bare-many")).collect();
        sqlx::query(&self.sql.store.insert_many)
            .bind(&ids)
            .bind(vec![v.dydx_order_id.as_str(); n])
            .bind(vec![Some(1_000i64); n])
            .bind(vec![None::<i64>; n])
            .bind(vec![7i64; n])
            .bind(vec![0i64; n])
            .bind(vec![v.owner.as_str(); n])
            .bind(vec![0i64; n])
            .bind(vec![0i64; n])
            .bind(vec![m.symbol.as_str(); n])
            .bind(vec!["buy"; n])
            .bind(vec![m.quantity.as_str(); n])
            .bind(vec![m.price.as_deref(); n])
            .bind(vec!["limit"; n])
            .bind(vec![m.placed_at; n])
            .bind(vec![m.updated_at; n])
            .bind(vec![None::<chrono::DateTime<chrono::Utc>>; n])
            .bind(vec![None::<&str>; n])
            .bind(vec![None::<&str>; n])
            .bind(vec!["pending"; n])
            .bind(vec![1i64; n])
            .bind(vec![v.history.as_str(); n])
            .bind(vec![None::<&str>; n])
            .bind(vec![None::<chrono::DateTime<chrono::Utc>>; n])
            .bind(vec![None::<&str>; n])
            .bind(vec![None::<&str>; n])
            .bind(vec![None::<&str>; n])
            .bind(vec![None::<chrono::DateTime<chrono::Utc>>; n])
            .execute(&self.pool)
            .await
            .expect("bare insert_many");
    }

    async fn bare_transition(&self) {
        let (i, from, to) = self.next_transition();
        let entry = match to {
            OrderStatus::Cancelling => &self.values.entry_cancelling,
            _ => &self.values.entry_active,
        };
        let row = sqlx::query(&self.sql.store.transition)
            .bind(bench_order(i))
            .bind(vec![from.as_str()])
            .bind(to.as_str())
            .bind(t0())
            .bind(None::<chrono::DateTime<chrono::Utc>>)
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(entry)
            // No lease: a plain transition clears it.
            .bind(None::<&str>)
            .bind(None::<chrono::DateTime<chrono::Utc>>)
            // An empty patch.
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(None::<chrono::DateTime<chrono::Utc>>)
            .fetch_optional(&self.pool)
            .await
            .expect("bare transition")
            .expect("transitioned");
        black_box(bare_decode(&row));
    }

    async fn bare_list(&self) {
        let rows = sqlx::query(&self.sql.list)
            .bind(LIST_OWNER)
            .bind(101i64)
            .fetch_all(&self.pool)
            .await
            .expect("bare list");
        let decoded: Vec<_> = rows.iter().take(100).map(bare_decode).collect();
        assert_eq!(decoded.len(), 100);
        black_box(decoded);
    }

    /// 8 tasks, each `per_task` operations of get + transition, at once.
    async fn concurrent(self: &Arc<Self>, ours: bool, per_task: usize) {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let b = self.clone();
                tokio::spawn(async move {
                    for k in 0..per_task {
                        let i = t + TASKS * k;
                        if ours {
                            b.ours_get(i).await;
                            b.ours_transition().await;
                        } else {
                            b.bare_get(i).await;
                            b.bare_transition().await;
                        }
                    }
                })
            })
            .collect();
        for t in futures_join(tasks).await {
            t.expect("task");
        }
    }
}

async fn futures_join<I, F>(it: I) -> Vec<F::Output>
where
    I: IntoIterator<Item = F>,
    F: Future,
{
    let mut out = Vec::new();
    for f in it {
        out.push(f.await);
    }
    out
}

fn criterion_benches(c: &mut Criterion, rt: &Runtime, b: &Arc<Bench>) {
    let mut g = c.benchmark_group("postgres");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut n = 0usize;
    g.bench_function("get/ours", |x| {
        x.to_async(rt).iter(|| {
            n += 1;
            b.ours_get(n)
        })
    });
    g.bench_function("get/bare", |x| {
        x.to_async(rt).iter(|| {
            n += 1;
            b.bare_get(n)
        })
    });
    g.bench_function("record/ours", |x| x.to_async(rt).iter(|| b.ours_record()));
    g.bench_function("record/bare", |x| x.to_async(rt).iter(|| b.bare_record()));
    g.bench_function("transition/ours", |x| {
        x.to_async(rt).iter(|| b.ours_transition())
    });
    g.bench_function("transition/bare", |x| {
        x.to_async(rt).iter(|| b.bare_transition())
    });
    g.bench_function("list100/ours", |x| x.to_async(rt).iter(|| b.ours_list()));
    g.bench_function("list100/bare", |x| x.to_async(rt).iter(|| b.bare_list()));
    g.throughput(Throughput::Elements(100));
    g.bench_function("record_many100/ours", |x| {
        x.to_async(rt).iter(|| b.ours_record_many())
    });
    g.bench_function("record_many100/bare", |x| {
        x.to_async(rt).iter(|| b.bare_record_many())
    });
    // 8 tasks × 10 (get + transition) per iteration.
    g.throughput(Throughput::Elements((TASKS * 10 * 2) as u64));
    g.bench_function("concurrent8/ours", |x| {
        x.to_async(rt).iter(|| b.concurrent(true, 10))
    });
    g.bench_function("concurrent8/bare", |x| {
        x.to_async(rt).iter(|| b.concurrent(false, 10))
    });
    g.finish();
}

/// Ours and bare alternating call by call (`pairs` pairs, the order flipped every pair), so
/// both see the same moment of a busy machine and of the server's commit flushes; the
/// medians of the single-call times.
async fn compare<FO, FutO, FB, FutB>(
    name: &str,
    pairs: usize,
    mut ours: FO,
    mut bare: FB,
) -> TableRow
where
    FO: FnMut(usize) -> FutO,
    FutO: Future<Output = ()>,
    FB: FnMut(usize) -> FutB,
    FutB: Future<Output = ()>,
{
    let m = interleaved(pairs, |i| timed(ours(i)), |i| timed(bare(i))).await;
    TableRow::micros(name, m.ours, m.bare, m.ratio_of_medians())
}

fn ratio_table(rt: &Runtime, b: &Arc<Bench>) {
    let rows: Vec<TableRow> = rt.block_on(async {
        let n = 800;
        vec![
            compare("get", n, |i| b.ours_get(i), |i| b.bare_get(i)).await,
            compare("record", n, |_| b.ours_record(), |_| b.bare_record()).await,
            compare(
                "transition",
                n,
                |_| b.ours_transition(),
                |_| b.bare_transition(),
            )
            .await,
            compare(
                "list (page of 100)",
                n / 4,
                |_| b.ours_list(),
                |_| b.bare_list(),
            )
            .await,
            compare(
                "record_many (100)",
                n / 4,
                |_| b.ours_record_many(),
                |_| b.bare_record_many(),
            )
            .await,
            compare(
                "8 tasks: get+transition ×20 each",
                31,
                |_| {
                    let b = b.clone();
                    async move { b.concurrent(true, 20).await }
                },
                |_| {
                    let b = b.clone();
                    async move { b.concurrent(false, 20).await }
                },
            )
            .await,
        ]
    });
    support::print_ratio_table(
        "ours / bare sqlx (same SQL, same pool; medians of calls interleaved one by one)",
        "bare sqlx",
        "µs",
        &rows,
        "",
    );
    if let Some(last) = rows.last() {
        // µs per round of 8 tasks × 20 × (get + transition).
        let ops = (TASKS * 20 * 2) as f64 * 1e6;
        println!(
            "throughput, 8 concurrent tasks (get + transition): ours {:.0} ops/s, bare {:.0} ops/s",
            ops / last.ours,
            ops / last.bare
        );
    }
}

fn main() {
    let rt = support::multi_thread_runtime(2);
    let b = Arc::new(rt.block_on(Bench::new()));
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &rt, &b);
    ratio_table(&rt, &b);
    c.final_summary();
    rt.block_on(async {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", b.store.schema());
        if let Err(e) = sqlx::query(&sql).execute(&b.pool).await {
            eprintln!("dropping the bench schema failed: {e}");
        }
        b.store.close().await;
    });
}
