//! The fault-injection soak: the full place → cancel lifecycle of short-term and stateful
//! orders from several tasks and two OS processes, through [`FaultProxy`]s in front of the
//! node simulator, PostgreSQL and Redis, while a seeded fault task injects latency, dropped
//! connections, resets mid-reply and blackholes at random — and while crashing children
//! (this test binary re-run) are SIGKILLed one after another at every point of an order's
//! life: after `pending` is written, after the broadcast, after the cancel claim, after the
//! cancel broadcast. A recovery [`Supervisor`] runs beside the lifecycle all along.
//!
//! Then the faults stop, recovery rounds run until nothing is `pending` or `cancelling`,
//! the chain's clock jumps past every good-til and the last rounds expire what is left
//! (bounded). The soak checks every record against the simulator's message log and book: no
//! record left open, none cancelled twice, none lost, every terminal status consistent with
//! what the node saw. It prints what it injected, what it checked, and how often each
//! recovery path ran — old `pending` records reconciled, stale claims re-driven, stateful
//! txs confirmed after their block… — and fails if one of them never ran.
//!
//! PostgreSQL and Redis run side by side in the same window (each with its own account,
//! schema / namespace and child processes). SQLite is a local file: no network to fault.
//!
//! Duration: `ORDERMETA_SOAK_SECS` (default 60; `scripts/soak.sh` runs 600), plus about
//! 20 s of recovery and checks. Seed: `ORDERMETA_SOAK_SEED` (default: the clock; always
//! printed).

#[macro_use]
mod common;
mod soak_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dydx::node::Wallet;
use ordermeta::dydx::{OrderMetaClient, Supervisor, SupervisorConfig};
use ordermeta::dydx_sim::{BlockClock, RateLimit, RateLimits, SimConfig, SimNode};
use ordermeta::{MetadataStore, OrderStatus};
use ordermeta_testkit::child::{self, Child};
use ordermeta_testkit::net::{FaultProxy, ProxyMode};
use ordermeta_testkit::{database_url, redis_url, unique_name};

use common::{Chain, MNEMONIC};
use soak_support::check::{Paths, check, cleanup, key, list_all, open_count};
use soak_support::crash::{self, CRASH_GOOD_FOR};
use soak_support::{Kind, Rng, STATEFUL_FOR, Tally, client, lifecycle, open, through};

const CHILD_ENV: &str = "ORDERMETA_SOAK_CHILD";
/// A block every this long; block times follow the wall clock (as timestamp nonces need).
const BLOCK: Duration = Duration::from_millis(500);
/// The supervisor beside the lifecycle settles `pending` records this old: above one whole
/// placement still in flight (the `pending` write's deadline, the broadcast's, and more), so
/// that it never cancels one from under its placer.
const PENDING_AFTER: Duration = Duration::from_secs(15);
/// Bound of each recovery phase after the soak.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

fn soak_secs() -> u64 {
    std::env::var("ORDERMETA_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The lifecycle child (payload: `lifecycle`, node endpoint, store kind, store URL, schema or
/// namespace, account, first client id, end of the window in unix ms): the lifecycle until
/// the end of the window, confirming its stateful txs as it goes and at the end.
async fn lifecycle_child(p: &[&str]) {
    let [_, endpoint, kind, url, name, account, base, end_ms] = p[..] else {
        panic!("bad lifecycle payload {p:?}");
    };
    let account: u32 = account.parse().expect("account");
    let base: u32 = base.parse().expect("base");
    let end_ms: u64 = end_ms.parse().expect("end");
    let until = Instant::now() + Duration::from_millis(end_ms.saturating_sub(unix_ms()));
    let store = open(Kind::parse(kind), url, name).await;
    let (c, gw) = client(endpoint, store, account, 1).await;
    let confirmed = Arc::new(AtomicU64::new(0));
    let confirming = {
        let (c, confirmed) = (c.clone(), confirmed.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let r = c.confirm_outstanding().await;
                confirmed.fetch_add(r.confirmed as u64, Ordering::Relaxed);
            }
        })
    };
    let t = lifecycle(c.clone(), gw, account, base, until).await;
    confirming.abort();
    let last = c.confirm_all(Duration::from_secs(12)).await;
    println!("TALLY={}", t.to_line());
    println!(
        "CONFIRMED={}",
        confirmed.load(Ordering::Relaxed) + last.confirmed as u64
    );
}

/// One store's run: its schema or namespace, the handle and client of this process, and what
/// it reached.
struct Run {
    kind: Kind,
    name: String,
    url: String,
    store: Arc<dyn MetadataStore>,
    client: Arc<OrderMetaClient>,
    owner: String,
    paths: Paths,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak() {
    if let Some(spec) = child::payload(CHILD_ENV) {
        let p: Vec<&str> = spec.lines().collect();
        return match p.first() {
            Some(&"crash") => crash::child(&p).await,
            _ => lifecycle_child(&p).await,
        };
    }

    let secs = soak_secs();
    let seed = std::env::var("ORDERMETA_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| unix_ms().wrapping_mul(1_000_003) | 1);
    println!("soak: {secs} s, seed {seed} (ORDERMETA_SOAK_SEED={seed} replays the faults)");

    // Wall-clock block times for timestamp nonces (several processes sign stateful txs for
    // one account); stateful placements limited per block as on chain, without the chain's
    // 20 per 100 blocks, which would allow a few dozen in the whole soak.
    let config = SimConfig::default()
        .with_mnemonic(MNEMONIC, 2)
        .with_block_clock(BlockClock::WallClock)
        .with_rate_limits(RateLimits {
            stateful: vec![RateLimit {
                num_blocks: 1,
                limit: 4,
            }],
            ..RateLimits::default()
        });
    let sim = SimNode::start(config).await.expect("start simulator");
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    let chain = Arc::new(Chain { sim, wallet });
    let node = Arc::new(FaultProxy::start(chain.sim.local_addr()).await);
    let endpoint = format!("http://{}", node.addr());
    let (pg_up, _) = through(&database_url(), None).await;
    let (redis_up, _) = through(&redis_url(), None).await;
    let pg = Arc::new(FaultProxy::start(pg_up).await);
    let redis = Arc::new(FaultProxy::start(redis_up).await);
    let proxies: Vec<(&str, Arc<FaultProxy>)> = vec![
        ("node", node.clone()),
        ("postgres", pg.clone()),
        ("redis", redis.clone()),
    ];

    let ticking = chain.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(BLOCK).await;
            ticking.sim.advance_blocks(1);
        }
    });

    // The fault task: every 0.3–1 s one fault on one proxy (the previous latency is undone),
    // until the end of the window; then every proxy heals.
    let until = Instant::now() + Duration::from_secs(secs);
    let until_ms = unix_ms() + secs * 1_000;
    let fault_proxies = proxies.clone();
    let faults = tokio::spawn(async move {
        let mut rng = Rng(seed);
        let mut log: HashMap<String, u64> = HashMap::new();
        loop {
            tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
            if Instant::now() >= until {
                break;
            }
            let (name, p) = &fault_proxies[rng.below(3) as usize];
            for (_, q) in &fault_proxies {
                if matches!(q.mode(), ProxyMode::Latency(_)) {
                    q.set_mode(ProxyMode::Pass);
                }
            }
            let what = match rng.below(4) {
                0 => {
                    p.set_mode(ProxyMode::Latency(Duration::from_millis(
                        20 + rng.below(300),
                    )));
                    "latency"
                }
                1 => {
                    p.drop_connections();
                    "drop"
                }
                2 => {
                    p.reset_next_reply(rng.below(200) as usize);
                    "reset"
                }
                _ => {
                    p.blackhole_for(Duration::from_millis(500 + rng.below(3500)));
                    "blackhole"
                }
            };
            *log.entry(format!("{name}/{what}")).or_default() += 1;
        }
        for (_, p) in &fault_proxies {
            p.heal();
        }
        log
    });

    let run = |(kind, proxy, url, account): (Kind, Arc<FaultProxy>, String, u32)| {
        let (endpoint, chain) = (endpoint.clone(), chain.clone());
        async move {
            let name = unique_name("soak");
            let (_, via) = through(&url, Some(proxy.addr())).await;
            let store = open(kind, &via, &name).await;
            let (c, gw) = client(&endpoint, store.clone(), account, 0).await;
            let supervisor = Supervisor::spawn(
                c.clone(),
                SupervisorConfig {
                    interval: Duration::from_secs(1),
                    pending_after: PENDING_AFTER,
                    ..SupervisorConfig::default()
                },
            );
            let label = kind.label();
            let spec = format!(
                "lifecycle\n{endpoint}\n{label}\n{via}\n{name}\n{account}\n1000000\n{until_ms}"
            );
            let kid = Child::spawn("soak", CHILD_ENV, &spec);
            let (here, kills) = tokio::join!(
                lifecycle(c.clone(), gw, account, 0, until),
                crash::drive(kind, &endpoint, &via, &name, account, CHILD_ENV, until),
            );
            let out = kid
                .wait_success_async(Duration::from_secs(secs + 180))
                .await;
            let supervised = supervisor.stop().await;
            let paths = Paths {
                here,
                child: Tally::from_line(out.value("TALLY").expect("child tally")),
                child_confirmed: out.parsed("CONFIRMED"),
                kills,
                supervisor: supervised,
                confirmed_after: 0,
            };
            Run {
                kind,
                name,
                url,
                store,
                client: c,
                owner: chain.address(account),
                paths,
            }
        }
    };
    let (a, b) = tokio::join!(
        run((Kind::Postgres, pg.clone(), database_url(), 0)),
        run((Kind::Redis, redis.clone(), redis_url(), 1)),
    );
    let mut runs = [a, b];

    let mut injected: Vec<_> = faults
        .await
        .expect("fault task")
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    injected.sort();
    println!(
        "soak: faults injected (proxy/kind=count): {}",
        injected.join(" ")
    );
    for (name, p) in &proxies {
        p.heal();
        println!("soak: injected on {name}: {}", p.counts());
    }

    // Recovery with blocks still coming: until nothing is pending or claimed.
    let settle = SupervisorConfig {
        pending_after: Duration::from_secs(1),
        ..SupervisorConfig::default()
    };
    let rounds = recover(&mut runs, &settle, |all| {
        all.iter()
            .all(|m| !matches!(m.status, OrderStatus::Pending | OrderStatus::Cancelling))
    })
    .await;
    println!("soak: nothing pending or claimed after {rounds} recovery rounds");

    // The chain's clock passes every good-til: what is still active expires.
    ticker.abort();
    let past = chain.sim.block_time() + STATEFUL_FOR + Duration::from_secs(10);
    chain.sim.set_block_time(past).expect("move the block time");
    chain.sim.advance_blocks(CRASH_GOOD_FOR + 5);
    let rounds = recover(&mut runs, &settle, |all| open_count(all) == 0).await;
    println!("soak: every record settled after {rounds} more rounds");

    let messages = chain.sim.messages();
    let on_sim: HashMap<String, _> = chain
        .sim
        .orders()
        .into_iter()
        .map(|o| (key(&o.order_id), o.status))
        .collect();
    let mut failures = Vec::new();
    for r in &runs {
        let label = r.kind.label();
        let (h, c) = (r.paths.here, r.paths.child);
        println!(
            "soak[{label}]: this process placed {} ({} stateful; failed {}), cancelled {} ({} \
             stateful; failed {}); the child placed {} ({} stateful; failed {}), cancelled {} \
             ({} stateful; failed {})",
            h.placed,
            h.stateful_placed,
            h.place_failed,
            h.cancelled,
            h.stateful_cancelled,
            h.cancel_failed,
            c.placed,
            c.stateful_placed,
            c.place_failed,
            c.cancelled,
            c.stateful_cancelled,
            c.cancel_failed
        );
        let records = list_all(r.store.as_ref(), &r.owner).await;
        failures.extend(check(label, &r.owner, &records, &messages, &on_sim));
        failures.extend(r.paths.report(label));
        cleanup(r.kind, &r.url, &r.name).await;
    }
    assert!(failures.is_empty(), "soak found:\n{}", failures.join("\n"));
}

/// Recovery rounds on every run — one supervisor tick and a confirmation pass each — until
/// `done` holds for the records of each, or [`SETTLE_WITHIN`]; returns the rounds run.
async fn recover(
    runs: &mut [Run],
    config: &SupervisorConfig,
    done: impl Fn(&[ordermeta::OrderMetadata]) -> bool,
) -> u32 {
    let deadline = Instant::now() + SETTLE_WITHIN;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut all_done = true;
        for r in runs.iter_mut() {
            r.paths.supervisor += Supervisor::run_once(&r.client, config).await;
            let confirmed = r.client.confirm_all(Duration::from_secs(3)).await;
            r.paths.confirmed_after += confirmed.confirmed as u64;
            all_done &= done(&list_all(r.store.as_ref(), &r.owner).await);
        }
        if all_done || Instant::now() > deadline {
            return rounds;
        }
        tokio::time::sleep(Duration::from_millis(1_000)).await;
    }
}
