//! Quick lifecycle throughput of the SQLite store: group commit on, off, and bare sqlx (one
//! statement per call, one writer connection), interleaved rounds, medians.
//!
//! Each order: record pending → active → claim (cancelling, lease) → cancelled. First a lone
//! caller, the three sides taking turns order by order (what group commit costs one task),
//! then rounds of 1, 8 and 64 tasks. The root package's `benches/lifecycle.rs` is the
//! reference figure (ours beside bare); this one adds group commit off beside on.
//!
//! `cargo bench -p ordermeta-sqlite --features bench-internals --bench group_commit`, with
//! `SYNC=normal|full`, `TASKS=0` (lone caller only) or `1|8|64`, `ROUNDS` (5), `ORDERS` (640
//! per round), `AA=1` (both "on" and "off" without group commit: the noise alone).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ordermeta_core::backend::history_to_json;
use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    MetadataStore, MetadataStoreExt, OrderStatus, TransitionRequest, now, to_micros,
};
use ordermeta_sqlite::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use ordermeta_sqlite::sqlx::{self, SqlitePool};
use ordermeta_sqlite::{SqliteStore, Synchronous, bench_sql};

const SCHEMA: [&str; 3] = [
    include_str!("../migrations/0001_create_dydx_order_metadata.sql"),
    include_str!("../migrations/0002_claim_leases.sql"),
    include_str!("../migrations/0003_lookup_and_chain_fields.sql"),
];

#[derive(Clone)]
enum Side {
    Ours(Arc<SqliteStore>),
    Bare(SqlitePool),
}

/// One transition of the bare lifecycle: from, to, and the lease it writes (token, end µs).
type Step<'a> = (&'a str, &'a str, Option<(&'a str, i64)>);

async fn bare_lifecycle(pool: &SqlitePool, id: &str) {
    let m = short_term(id, OrderStatus::Pending, 1_000_000);
    let d = &m.dydx_order_id;
    sqlx::query(bench_sql::INSERT)
        .bind(m.order_id.as_str())
        .bind(d.to_base64())
        .bind(m.good_til.block().map(i64::from))
        .bind(m.good_til.block_time().map(i64::from))
        .bind(i64::from(d.client_id))
        .bind(i64::from(d.subaccount_number))
        .bind(d.owner.as_str())
        .bind(i64::from(d.order_flags))
        .bind(i64::from(d.clob_pair_id))
        .bind(m.symbol.as_str())
        .bind(m.side.as_str())
        .bind(m.quantity.as_str())
        .bind(m.price.as_deref())
        .bind(m.order_type.as_str())
        .bind(to_micros(m.placed_at))
        .bind(to_micros(m.updated_at))
        .bind(None::<i64>)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(m.status.as_str())
        .bind(m.version as i64)
        .bind(history_to_json(&m.history))
        .bind(None::<&str>)
        .bind(None::<i64>)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<i64>)
        .execute(pool)
        .await
        .expect("insert");
    let steps: [Step<'_>; 3] = [
        ("pending", "active", None),
        (
            "active",
            "cancelling",
            Some(("anonymous", to_micros(now()) + 30_000_000)),
        ),
        ("cancelling", "cancelled", None),
    ];
    for (from, to, lease) in steps {
        let at = to_micros(now());
        let entry = format!(r#"{{"status":"{to}","at":"x","reason":null}}"#);
        let row = sqlx::query(bench_sql::transition(1).expect("sql"))
            .bind(to)
            .bind(at)
            .bind((to == "cancelled").then_some(at))
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(lease.map(|l| l.0))
            .bind(lease.map(|l| l.1))
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(None::<i64>)
            .bind(entry)
            .bind(id)
            .bind(from)
            .fetch_optional(pool)
            .await
            .expect("transition");
        assert!(row.is_some());
    }
}

async fn ours_lifecycle(store: &SqliteStore, id: &str) {
    store
        .record(&short_term(id, OrderStatus::Pending, 1_000_000))
        .await
        .expect("record");
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

/// Orders per second of `tasks` tasks doing `per_task` lifecycles each.
async fn round(side: &Side, tag: &str, tasks: usize, per_task: usize) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let side = side.clone();
        let tag = format!("{tag}-{t}");
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                let id = format!("{tag}-{i}");
                match &side {
                    Side::Ours(s) => ours_lifecycle(s, &id).await,
                    Side::Bare(p) => bare_lifecycle(p, &id).await,
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    (tasks * per_task) as f64 / start.elapsed().as_secs_f64()
}

/// One task, the sides taking turns order by order (the same noise for each): median time
/// of one order's lifecycle per side, and the median of the per-order ratios.
async fn lone(sides: &[(&str, Side)], sync: &str, orders: usize) {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    for i in 0..orders {
        let mut order: Vec<usize> = (0..sides.len()).collect();
        order.rotate_left(i % sides.len());
        for k in order {
            let (name, side) = &sides[k];
            let id = format!("lone-{name}-{sync}-{i}");
            let start = Instant::now();
            match side {
                Side::Ours(s) => ours_lifecycle(s, &id).await,
                Side::Bare(p) => bare_lifecycle(p, &id).await,
            }
            times[k].push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    let ratio =
        |a: usize, b: usize| median(times[a].iter().zip(&times[b]).map(|(x, y)| x / y).collect());
    println!(
        "{sync} lone (per order, interleaved, {orders} orders): on {:.0} µs off {:.0} µs bare {:.0} µs | time on/off {:.3}x on/bare {:.3}x off/bare {:.3}x",
        median(times[0].clone()),
        median(times[1].clone()),
        median(times[2].clone()),
        ratio(0, 1),
        ratio(0, 2),
        ratio(1, 2),
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let orders: usize = std::env::var("ORDERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(640);
    let dir = tempfile::tempdir().expect("tempdir");
    let only_sync = std::env::var("SYNC").ok();
    let only_tasks: Option<usize> = std::env::var("TASKS").ok().and_then(|s| s.parse().ok());
    for sync in [Synchronous::Normal, Synchronous::Full] {
        if only_sync
            .as_deref()
            .is_some_and(|s| !format!("{sync:?}").eq_ignore_ascii_case(s))
        {
            continue;
        }
        // AA=1: both "on" and "off" without group commit (what the noise alone gives).
        let aa = std::env::var("AA").is_ok();
        let on = SqliteStore::options()
            .synchronous(sync)
            .group_commit(!aa)
            .open(dir.path().join(format!("on-{sync:?}.db")))
            .await
            .expect("open");
        let off = SqliteStore::options()
            .synchronous(sync)
            .group_commit(false)
            .open(dir.path().join(format!("off-{sync:?}.db")))
            .await
            .expect("open");
        let opts = SqliteConnectOptions::new()
            .filename(dir.path().join(format!("bare-{sync:?}.db")))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                Synchronous::Full => SqliteSynchronous::Full,
                _ => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(5));
        let bare = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .expect("bare");
        for s in SCHEMA {
            sqlx::raw_sql(s).execute(&bare).await.expect("schema");
        }
        let sides = [
            ("on", Side::Ours(Arc::new(on))),
            ("off", Side::Ours(Arc::new(off))),
            ("bare", Side::Bare(bare)),
        ];
        if only_tasks.is_none_or(|t| t <= 1) {
            lone(&sides, &format!("{sync:?}"), orders).await;
        }
        for tasks in [1usize, 8, 64] {
            if only_tasks.is_some_and(|t| t != tasks) {
                continue;
            }
            let per_task = (orders / tasks).max(1);
            let per_task = if tasks == 1 { per_task / 2 } else { per_task };
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
            let mut ratio_on_bare = Vec::new();
            let mut ratio_on_off = Vec::new();
            for r in 0..rounds {
                let mut this = Vec::new();
                // Rotate which side goes first, so that none always follows the same one.
                let mut order: Vec<usize> = (0..sides.len()).collect();
                order.rotate_left(r % sides.len());
                for k in order {
                    let (name, side) = &sides[k];
                    let rate = round(
                        side,
                        &format!("{name}-{sync:?}-{tasks}-{r}"),
                        tasks,
                        per_task,
                    )
                    .await;
                    rates[k].push(rate);
                    this.push((k, rate));
                }
                this.sort_by_key(|(k, _)| *k);
                let this: Vec<f64> = this.into_iter().map(|(_, r)| r).collect();
                ratio_on_bare.push(this[0] / this[2]);
                ratio_on_off.push(this[0] / this[1]);
            }
            println!(
                "{sync:?} tasks={tasks:>2}: on {:>7.0}/s off {:>7.0}/s bare {:>7.0}/s | on/bare {:.2}x on/off {:.2}x (median of {rounds} round ratios)",
                median(rates[0].clone()),
                median(rates[1].clone()),
                median(rates[2].clone()),
                median(ratio_on_bare),
                median(ratio_on_off),
            );
        }
    }
}
