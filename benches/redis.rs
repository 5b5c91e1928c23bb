//! The Redis store beside a bare redis-rs compare-and-set, in the same run, on the same server
//! (`REDIS_URL`, default `redis://127.0.0.1:6379`): an order's life, step by step.
//!
//! - **ours**: `record` (pending), `transition` pending -> active, `claim_for_cancel`
//!   (active -> cancelling with a lease), `transition` cancelling -> cancelled; a store with
//!   its default remembered records, and (column `ours, cold`) one with
//!   `known_records(0)`, which reads every order before writing it.
//! - **bare**: redis-rs `EVALSHA` of a minimal script per step on an order HASH of the same
//!   fields: `record` = "HSET all fields unless the key exists"; each transition = "if the
//!   status is still the expected one, HSET the changed fields (the same values ours writes)
//!   and HINCRBY the version". No indexes, no lease or history checks, no read-back: the
//!   least a compare-and-set on Redis costs.
//!
//! With 1, 8 and 64 concurrent tasks on one multiplexed connection each. Every round runs
//! each side on fresh orders, the sides in turn (who goes first alternates); a step's time
//! is the wall-clock of all its calls divided by their number. The table shows medians over
//! the rounds and the median of the rounds' ratios ours / bare; `lifecycle` is the four
//! steps' sum.
//!
//! `BENCH_ROUNDS=7 cargo bench -p ordermeta --bench redis --features redis` (about a
//! minute); `BENCH_ORDERS` sets the orders per round and side (default 1000), `BENCH_TASKS`
//! runs one task count only.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ordermeta::redis::RedisStore;
use ordermeta::redis::redis::{self, Script, aio::ConnectionManager};
use ordermeta::{MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus, TransitionRequest};
use ordermeta_core::conformance::short_term;
// Not public API: the root package's dev-dependency enables `bench-internals` for it.
use ordermeta_redis::hash_fields;

const TASKS: [usize; 3] = [1, 8, 64];
const STEPS: [&str; 4] = ["record", "active", "claim", "cancelled"];
/// The sides, in the table's order.
const SIDES: [&str; 3] = ["ours", "ours, cold", "bare"];

/// Bare `record`: the fields, unless the order exists.
const BARE_RECORD: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end \
    redis.call('HSET', KEYS[1], unpack(ARGV)) return 1";
/// Bare transition: ARGV[1] the expected status, then the field/value pairs to set.
const BARE_CAS: &str = "if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end \
    redis.call('HSET', KEYS[1], unpack(ARGV, 2)) \
    redis.call('HINCRBY', KEYS[1], 'version', 1) return 1";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Order `n`: a short-term order with a client id of its own.
fn order(n: u64) -> OrderMetadata {
    let mut m = short_term(&format!("bench-{n:012}"), OrderStatus::Pending, 1_000_000);
    m.dydx_order_id.client_id = n as u32;
    m
}

/// The transition of step `step` (1..=3) of order `id`.
fn request(step: usize, id: &str) -> TransitionRequest {
    let (from, to) = match step {
        1 => (OrderStatus::Pending, OrderStatus::Active),
        2 => (OrderStatus::Active, OrderStatus::Cancelling),
        _ => (OrderStatus::Cancelling, OrderStatus::Cancelled),
    };
    let req = TransitionRequest::new(id, &[from], to);
    if step == 2 {
        // What claim_for_cancel sends.
        let until = req.at + chrono::Duration::seconds(60);
        req.reason("cancel claimed")
            .lease(ordermeta_core::Lease::new("bench", until))
    } else {
        req
    }
}

/// Runs `op(task, n)` for every order of `ids`, spread over `tasks` tasks; time per call.
async fn step<F, Fut>(tasks: usize, ids: &Arc<Vec<u64>>, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let (ids, op) = (ids.clone(), op.clone());
        set.spawn(async move {
            for &n in ids.iter().skip(t).step_by(tasks) {
                op(n).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("bench task");
    }
    start.elapsed() / ids.len().max(1) as u32
}

/// CPU time so far: this process's (all threads, from `/proc/self/task/*/schedstat`, Linux
/// only, 0 elsewhere) and the server's (`INFO cpu`), in µs.
async fn cpu(conn: &ConnectionManager) -> (f64, f64) {
    let mut client_ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            client_ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut conn.clone())
        .await
        .expect("info cpu");
    let server_s: f64 = info
        .lines()
        .filter_map(|l| {
            l.strip_prefix("used_cpu_sys:")
                .or(l.strip_prefix("used_cpu_user:"))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum();
    (client_ns as f64 / 1e3, server_s * 1e6)
}

/// What one side's run of a round measured: the time per call of each step, and the CPU per
/// order (client, server; µs) over the four steps.
type Run = ([Duration; 4], (f64, f64));

/// One lifecycle of every order of `ids` through `store`.
async fn ours(
    store: &RedisStore,
    cpu_conn: &ConnectionManager,
    tasks: usize,
    ids: &Arc<Vec<u64>>,
) -> Run {
    let before = cpu(cpu_conn).await;
    let mut t = [Duration::ZERO; 4];
    let s = store.clone();
    t[0] = step(tasks, ids, move |n| {
        let s = s.clone();
        async move { s.record(&order(n)).await.expect("record") }
    })
    .await;
    for (i, slot) in t.iter_mut().enumerate().skip(1) {
        let s = store.clone();
        *slot = step(tasks, ids, move |n| {
            let s = s.clone();
            async move {
                let id = format!("bench-{n:012}");
                let m = if i == 2 {
                    s.claim_for_cancel(&id).await
                } else {
                    s.transition(&request(i, &id)).await
                }
                .expect("transition");
                assert_eq!(m.version, i as u64 + 1);
            }
        })
        .await;
    }
    let used = per_order(before, cpu(cpu_conn).await, ids.len());
    store.delete_namespace().await.expect("cleanup");
    (t, used)
}

fn per_order(before: (f64, f64), after: (f64, f64), orders: usize) -> (f64, f64) {
    let n = orders.max(1) as f64;
    ((after.0 - before.0) / n, (after.1 - before.1) / n)
}

/// The bare side: its connection, scripts and namespace.
#[derive(Clone)]
struct Bare {
    conn: ConnectionManager,
    record: Arc<Script>,
    cas: Arc<Script>,
    ns: Arc<str>,
}

impl Bare {
    fn key(&self, n: u64) -> String {
        format!("{{{}}}:bare:{n}", self.ns)
    }

    /// Step `step` (1..=3) of order `n`: the same record change ours makes, its changed
    /// fields sent to the minimal compare-and-set.
    async fn transition(&self, step: usize, n: u64) {
        let mut m = order(n);
        for s in 1..step {
            request(s, &m.order_id.clone()).apply(&mut m);
        }
        let before = hash_fields(&m);
        let from = m.status;
        request(step, &m.order_id.clone()).apply(&mut m);
        let mut inv = self.cas.key(self.key(n));
        inv.arg(from.as_str());
        for (f, v) in hash_fields(&m) {
            if f != "version" && !before.contains(&(f, v.clone())) {
                inv.arg(f).arg(v);
            }
        }
        let ok: i64 = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .expect("bare cas");
        assert_eq!(ok, 1);
    }

    async fn lifecycle(&self, tasks: usize, ids: &Arc<Vec<u64>>) -> Run {
        let before = cpu(&self.conn).await;
        let mut t = [Duration::ZERO; 4];
        let b = self.clone();
        t[0] = step(tasks, ids, move |n| {
            let b = b.clone();
            async move {
                let ok: i64 = b
                    .record
                    .key(b.key(n))
                    .arg(hash_fields(&order(n)))
                    .invoke_async(&mut b.conn.clone())
                    .await
                    .expect("bare record");
                assert_eq!(ok, 1);
            }
        })
        .await;
        for (i, slot) in t.iter_mut().enumerate().skip(1) {
            let b = self.clone();
            *slot = step(tasks, ids, move |n| {
                let b = b.clone();
                async move { b.transition(i, n).await }
            })
            .await;
        }
        let used = per_order(before, cpu(&self.conn).await, ids.len());
        for chunk in ids.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|&n| self.key(n)).collect();
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut self.conn.clone())
                .await
                .expect("bare cleanup");
        }
        (t, used)
    }
}

fn main() {
    let rounds = env_usize("BENCH_ROUNDS", 5).max(1);
    let orders = env_usize("BENCH_ORDERS", 1000).max(64) as u64;
    let rt = support::multi_thread_runtime(2);
    let url = support::redis_url();
    let ns = support::unique_name("bench");
    let connect = |known: Option<usize>| {
        let mut o = RedisStore::options().namespace(&ns);
        if let Some(n) = known {
            o = o.known_records(n);
        }
        rt.block_on(o.connect(&url))
            .unwrap_or_else(|e| support::redis_missing(&url, e))
    };
    let warm = connect(None);
    let cold = connect(Some(0));
    let bare = rt.block_on(async {
        let client = redis::Client::open(url.as_str()).expect("bare client");
        Bare {
            conn: ConnectionManager::new(client)
                .await
                .expect("bare connection"),
            record: Arc::new(Script::new(BARE_RECORD)),
            cas: Arc::new(Script::new(BARE_CAS)),
            ns: ns.as_str().into(),
        }
    });
    println!("redis bench: {rounds} rounds of {orders} orders per side and task count");
    let mut next = 0u64;
    let only: Option<usize> = std::env::var("BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok());
    for tasks in TASKS.into_iter().filter(|t| only.is_none_or(|o| o == *t)) {
        // times[side][round][step]
        let mut times = vec![Vec::new(); SIDES.len()];
        for round in 0..rounds {
            let mut order_of: Vec<usize> = (0..SIDES.len()).collect();
            order_of.rotate_left(round % SIDES.len());
            for side in order_of {
                let ids = Arc::new((next..next + orders).collect::<Vec<_>>());
                next += orders;
                let t = rt.block_on(async {
                    match side {
                        0 => ours(&warm, &bare.conn, tasks, &ids).await,
                        1 => ours(&cold, &bare.conn, tasks, &ids).await,
                        _ => bare.lifecycle(tasks, &ids).await,
                    }
                });
                times[side].push(t);
            }
        }
        report(tasks, &times);
    }
}

/// Prints one task count's table: per step, the median µs per call of each side and the
/// medians of the rounds' ratios to bare; then the CPU per order of each side.
fn report(tasks: usize, times: &[Vec<Run>]) {
    let secs = |side: usize, round: usize, step: Option<usize>| -> f64 {
        let t = &times[side][round].0;
        match step {
            Some(s) => t[s].as_secs_f64(),
            None => t.iter().map(Duration::as_secs_f64).sum(),
        }
    };
    let rounds = times[0].len();
    println!(
        "\n{tasks} task(s): µs per call, medians of {rounds} rounds; ratio = median of the rounds' ours / bare"
    );
    println!("| step | ours | ours, cold | bare | ours / bare | cold / bare |");
    println!("|---|---|---|---|---|---|");
    let steps = (0..4).map(Some).chain([None]);
    for step in steps {
        let name = step.map_or("lifecycle", |s| STEPS[s]);
        let med = |side| support::median((0..rounds).map(|r| secs(side, r, step)).collect());
        let ratio = |side| {
            support::median(
                (0..rounds)
                    .map(|r| support::ratio(secs(side, r, step), secs(2, r, step)))
                    .collect(),
            )
        };
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
            med(0) * 1e6,
            med(1) * 1e6,
            med(2) * 1e6,
            ratio(0),
            ratio(1)
        );
    }
    let cpu = |side: usize, which: usize| {
        support::median(
            times[side]
                .iter()
                .map(|(_, c)| if which == 0 { c.0 } else { c.1 })
                .collect(),
        )
    };
    println!(
        "CPU µs per order (whole lifecycle), client / server: ours {:.1} / {:.1}, ours cold \
         {:.1} / {:.1}, bare {:.1} / {:.1}",
        cpu(0, 0),
        cpu(0, 1),
        cpu(1, 0),
        cpu(1, 1),
        cpu(2, 0),
        cpu(2, 1)
    );
}
