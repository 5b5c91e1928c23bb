//! An order's whole life on each SQL store beside bare sqlx, in the same run: record
//! (`pending`) → `active` → claim (`cancelling`, with its lease) → `cancelled`, each order's
//! four writes one after another in one task, with 1, 8 and 64 tasks at once.
//!
//! - ours: `record`, `transition` (with the placement tx hash), `claim_for_cancel`,
//!   `transition` (with the cancel tx hash) through [`MetadataStore`].
//! - bare: the store's own four statements (its INSERT and its compare-and-set UPDATE …
//!   RETURNING), one statement per call in autocommit, every value encoded and every history
//!   entry built before timing starts, the returned row read raw. SQLite: one connection (a
//!   second writer connection would only meet `SQLITE_BUSY`), WAL, the same `synchronous`.
//!   PostgreSQL: a pool of [`PG_CONNECTIONS`] without a ping before acquire.
//!
//! Each configuration (backend × tasks) runs `BENCH_ROUNDS` rounds (default 5) of ours and
//! bare back to back, who goes first alternating, each side on its own database (SQLite file,
//! PostgreSQL schema) that grows by the same orders. Reported: orders/s (median of the
//! rounds) and the median of the rounds' throughput ratios ours / bare; p50 and p99 of each
//! step's latency over all rounds.
//!
//! ```text
//! cargo bench -p ordermeta --bench lifecycle --features sqlite,postgres
//! BENCH_ROUNDS=7 BENCH_BACKENDS=sqlite-normal,sqlite-full,postgres BENCH_TASKS=1,8,64 \
//!     BENCH_ORDERS=1024 cargo bench -p ordermeta --bench lifecycle --features sqlite,postgres
//! ```
//!
//! `BENCH_ORDERS` is the orders per round with 64 tasks (fewer tasks: proportionally fewer,
//! at least 100). Uses `DATABASE_URL` (default the local server); its schemas are dropped at
//! the end. Takes ~1 minute with the defaults.

mod support;

#[path = "lifecycle/sides.rs"]
mod sides;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ordermeta::{OrderMetadata, OrderStatus};
use ordermeta_core::conformance::short_term;
use sides::{Backend, Lifecycle, STEPS};
use support::{median, ratio};

/// Connections of each PostgreSQL pool (ours and bare).
pub const PG_CONNECTIONS: u32 = 16;

/// What one round of one side measured.
struct Round {
    orders_per_sec: f64,
    /// Latency of each step, every order.
    steps: [Vec<Duration>; 4],
    /// Latency of each order's four steps together.
    orders: Vec<Duration>,
}

/// Runs `n` orders' lifecycles on `side` with `tasks` tasks, each task its share in order.
async fn round(side: Arc<dyn Lifecycle>, tag: &str, tasks: usize, n: usize) -> Round {
    let prepared: Vec<_> = (0..n)
        .map(|i| side.prepare(order(&format!("{tag}-{i:06}"))))
        .collect();
    let mut shares: Vec<Vec<_>> = (0..tasks).map(|_| Vec::new()).collect();
    for (i, p) in prepared.into_iter().enumerate() {
        shares[i % tasks].push(p);
    }
    let started = Instant::now();
    let handles: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let side = side.clone();
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(share.len());
                for p in &share {
                    let mut t = [Duration::ZERO; 4];
                    for (step, slot) in t.iter_mut().enumerate() {
                        let at = Instant::now();
                        side.step(step, p).await;
                        *slot = at.elapsed();
                    }
                    times.push(t);
                }
                times
            })
        })
        .collect();
    let mut out = Round {
        orders_per_sec: 0.0,
        steps: Default::default(),
        orders: Vec::with_capacity(n),
    };
    for h in handles {
        for t in h.await.expect("a lifecycle task panicked") {
            for (step, d) in t.iter().enumerate() {
                out.steps[step].push(*d);
            }
            out.orders.push(t.iter().sum());
        }
    }
    out.orders_per_sec = n as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON);
    out
}

/// A `pending` short-term order as a bot records it before the broadcast.
fn order(id: &str) -> OrderMetadata {
    short_term(id, OrderStatus::Pending, 1_000_000)
}

/// The `q` quantile (0..=1) of `v`, in µs.
fn quantile_us(v: &mut [Duration], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i].as_secs_f64() * 1e6
}

/// One configuration's result, both sides.
struct Outcome {
    backend: Backend,
    tasks: usize,
    ours: Vec<Round>,
    bare: Vec<Round>,
}

impl Outcome {
    fn throughput(rounds: &[Round]) -> f64 {
        median(rounds.iter().map(|r| r.orders_per_sec).collect())
    }

    fn ratio(&self) -> f64 {
        median(
            self.ours
                .iter()
                .zip(&self.bare)
                .map(|(o, b)| ratio(o.orders_per_sec, b.orders_per_sec))
                .collect(),
        )
    }

    fn pooled(rounds: &[Round], step: Option<usize>) -> Vec<Duration> {
        rounds
            .iter()
            .flat_map(|r| match step {
                Some(s) => r.steps[s].iter(),
                None => r.orders.iter(),
            })
            .copied()
            .collect()
    }

    /// "p50 / p99" of a step (or of whole orders), µs.
    fn latency(rounds: &[Round], step: Option<usize>) -> String {
        let mut v = Self::pooled(rounds, step);
        format!(
            "{:.0} / {:.0}",
            quantile_us(&mut v, 0.5),
            quantile_us(&mut v, 0.99)
        )
    }
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn print_tables(outcomes: &[Outcome], rounds: usize) {
    println!(
        "\nLifecycle throughput (record → active → claim → cancelled), medians of {rounds} \
         interleaved rounds"
    );
    println!(
        "| store | tasks | ordermeta orders/s | bare orders/s | throughput ours / bare | \
         order p50 / p99 µs, ours | bare |\n|---|---|---|---|---|---|---|"
    );
    for o in outcomes {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {} | {} |",
            o.backend.name(),
            o.tasks,
            Outcome::throughput(&o.ours),
            Outcome::throughput(&o.bare),
            o.ratio(),
            Outcome::latency(&o.ours, None),
            Outcome::latency(&o.bare, None),
        );
    }
    println!("\nStep latency p50 / p99 (µs), ordermeta | bare");
    println!(
        "| store | tasks | {} |\n|---|---|---|---|---|---|",
        STEPS.join(" | ")
    );
    for o in outcomes {
        let cells: Vec<String> = (0..STEPS.len())
            .map(|s| {
                format!(
                    "{} \\| {}",
                    Outcome::latency(&o.ours, Some(s)),
                    Outcome::latency(&o.bare, Some(s))
                )
            })
            .collect();
        println!(
            "| {} | {} | {} |",
            o.backend.name(),
            o.tasks,
            cells.join(" | ")
        );
    }
}

fn main() {
    // Criterion's harness flags (`--bench`) are not ours; this bench has no filter.
    let rounds = env_usize("BENCH_ROUNDS", 5).max(1);
    let orders_64 = env_usize("BENCH_ORDERS", 1024).max(64);
    let tasks: Vec<usize> = env_list("BENCH_TASKS", "1,8,64")
        .iter()
        .filter_map(|t| t.parse().ok())
        .filter(|t| *t > 0)
        .collect();
    let backends: Vec<Backend> = env_list("BENCH_BACKENDS", "sqlite-normal,sqlite-full,postgres")
        .iter()
        .map(|b| Backend::parse(b).unwrap_or_else(|| panic!("unknown backend {b}")))
        .collect();
    let rt = support::multi_thread_runtime(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut outcomes = Vec::new();
    rt.block_on(async {
        for backend in backends {
            let (ours, bare) = backend.open(dir.path()).await;
            for &t in &tasks {
                let n = (orders_64 * t / 64).max(100);
                let mut o = Outcome {
                    backend,
                    tasks: t,
                    ours: Vec::new(),
                    bare: Vec::new(),
                };
                for r in 0..rounds {
                    let tag = |side: &str| format!("{side}-t{t}-r{r}");
                    if r % 2 == 0 {
                        o.ours.push(round(ours.clone(), &tag("ours"), t, n).await);
                        o.bare.push(round(bare.clone(), &tag("bare"), t, n).await);
                    } else {
                        o.bare.push(round(bare.clone(), &tag("bare"), t, n).await);
                        o.ours.push(round(ours.clone(), &tag("ours"), t, n).await);
                    }
                }
                eprintln!(
                    "{} × {t} tasks: ours {:.0} orders/s, bare {:.0} orders/s, ratio {:.2}",
                    backend.name(),
                    Outcome::throughput(&o.ours),
                    Outcome::throughput(&o.bare),
                    o.ratio()
                );
                outcomes.push(o);
            }
            ours.close().await;
            bare.close().await;
        }
    });
    print_tables(&outcomes, rounds);
}
