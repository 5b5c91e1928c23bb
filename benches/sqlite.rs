//! SQLite store latency beside bare sqlx running the same SQL, in the same run, on the same
//! kind of file (WAL, `synchronous = NORMAL`, 5 s busy timeout, no ping before acquire), each
//! side on its own database of 100k orders in one temp directory.
//!
//! - record:           ours = `record` (validate, encode, one INSERT);
//!   bare = the same INSERT with the 22 column values already encoded.
//! - get:              ours = `get` of a random one of 100k orders (SELECT, strict decode:
//!   base64 + protobuf OrderId, JSON history, validation); bare = the same SELECT, every
//!   column read as a raw value.
//! - claim + complete: ours = `claim_for_cancel` then `transition` cancelling -> cancelled;
//!   bare = the same two `UPDATE … RETURNING` statements, returned columns read raw.
//! - expire:           ours = `expire` at a height 10 blocks on, over a table of 100k+ open
//!   orders of which 10 are due (index-driven); bare = the same UPDATE.
//!
//! So "bare" is the driver alone: the ratio is everything ordermeta adds (validation,
//! encoding, decoding, error mapping, the write lock, the pool split). One operation at a
//! time (latency). At the end the ratio ours / bare of the time per operation is printed
//! twice: from criterion's runs (mean over this file's own timing loop, warm-up included),
//! and from rounds that run ours and bare back to back (median of 31 round ratios), which a machine whose load
//! changes during the run (other builds on the same cores) skews far less. Then a one-shot
//! sweep that expires 100k orders in one call.
//!
//! `CARGO_TARGET_DIR=/work/target-sqlite cargo bench -p ordermeta --bench sqlite --features sqlite`

mod support;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use ordermeta::sqlite::SqliteStore;
use ordermeta::sqlite::sqlx::{
    self, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use ordermeta::{
    ExpireRequest, MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus, TransitionRequest,
    now, to_micros,
};
use ordermeta_core::conformance::short_term;
use ordermeta_core::{ANONYMOUS_CLAIM, DEFAULT_LEASE};
// Not public API: the root package's dev-dependency enables `bench-internals` for it.
use ordermeta_sqlite::bench_sql;
use support::sqlite_bare::{
    BareTransition, Encoded, SCHEMA, bare_insert, bare_transition, encode, read_raw,
};
use support::{Row, Totals};

/// Orders in each database before the benchmarks start.
const BASE: u64 = 100_000;
/// Orders each `expire` call finds due.
const DUE_PER_CALL: u64 = 10;
/// Good-til of orders that must never expire during the run.
const FAR: u32 = 1_000_000_000;

/// Per benchmark (`<operation>/<side>`): operations and time, from our own timing loop.
static TOTALS: Totals = Totals::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn fresh(prefix: &str, n: u64) -> Vec<String> {
    let first = NEXT_ID.fetch_add(n, Ordering::Relaxed);
    (first..first + n)
        .map(|i| format!("{prefix}-{i:09}"))
        .collect()
}

/// Bare sqlx on its own database, running the store's own statements.
struct Bare {
    pool: SqlitePool,
    insert: &'static str,
    select: &'static str,
    transition: &'static str,
    expire: &'static str,
}

async fn bare_open(path: &Path) -> Bare {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .test_before_acquire(false)
        .connect_with(opts)
        .await
        .expect("bare pool");
    for migration in SCHEMA {
        sqlx::raw_sql(migration)
            .execute(&pool)
            .await
            .expect("bare schema");
    }
    Bare {
        pool,
        insert: bench_sql::INSERT,
        select: bench_sql::SELECT_ONE,
        transition: bench_sql::transition(1).expect("the transition from one status"),
        expire: bench_sql::EXPIRE_BY_BLOCK,
    }
}

impl Bare {
    async fn record_many(&self, metas: &[OrderMetadata]) {
        let enc: Vec<Encoded> = metas.iter().map(encode).collect();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .expect("begin");
        for e in &enc {
            bare_insert(self.insert, e, &mut *tx).await;
        }
        tx.commit().await.expect("commit");
    }

    /// `lease`: the claim's token and until (µs), written as the store writes them.
    async fn transition(
        &self,
        id: &str,
        (from, to): (&str, &str),
        entry: &str,
        cancelled: Option<i64>,
        lease: Option<(&str, i64)>,
    ) {
        let t = BareTransition {
            id,
            from,
            to,
            at: to_micros(now()),
            entry,
            cancelled_at: cancelled,
            tx_hash: None,
            cancel_tx_hash: (to == "cancelled").then_some("CANCELHASH"),
            lease,
        };
        std::hint::black_box(bare_transition(self.transition, t, &self.pool).await);
    }
}

fn active(ids: &[String], gtb: impl Fn(usize) -> u32) -> Vec<OrderMetadata> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| short_term(id, OrderStatus::Active, gtb(i)))
        .collect()
}

/// xorshift: the random ids `get` reads.
fn next_random(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Expiry state of one side: the height expired so far and the highest good-til recorded.
#[derive(Clone, Copy)]
struct Clock {
    height: u32,
    recorded_to: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Ours,
    Bare,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Ours => "ordermeta",
            Side::Bare => "bare",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Record,
    Get,
    ClaimComplete,
    Expire,
}

impl Op {
    const ALL: [Op; 4] = [Op::Record, Op::Get, Op::ClaimComplete, Op::Expire];

    fn name(self) -> &'static str {
        match self {
            Op::Record => "record",
            Op::Get => "get",
            Op::ClaimComplete => "claim_complete",
            Op::Expire => "expire",
        }
    }

    /// Operations per round of the interleaved comparison.
    fn round(self) -> u64 {
        match self {
            Op::Record => 200,
            Op::Get => 500,
            Op::ClaimComplete | Op::Expire => 100,
        }
    }
}

struct Ctx {
    store: SqliteStore,
    bare: Bare,
    clocks: Mutex<[Clock; 2]>,
    seed: AtomicU64,
}

impl Ctx {
    fn clock(&self, side: Side) -> Clock {
        self.clocks.lock().unwrap_or_else(|p| p.into_inner())[side as usize]
    }

    fn set_clock(&self, side: Side, c: Clock) {
        self.clocks.lock().unwrap_or_else(|p| p.into_inner())[side as usize] = c;
    }

    async fn record_many(&self, side: Side, metas: &[OrderMetadata]) {
        for chunk in metas.chunks(10_000) {
            match side {
                Side::Ours => self.store.record_many(chunk).await.expect("record_many"),
                Side::Bare => self.bare.record_many(chunk).await,
            }
        }
    }

    async fn bare_expire(&self, req: &ExpireRequest, height: u32) -> u64 {
        let entry = req
            .transition_for("", OrderStatus::Active)
            .history_entry()
            .to_json();
        sqlx::query(self.bare.expire)
            .bind(to_micros(req.at))
            .bind(entry)
            .bind(i64::from(height))
            .execute(&self.bare.pool)
            .await
            .expect("bare expire")
            .rows_affected()
    }

    /// Runs `iters` operations `op` on `side`; returns the time of the operations alone
    /// (preparation, such as recording the orders a claim needs, is not timed).
    async fn run(&self, op: Op, side: Side, iters: u64) -> Duration {
        match op {
            Op::Record => self.record(side, iters).await,
            Op::Get => self.get(side, iters).await,
            Op::ClaimComplete => self.claim_complete(side, iters).await,
            Op::Expire => self.expire(side, iters).await,
        }
    }

    async fn record(&self, side: Side, iters: u64) -> Duration {
        let recs = active(&fresh("rec", iters), |_| FAR);
        match side {
            Side::Ours => {
                let start = Instant::now();
                for m in &recs {
                    self.store.record(m).await.expect("record");
                }
                start.elapsed()
            }
            Side::Bare => {
                let enc: Vec<Encoded> = recs.iter().map(encode).collect();
                let start = Instant::now();
                for e in &enc {
                    bare_insert(self.bare.insert, e, &self.bare.pool).await;
                }
                start.elapsed()
            }
        }
    }

    async fn get(&self, side: Side, iters: u64) -> Duration {
        let mut x = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            | 1;
        let ids: Vec<String> = (0..iters)
            .map(|_| format!("base-{:06}", next_random(&mut x) % BASE))
            .collect();
        let start = Instant::now();
        for id in &ids {
            match side {
                Side::Ours => {
                    std::hint::black_box(self.store.get(id).await.expect("get").expect("present"));
                }
                Side::Bare => {
                    let row = sqlx::query(self.bare.select)
                        .bind(id.as_str())
                        .fetch_optional(&self.bare.pool)
                        .await
                        .expect("get")
                        .expect("present");
                    std::hint::black_box(read_raw(&row));
                }
            }
        }
        start.elapsed()
    }

    async fn claim_complete(&self, side: Side, iters: u64) -> Duration {
        let ids = fresh("claim", iters);
        self.record_many(side, &active(&ids, |_| FAR)).await;
        let start = Instant::now();
        for id in &ids {
            let claim = TransitionRequest::new(
                id.as_str(),
                &[OrderStatus::Active],
                OrderStatus::Cancelling,
            )
            .reason("cancel claimed");
            let done = TransitionRequest::new(
                id.as_str(),
                &[OrderStatus::Cancelling],
                OrderStatus::Cancelled,
            )
            .cancel_tx_hash("CANCELHASH");
            match side {
                Side::Ours => {
                    std::hint::black_box(self.store.claim_for_cancel(id).await.expect("claim"));
                    std::hint::black_box(self.store.transition(&done).await.expect("complete"));
                }
                Side::Bare => {
                    // The history entries, as a hand-written repository would build them.
                    let entry = claim.history_entry().to_json();
                    // The lease a claim writes, as `claim_for_cancel` takes it.
                    let until =
                        now() + chrono::Duration::from_std(DEFAULT_LEASE).unwrap_or_default();
                    let lease = (ANONYMOUS_CLAIM, to_micros(until));
                    self.bare
                        .transition(id, ("active", "cancelling"), &entry, None, Some(lease))
                        .await;
                    let entry = done.history_entry().to_json();
                    self.bare
                        .transition(
                            id,
                            ("cancelling", "cancelled"),
                            &entry,
                            Some(to_micros(done.at)),
                            None,
                        )
                        .await;
                }
            }
        }
        start.elapsed()
    }

    /// `iters` calls, each finding DUE_PER_CALL orders due among the 100k+ open ones.
    async fn expire(&self, side: Side, iters: u64) -> Duration {
        let mut clock = self.clock(side);
        let needed = (iters * DUE_PER_CALL) as u32;
        if clock.recorded_to - clock.height < needed {
            // Untimed: more orders falling due, with good-til right after the last ones.
            let from = clock.recorded_to;
            let n = needed + BASE as u32 / 10;
            let metas = active(&fresh("due", u64::from(n)), |i| from + 1 + i as u32);
            self.record_many(side, &metas).await;
            clock.recorded_to += n;
        }
        let start = Instant::now();
        for _ in 0..iters {
            clock.height += DUE_PER_CALL as u32;
            let req = ExpireRequest::new(Some(clock.height), None);
            let n = match side {
                Side::Ours => self.store.expire(&req).await.expect("expire"),
                Side::Bare => self.bare_expire(&req, clock.height).await,
            };
            assert_eq!(n, DUE_PER_CALL, "{side:?}: due orders per call");
        }
        let took = start.elapsed();
        self.set_clock(side, clock);
        took
    }

    /// One call expiring 100k orders (recorded first, untimed).
    async fn sweep(&self, side: Side) -> Duration {
        let mut clock = self.clock(side);
        // Whatever fell due so far goes first, untimed.
        let catch_up = ExpireRequest::new(Some(clock.recorded_to), None);
        match side {
            Side::Ours => {
                self.store.expire(&catch_up).await.expect("catch up");
            }
            Side::Bare => {
                self.bare_expire(&catch_up, clock.recorded_to).await;
            }
        }
        let height = clock.recorded_to + 1;
        self.record_many(side, &active(&fresh("sweep", BASE), |_| height))
            .await;
        let req = ExpireRequest::new(Some(height), None);
        let start = Instant::now();
        let n = match side {
            Side::Ours => self.store.expire(&req).await.expect("sweep"),
            Side::Bare => self.bare_expire(&req, height).await,
        };
        let took = start.elapsed();
        assert_eq!(n, BASE, "the sweep expires exactly the 100k orders");
        clock.height = height;
        clock.recorded_to = height;
        self.set_clock(side, clock);
        took
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rt = support::current_thread_runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("ours.db"))
            .await
            .expect("open store");
        let bare = bare_open(&dir.path().join("bare.db")).await;
        let ctx = Ctx {
            store,
            bare,
            clocks: Mutex::new(
                [Clock {
                    height: 0,
                    recorded_to: BASE as u32,
                }; 2],
            ),
            seed: AtomicU64::new(0x2545_F491_4F6C_DD1D),
        };
        // The base: 100k open orders on each side, good-til 1..=100k, for get and expire.
        let ids: Vec<String> = (0..BASE).map(|i| format!("base-{i:06}")).collect();
        let start = Instant::now();
        let metas = active(&ids, |i| i as u32 + 1);
        ctx.record_many(Side::Ours, &metas).await;
        ctx.record_many(Side::Bare, &metas).await;
        eprintln!("populated 2 x {BASE} orders in {:?}", start.elapsed());
        ctx
    });

    let mut g = c.benchmark_group("sqlite");
    for op in Op::ALL {
        for side in [Side::Ours, Side::Bare] {
            let ctx = &ctx;
            g.bench_function(format!("{}/{}", op.name(), side.name()), |b| {
                b.to_async(&rt).iter_custom(|iters| async move {
                    let took = ctx.run(op, side, iters).await;
                    TOTALS.note(&format!("{}/{}", op.name(), side.name()), iters, took);
                    took
                })
            });
        }
    }
    g.finish();
    c.final_summary();

    // The same comparison interleaved: each round runs ours and bare back to back (who goes
    // first alternates), so a change in machine load hits both sides of a round alike. The
    // ratio is the median of the rounds' ratios.
    const ROUNDS: usize = 31;
    let interleaved: Vec<Row> = rt.block_on(async {
        let mut rows = Vec::new();
        let ctx = &ctx;
        for op in Op::ALL {
            let n = op.round();
            let per_op = |side| async move { ctx.run(op, side, n).await / n as u32 };
            let m =
                support::interleaved(ROUNDS, |_| per_op(Side::Ours), |_| per_op(Side::Bare)).await;
            rows.push(Row::micros(op.name(), m.ours, m.bare, m.median_ratio));
        }
        rows
    });
    let sweep = rt.block_on(async { [ctx.sweep(Side::Ours).await, ctx.sweep(Side::Bare).await] });
    rt.block_on(async {
        ctx.store.close().await;
        ctx.bare.pool.close().await;
    });

    let criterion: Vec<Row> = Op::ALL
        .into_iter()
        .map(|op| {
            let mean = |side: Side| TOTALS.secs_per_op(&format!("{}/{}", op.name(), side.name()));
            let (ours, bare) = (mean(Side::Ours), mean(Side::Bare));
            Row {
                name: op.name().to_owned(),
                ours: ours * 1e6,
                bare: bare * 1e6,
                ratio: support::ratio(ours, bare),
            }
        })
        .collect();
    let title = "ordermeta SQLite store vs bare sqlx, same SQL, same run (time per operation)";
    support::print_ratio_table(
        &format!("{title}: criterion"),
        "bare sqlx",
        "µs",
        &criterion,
        "(mean over all timed iterations, warm-up included)",
    );
    support::print_ratio_table(
        &format!("{title}: interleaved"),
        "bare sqlx",
        "µs",
        &interleaved,
        &format!(
            "(medians over {ROUNDS} rounds, each running both sides back to back; ratio = median \
             of the rounds' ratios)"
        ),
    );
    println!(
        "expire_sweep: ordermeta {:.1} ms, bare sqlx {:.1} ms, ratio {:.3} (one call expiring \
         {BASE} orders)",
        sweep[0].as_secs_f64() * 1e3,
        sweep[1].as_secs_f64() * 1e3,
        support::ratio(sweep[0].as_secs_f64(), sweep[1].as_secs_f64())
    );
}
