//! What the benches share (each bench is its own crate and includes this module): the tokio
//! runtime, the server URLs and unique names of `ordermeta_testkit`, totals of criterion's
//! timing loops, interleaved rounds of ours against bare, and the ratio table.
#![allow(dead_code, unused_imports)] // each bench uses a subset

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use ordermeta_testkit::env::{postgres_missing, redis_missing};
pub use ordermeta_testkit::{database_url, redis_url, unique_name};

/// A runtime on the bench's own thread: one operation at a time, no hand-off between threads.
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A runtime with `workers` threads, for benches with concurrent tasks.
pub fn multi_thread_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Operations and time per benchmark, summed over criterion's timing loops (warm-up
/// included), for the ratio table printed after criterion's own report.
#[derive(Debug)]
pub struct Totals(Mutex<BTreeMap<String, (u64, Duration)>>);

impl Totals {
    /// No benchmark noted yet (usable in a `static`).
    pub const fn new() -> Self {
        Totals(Mutex::new(BTreeMap::new()))
    }

    /// `iters` operations of benchmark `name` took `took`.
    pub fn note(&self, name: &str, iters: u64, took: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let e = t.entry(name.to_owned()).or_default();
        e.0 += iters;
        e.1 += took;
    }

    /// The mean time per operation of `name`, in seconds (NaN if it never ran).
    pub fn secs_per_op(&self, name: &str) -> f64 {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.get(name)
            .map(|(n, d)| d.as_secs_f64() / (*n).max(1) as f64)
            .unwrap_or(f64::NAN)
    }

    /// Operations per second of `name` (0 if it never ran).
    pub fn ops_per_sec(&self, name: &str) -> f64 {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.get(name)
            .map(|(n, d)| *n as f64 / d.as_secs_f64().max(f64::EPSILON))
            .unwrap_or(0.0)
    }
}

/// The median (the upper one of an even count).
pub fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// `ours / bare`, NaN when bare is not positive.
pub fn ratio(ours: f64, bare: f64) -> f64 {
    if bare > 0.0 { ours / bare } else { f64::NAN }
}

/// The time of one call.
pub async fn timed<Fut: Future<Output = ()>>(f: Fut) -> Duration {
    let started = Instant::now();
    f.await;
    started.elapsed()
}

/// What [`interleaved`] measured: medians over the rounds.
#[derive(Clone, Copy, Debug)]
pub struct Interleaved {
    /// Median time of ours.
    pub ours: Duration,
    /// Median time of bare.
    pub bare: Duration,
    /// Median of the rounds' ratios ours / bare.
    pub median_ratio: f64,
}

impl Interleaved {
    /// The ratio of the medians, ours / bare.
    pub fn ratio_of_medians(&self) -> f64 {
        ratio(self.ours.as_secs_f64(), self.bare.as_secs_f64())
    }
}

/// `rounds` rounds, each running `ours(round)` and `bare(round)` back to back (who goes first
/// alternates), so a change in machine load hits both sides of a round alike. Each call
/// returns the time it measured (of one call, or per operation of a batch).
pub async fn interleaved<FO, FutO, FB, FutB>(
    rounds: usize,
    mut ours: FO,
    mut bare: FB,
) -> Interleaved
where
    FO: FnMut(usize) -> FutO,
    FutO: Future<Output = Duration>,
    FB: FnMut(usize) -> FutB,
    FutB: Future<Output = Duration>,
{
    let (mut o, mut b, mut r) = (
        Vec::with_capacity(rounds),
        Vec::with_capacity(rounds),
        Vec::with_capacity(rounds),
    );
    for round in 0..rounds {
        let (t_ours, t_bare) = if round.is_multiple_of(2) {
            let t_ours = ours(round).await;
            (t_ours, bare(round).await)
        } else {
            let t_bare = bare(round).await;
            (ours(round).await, t_bare)
        };
        o.push(t_ours);
        b.push(t_bare);
        r.push(ratio(t_ours.as_secs_f64(), t_bare.as_secs_f64()));
    }
    Interleaved {
        ours: median(o),
        bare: median(b),
        median_ratio: median(r),
    }
}

/// One row of a ratio table: ours and bare in `unit`, and their ratio.
#[derive(Clone, Debug)]
pub struct Row {
    /// The operation.
    pub name: String,
    /// Ours, in the table's unit.
    pub ours: f64,
    /// Bare, in the table's unit.
    pub bare: f64,
    /// Ours / bare (as the table's note says how it was taken).
    pub ratio: f64,
}

impl Row {
    /// A row of times per operation, shown in µs, with `ratio`.
    pub fn micros(name: impl Into<String>, ours: Duration, bare: Duration, ratio: f64) -> Self {
        Row {
            name: name.into(),
            ours: ours.as_secs_f64() * 1e6,
            bare: bare.as_secs_f64() * 1e6,
            ratio,
        }
    }
}

/// Prints `rows` as a Markdown table under `title`: operation, ours, `bare_name`, ratio, with
/// the values in `unit`; then `note`, if any.
pub fn print_ratio_table(title: &str, bare_name: &str, unit: &str, rows: &[Row], note: &str) {
    println!("\n{title}");
    println!("| operation | ordermeta | {bare_name} | ratio |\n|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.1} {unit} | {:.1} {unit} | {:.3} |",
            r.name, r.ours, r.bare, r.ratio
        );
    }
    if !note.is_empty() {
        println!("{note}");
    }
}

/// A record as a store writes it, its columns encoded (what bare binds); `Ts` is how the
/// store writes a timestamp.
#[derive(Debug)]
pub struct Encoded<Ts> {
    pub id: String,
    pub b64: String,
    pub gtb: Option<i64>,
    pub gtbt: Option<i64>,
    pub client_id: i64,
    pub sub: i64,
    pub owner: String,
    pub flags: i64,
    pub clob: i64,
    pub symbol: String,
    pub side: &'static str,
    pub qty: String,
    pub price: Option<String>,
    pub order_type: &'static str,
    pub placed_at: Ts,
    pub updated_at: Ts,
    pub status: &'static str,
    pub version: i64,
    pub history: String,
}

impl<Ts> Encoded<Ts> {
    /// `m`'s columns, timestamps written by `ts`.
    pub fn of(
        m: &ordermeta::OrderMetadata,
        ts: impl Fn(chrono::DateTime<chrono::Utc>) -> Ts,
    ) -> Self {
        Encoded {
            id: m.order_id.clone(),
            b64: m.dydx_order_id.to_base64(),
            gtb: m.good_til.block().map(i64::from),
            gtbt: m.good_til.block_time().map(i64::from),
            client_id: i64::from(m.dydx_order_id.client_id),
            sub: i64::from(m.dydx_order_id.subaccount_number),
            owner: m.dydx_order_id.owner.clone(),
            flags: i64::from(m.dydx_order_id.order_flags),
            clob: i64::from(m.dydx_order_id.clob_pair_id),
            symbol: m.symbol.clone(),
            side: m.side.as_str(),
            qty: m.quantity.clone(),
            price: m.price.clone(),
            order_type: m.order_type.as_str(),
            placed_at: ts(m.placed_at),
            updated_at: ts(m.updated_at),
            status: m.status.as_str(),
            version: m.version as i64,
            history: ordermeta_core::backend::history_to_json(&m.history),
        }
    }
}

#[cfg(feature = "sqlite")]
pub mod sqlite_bare;

#[cfg(feature = "postgres")]
pub mod pg_bare;
