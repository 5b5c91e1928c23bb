//! Placement latency: `OrderMetaClient::place_order` beside a bare `NodeClient::place_order`
//! against the node simulator (in-process, real gRPC), on SQLite, PostgreSQL and Redis, in
//! one run, with one bare store round trip measured beside them.
//!
//! Sides, one order at a time each (latency, not throughput):
//! - `bare`:       `dydx::node::NodeClient::place_order` (account 1), nothing recorded;
//! - `background`: ours, the default: `pending` recorded before the broadcast, `active`
//!   written by the client's background writer (account 0);
//! - `inline`:     ours with `ActiveWrite::Inline` (the behaviour before): `active` written
//!   before `place_order` returns;
//! - `unrecorded`: ours with recording off (same gateway, account 0): the client and its
//!   gateway without the store, so that what the store adds is told apart from what the
//!   gateway (`DydxGateway`: its own signing and broadcast path) costs beside `NodeClient`;
//! - `round trip`: one bare store round trip with the driver alone: a single-row `INSERT`
//!   (sqlx, SQLite in WAL with `synchronous = NORMAL` as the store opens it; PostgreSQL),
//!   or one `EVALSHA` of a one-`HSET` script (redis-rs).
//!
//! - `parts`: the store calls placement makes before the broadcast, each alone on the same
//!   store: `find_by_client_id` (the client-id reuse check) and `record` (`pending`).
//!
//! Rounds interleave the sides (who goes first rotates), so a change in machine load hits
//! all of them alike; short-term orders are good for a few blocks and the chain advances
//! between rounds, so the book stays small. Printed per backend: p50 and p99 of each side, and
//! the time ours adds at p50 over bare, in µs and in store round trips (p50 of `round trip`).
//! The background writer's queue is drained between rounds (`flush_active_writes`), outside
//! the timed calls; `back-to-back` rows place without that pause, so each placement's
//! `pending` write meets the previous one's `active` write in the store.
//!
//! `PLACEMENT_ORDERS` (default 1000) orders per side per backend; `PLACEMENT_BACKENDS`
//! (default `sqlite,postgres,redis`; `memory` adds the in-memory reference store: the
//! client's own work without store I/O). Under two minutes on a 2-core machine:
//!
//! `cargo bench -p ordermeta --bench placement --features "dydx dydx-sim sqlite postgres redis"`

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ordermeta::dydx::dydx::indexer::{ClientId, Height};
use ordermeta::dydx::dydx::node::{NodeClient, OrderBuilder, OrderSide, Wallet};
use ordermeta::dydx::{
    ActiveWrite, ChainSettings, DydxGateway, OrderDetails, OrderMetaClient, PlaceOptions,
    RecordingSwitch,
};
use ordermeta::dydx_sim::{RateLimits, SimConfig, SimHandle, SimNode, fixtures};
use ordermeta::postgres::PgStore;
use ordermeta::redis::RedisStore;
use ordermeta::redis::redis::{self, aio::ConnectionManager};
use ordermeta::sqlite::SqliteStore;
use ordermeta::{MetadataStore, OrderStatus, OrderType, Side};
use ordermeta_core::ClientIdKey;
use ordermeta_core::conformance::short_term;
use ordermeta_postgres::sqlx::PgPool;
use ordermeta_sqlite::sqlx::{
    self as sqlite_sqlx, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// Rounds per backend; each round places `orders / ROUNDS` orders per side.
const ROUNDS: usize = 10;
/// Blocks a short-term order is good for (the chain advances past it between rounds).
const GOOD_FOR: u32 = 5;

/// One bare store round trip, with the driver alone.
enum RoundTrip {
    Sqlite(SqlitePool),
    Postgres(PgPool, String),
    Redis(ConnectionManager, redis::Script, String),
    /// The in-memory reference store (`PLACEMENT_BACKENDS=memory`): the client's own work
    /// with no store I/O; no round trip to compare with.
    Memory,
}

impl RoundTrip {
    async fn once(&mut self, n: u64) -> Duration {
        let id = format!("rt-{n:09}");
        let started = Instant::now();
        match self {
            RoundTrip::Sqlite(pool) => {
                sqlite_sqlx::query("INSERT INTO rt (id, v) VALUES (?, ?)")
                    .bind(&id)
                    .bind("x")
                    .execute(&*pool)
                    .await
                    .expect("sqlite insert");
            }
            RoundTrip::Postgres(pool, schema) => {
                ordermeta_postgres::sqlx::query(&format!(
                    "INSERT INTO \"{schema}\".rt (id, v) VALUES ($1, $2)"
                ))
                .bind(&id)
                .bind("x")
                .execute(&*pool)
                .await
                .expect("postgres insert");
            }
            RoundTrip::Memory => {}
            RoundTrip::Redis(conn, script, ns) => {
                let _: i64 = script
                    .key(format!("{{{ns}}}:rt:{id}"))
                    .arg("x")
                    .invoke_async(conn)
                    .await
                    .expect("redis evalsha");
            }
        }
        started.elapsed()
    }
}

/// What one backend's run measured, per side.
#[derive(Default)]
struct Samples {
    bare: Vec<Duration>,
    background: Vec<Duration>,
    inline: Vec<Duration>,
    back_to_back: Vec<Duration>,
    unrecorded: Vec<Duration>,
    round_trip: Vec<Duration>,
    find: Vec<Duration>,
    record: Vec<Duration>,
}

struct Bench {
    sim: SimHandle,
    wallet: Wallet,
    next_client_id: AtomicU32,
}

impl Bench {
    /// A short-term limit buy of `account` good for [`GOOD_FOR`] blocks, with a fresh client id.
    fn order(&self, account: u32) -> ordermeta::dydx::Order {
        let sub = self
            .wallet
            .account_offline(account)
            .expect("account")
            .subaccount(0)
            .expect("subaccount");
        let client_id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        OrderBuilder::new(fixtures::market(), sub)
            .limit(OrderSide::Buy, 50_000, 1)
            .until(Height(self.sim.height() + GOOD_FOR))
            .build(ClientId(client_id))
            .expect("build order")
            .1
    }
}

fn details() -> OrderDetails {
    OrderDetails {
        symbol: "BTC-USD".into(),
        side: Side::Buy,
        quantity: "1".into(),
        price: Some("50000".into()),
        order_type: OrderType::Limit,
    }
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    let at = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(at).copied().unwrap_or_default()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn run_backend(
    bench: &Bench,
    name: &str,
    store: Arc<dyn MetadataStore>,
    mut round_trip: RoundTrip,
    orders: usize,
) -> Samples {
    let gateway = DydxGateway::connect(
        fixtures::node_config(bench.sim.endpoint()),
        &bench.wallet,
        0,
    )
    .await
    .expect("gateway");
    let gateway = Arc::new(gateway);
    let client = OrderMetaClient::new(
        gateway.clone(),
        store.clone(),
        RecordingSwitch::new(true),
        ChainSettings::default(),
    );
    let unrecorded = OrderMetaClient::new(
        gateway,
        store.clone(),
        RecordingSwitch::new(false),
        ChainSettings::default(),
    );
    let mut node = NodeClient::connect(fixtures::node_config(bench.sim.endpoint()))
        .await
        .expect("node client");
    let mut account = bench.wallet.account(1, &mut node).await.expect("account 1");
    let per_round = (orders / ROUNDS).max(1);
    let mut s = Samples::default();
    let mut rt_n = 0u64;
    // Warm-up: connections, prepared statements, the writer task.
    for _ in 0..20 {
        client
            .place_order(bench.order(0), details())
            .await
            .expect("warm-up place");
        node.place_order(&mut account, bench.order(1))
            .await
            .expect("warm-up bare");
        rt_n += 1;
        round_trip.once(rt_n).await;
    }
    client.flush_active_writes(Duration::from_secs(10)).await;
    for round in 0..ROUNDS {
        for side in 0..6 {
            match (round + side) % 6 {
                0 => {
                    for _ in 0..per_round {
                        let order = bench.order(1);
                        let started = Instant::now();
                        node.place_order(&mut account, order)
                            .await
                            .expect("bare place");
                        s.bare.push(started.elapsed());
                    }
                }
                1 => {
                    for _ in 0..per_round {
                        let order = bench.order(0);
                        let started = Instant::now();
                        client.place_order(order, details()).await.expect("place");
                        s.background.push(started.elapsed());
                        // The writer catches up outside the timed call.
                        client.flush_active_writes(Duration::from_secs(10)).await;
                    }
                }
                2 => {
                    let inline = PlaceOptions::default().active_write(ActiveWrite::Inline);
                    for _ in 0..per_round {
                        let order = bench.order(0);
                        let started = Instant::now();
                        client
                            .place_order_with(order, details(), inline.clone())
                            .await
                            .expect("place inline");
                        s.inline.push(started.elapsed());
                    }
                }
                3 => {
                    for _ in 0..per_round {
                        let order = bench.order(0);
                        let started = Instant::now();
                        client.place_order(order, details()).await.expect("place");
                        s.back_to_back.push(started.elapsed());
                    }
                    client.flush_active_writes(Duration::from_secs(10)).await;
                }
                4 => {
                    for _ in 0..per_round {
                        let order = bench.order(0);
                        let started = Instant::now();
                        unrecorded
                            .place_order(order, details())
                            .await
                            .expect("place");
                        s.unrecorded.push(started.elapsed());
                    }
                }
                _ => {
                    for _ in 0..per_round {
                        rt_n += 1;
                        s.round_trip.push(round_trip.once(rt_n).await);
                        let mut meta =
                            short_term(&format!("part-{rt_n}"), OrderStatus::Pending, 100);
                        meta.dydx_order_id.client_id = u32::MAX - rt_n as u32;
                        let key = ClientIdKey::of(&meta);
                        let started = Instant::now();
                        store.find_by_client_id(&key).await.expect("find");
                        s.find.push(started.elapsed());
                        let started = Instant::now();
                        store.record(&meta).await.expect("record");
                        s.record.push(started.elapsed());
                    }
                }
            }
        }
        // Expire the round's orders: the book stays small.
        bench.sim.advance_blocks(GOOD_FOR + 1);
    }
    eprintln!("{name}: {} orders per side", s.bare.len());
    s
}

fn report(name: &str, s: &Samples) {
    let rt = percentile(&s.round_trip, 0.5);
    let bare = percentile(&s.bare, 0.5);
    let off = percentile(&s.unrecorded, 0.5);
    println!(
        "\n{name}: one store round trip p50 {:.0} µs, p99 {:.0} µs; store calls before the broadcast, alone: find_by_client_id p50 {:.0} µs, record p50 {:.0} µs",
        micros(rt),
        micros(percentile(&s.round_trip, 0.99)),
        micros(percentile(&s.find, 0.5)),
        micros(percentile(&s.record, 0.5)),
    );
    println!(
        "| side | p50 | p99 | p50 / bare | added at p50 over bare | in round trips | added over recording off | in round trips |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (side, v) in [
        ("bare NodeClient::place_order", &s.bare),
        ("ours, recording off (gateway only)", &s.unrecorded),
        ("ours, background active (default)", &s.background),
        ("ours, background, back-to-back", &s.back_to_back),
        ("ours, inline active", &s.inline),
    ] {
        let p50 = percentile(v, 0.5);
        let added = micros(p50) - micros(bare);
        let store = micros(p50) - micros(off);
        println!(
            "| {side} | {:.0} µs | {:.0} µs | {:.3} | {:+.0} µs | {:.2} | {:+.0} µs | {:.2} |",
            micros(p50),
            micros(percentile(v, 0.99)),
            support::ratio(p50.as_secs_f64(), bare.as_secs_f64()),
            added,
            added / micros(rt),
            store,
            store / micros(rt),
        );
    }
}

async fn sqlite_setup(dir: &std::path::Path) -> (Arc<dyn MetadataStore>, RoundTrip) {
    let store = SqliteStore::open(dir.join("orders.db"))
        .await
        .expect("open sqlite");
    let options = SqliteConnectOptions::new()
        .filename(dir.join("rt.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .expect("bare sqlite");
    sqlite_sqlx::query("CREATE TABLE rt (id TEXT PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("create rt");
    (Arc::new(store), RoundTrip::Sqlite(pool))
}

async fn postgres_setup(schema: &str) -> (Arc<dyn MetadataStore>, RoundTrip) {
    let url = support::database_url();
    let store = PgStore::options()
        .schema(schema)
        .connect(&url)
        .await
        .unwrap_or_else(|e| support::postgres_missing(&url, e));
    let pool = PgPool::connect(&url).await.expect("bare postgres");
    ordermeta_postgres::sqlx::query(&format!(
        "CREATE TABLE \"{schema}\".rt (id TEXT PRIMARY KEY, v TEXT NOT NULL)"
    ))
    .execute(&pool)
    .await
    .expect("create rt");
    (
        Arc::new(store),
        RoundTrip::Postgres(pool, schema.to_owned()),
    )
}

async fn redis_setup(ns: &str) -> (Arc<dyn MetadataStore>, RoundTrip) {
    let url = support::redis_url();
    let store = RedisStore::options()
        .namespace(ns)
        .connect(&url)
        .await
        .unwrap_or_else(|e| support::redis_missing(&url, e));
    let conn = ConnectionManager::new(redis::Client::open(url.as_str()).expect("redis url"))
        .await
        .expect("bare redis");
    let script = redis::Script::new("redis.call('HSET', KEYS[1], 'v', ARGV[1]) return 1");
    (
        Arc::new(store),
        RoundTrip::Redis(conn, script, ns.to_owned()),
    )
}

fn main() {
    let orders: usize = std::env::var("PLACEMENT_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let backends =
        std::env::var("PLACEMENT_BACKENDS").unwrap_or_else(|_| "sqlite,postgres,redis".to_owned());
    let rt = support::multi_thread_runtime(2);
    rt.block_on(async {
        let sim = SimNode::start(
            SimConfig::default()
                .with_mnemonic(fixtures::MNEMONIC, 2)
                .with_rate_limits(RateLimits::unlimited())
                .without_indexer(),
        )
        .await
        .expect("start simulator");
        let bench = Bench {
            sim,
            wallet: Wallet::from_mnemonic(fixtures::MNEMONIC).expect("wallet"),
            next_client_id: AtomicU32::new(1),
        };
        let started = Instant::now();
        let mut results = Vec::new();
        for backend in backends.split(',').map(str::trim) {
            let name = support::unique_name("placement");
            let s = match backend {
                "sqlite" => {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let (store, rt) = sqlite_setup(dir.path()).await;
                    run_backend(&bench, "SQLite", store, rt, orders).await
                }
                "postgres" => {
                    let (store, rt) = postgres_setup(&name).await;
                    let s = run_backend(&bench, "PostgreSQL", store, rt, orders).await;
                    let pool = PgPool::connect(&support::database_url()).await.expect("pg");
                    let _ = ordermeta_postgres::sqlx::query(&format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    ))
                    .execute(&pool)
                    .await;
                    s
                }
                "redis" => {
                    let (store, rt) = redis_setup(&name).await;
                    let s = run_backend(&bench, "Redis", store, rt, orders).await;
                    if let Ok(store) = RedisStore::options()
                        .namespace(&name)
                        .connect(&support::redis_url())
                        .await
                    {
                        let _ = store.delete_namespace().await;
                    }
                    let _ = cleanup_redis_rt(&name).await;
                    s
                }
                "memory" => {
                    let store = Arc::new(ordermeta::MemoryStore::new());
                    run_backend(&bench, "memory", store, RoundTrip::Memory, orders).await
                }
                other => panic!("unknown backend {other:?} (sqlite, postgres, redis, memory)"),
            };
            results.push((backend.to_owned(), s));
        }
        println!(
            "\nPlacement against the simulator, {orders} orders per side per backend, {ROUNDS} interleaved rounds ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        for (backend, s) in &results {
            report(backend, s);
        }
    });
}

/// Deletes the bare round trip's keys (the store's namespace is deleted by the store).
async fn cleanup_redis_rt(ns: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(support::redis_url().as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{ns}}}:rt:*"))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}
