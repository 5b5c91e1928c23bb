//! The fault-injection soak: the full place → cancel lifecycle from several tasks and two OS
//! processes, through [`FaultProxy`]s in front of the node simulator, PostgreSQL and Redis,
//! while a seeded fault task injects latency, dropped connections, resets mid-reply and
//! blackholes at random. Then the faults stop, the recovery `Supervisor` and `confirm_all`
//! run until every order is settled (bounded), and the soak checks against the simulator's
//! message log: no record left open, none cancelled twice, none lost, every terminal status
//! consistent with what the node saw.
//!
//! PostgreSQL and Redis run side by side in the same window (each with its own account,
//! schema / namespace and child process). SQLite is a local file: no network to fault.
//!
//! Duration: `ORDERMETA_SOAK_SECS` (default 60; `scripts/soak.sh` runs 600). Seed:
//! `ORDERMETA_SOAK_SEED` (default: the clock; always printed).

#[macro_use]
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Chain, MNEMONIC, details, dydx_proto, market};
use dydx::indexer::{ClientId, Height};
use dydx::node::{OrderBuilder, OrderSide, Wallet};
use ordermeta::dydx::{
    ChainSettings, DydxGateway, OrderGateway, OrderMetaClient, RecordingSwitch, Supervisor,
    SupervisorConfig,
};
use ordermeta::dydx_sim::{MsgKind, OrderStatus as SimStatus};
use ordermeta::postgres::{PgStore, sqlx};
use ordermeta::redis::RedisStore;
use ordermeta::{ListQuery, MetadataStore, OrderMetadata, OrderStatus};
use ordermeta_testkit::child::{self, Child};
use ordermeta_testkit::net::{FaultProxy, ProxyMode};
use ordermeta_testkit::{database_url, redis_url, unique_name};

const CHILD_ENV: &str = "ORDERMETA_SOAK_CHILD";
const TASKS: u32 = 3;
/// Short-term orders are good for this many blocks; blocks advance every [`BLOCK`].
const GOOD_FOR: u32 = 20;
const BLOCK: Duration = Duration::from_millis(500);

fn soak_secs() -> u64 {
    std::env::var("ORDERMETA_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// A tiny seeded generator (xorshift64*): the soak's faults are reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Postgres,
    Redis,
}

/// `url` with its host:port replaced by the proxy's; and the upstream address.
async fn through(url: &str, proxy: Option<&FaultProxy>) -> (SocketAddr, String) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let auth = &rest[..auth_end];
    let host_at = auth.rfind('@').map_or(0, |i| i + 1);
    let hostport = &auth[host_at..];
    let upstream = tokio::net::lookup_host(hostport)
        .await
        .expect("resolve the server")
        .next()
        .expect("an address");
    let url = match proxy {
        Some(p) => format!(
            "{}{}{}",
            &url[..start + host_at],
            p.addr(),
            &rest[auth_end..]
        ),
        None => url.to_owned(),
    };
    (upstream, url)
}

/// Opens the store through a faulty proxy: a process starting during a fault retries, as an
/// operator's would (bounded).
async fn open(kind: Kind, url: &str, name: &str) -> Arc<dyn MetadataStore> {
    retry("open the store", || async {
        let s: Arc<dyn MetadataStore> = match kind {
            Kind::Postgres => Arc::new(
                PgStore::options()
                    .schema(name)
                    .max_connections(4)
                    .connect(url)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Kind::Redis => Arc::new(
                RedisStore::options()
                    .namespace(name)
                    .connect(url)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        Ok(s)
    })
    .await
}

/// Runs `f` until it succeeds, at most 40 times 0.5 s apart.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut last = String::new();
    for _ in 0..40 {
        match f().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what}: still failing after 40 attempts: {last}");
}

async fn client(
    endpoint: String,
    store: Arc<dyn MetadataStore>,
    account: u32,
) -> (Arc<OrderMetaClient>, Arc<DydxGateway>) {
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    let gateway = retry("connect to the simulator", || async {
        DydxGateway::connect(Chain::node_config_for(endpoint.clone()), &wallet, account)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let gateway = Arc::new(gateway);
    let settings = ChainSettings {
        // A claim left behind by a fault becomes re-claimable quickly.
        claim_lease: Duration::from_secs(3),
        ..ChainSettings::default()
    };
    let c = OrderMetaClient::new(gateway.clone(), store, RecordingSwitch::new(true), settings);
    (Arc::new(c), gateway)
}

/// What the lifecycle tasks of one process did.
#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    placed: u64,
    place_failed: u64,
    cancelled: u64,
    cancel_failed: u64,
}

/// Places and cancels short-term orders until `until`, `TASKS` tasks at once; errors are
/// expected (faults) and counted.
async fn lifecycle(
    client: Arc<OrderMetaClient>,
    gateway: Arc<DydxGateway>,
    account: u32,
    base: u32,
    until: Instant,
) -> Tally {
    let wallet = Arc::new(Wallet::from_mnemonic(MNEMONIC).expect("wallet"));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (client, gateway, wallet) = (client.clone(), gateway.clone(), wallet.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut i = 0u32;
            while Instant::now() < until {
                i += 1;
                let Ok(clock) = gateway.clock().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let sub = wallet
                    .account_offline(account)
                    .expect("account")
                    .subaccount(0)
                    .expect("sub");
                let (_, order) = OrderBuilder::new(market(), sub)
                    .limit(OrderSide::Buy, 50_000, 1)
                    .until(Height(clock.height + GOOD_FOR))
                    .build(ClientId(base + t * 100_000 + i))
                    .expect("build order");
                match client.place_order(order, details()).await {
                    Ok(placed) => {
                        tally.placed += 1;
                        match client.cancel_order(&placed.order_id).await {
                            Ok(_) => tally.cancelled += 1,
                            Err(_) => tally.cancel_failed += 1,
                        }
                    }
                    Err(_) => tally.place_failed += 1,
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for t in tasks {
        let x = t.await.expect("join");
        all.placed += x.placed;
        all.place_failed += x.place_failed;
        all.cancelled += x.cancelled;
        all.cancel_failed += x.cancel_failed;
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak() {
    if let Some(spec) = child::payload(CHILD_ENV) {
        let p: Vec<&str> = spec.lines().collect();
        let kind = if p[1] == "postgres" {
            Kind::Postgres
        } else {
            Kind::Redis
        };
        let store = open(kind, p[2], p[3]).await;
        let account: u32 = p[4].parse().expect("account");
        let base: u32 = p[5].parse().expect("base");
        let secs: u64 = p[6].parse().expect("secs");
        let (c, gw) = client(p[0].to_owned(), store, account).await;
        let t = lifecycle(
            c,
            gw,
            account,
            base,
            Instant::now() + Duration::from_secs(secs),
        )
        .await;
        println!(
            "TALLY={} {} {} {}",
            t.placed, t.place_failed, t.cancelled, t.cancel_failed
        );
        return;
    }

    let secs = soak_secs();
    let seed = std::env::var("ORDERMETA_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("soak: {secs} s, seed {seed} (ORDERMETA_SOAK_SEED={seed} replays the faults)");

    let chain = Arc::new(Chain::start().await);
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

    // Blocks advance on their own, so short-term orders expire during the soak.
    let ticking = chain.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(BLOCK).await;
            ticking.sim.advance_blocks(1);
        }
    });

    // The fault task: every 0.3–1 s one fault on one proxy; the previous mode is undone.
    let fault_proxies = proxies.clone();
    let fault_log: Arc<std::sync::Mutex<HashMap<String, u64>>> = Arc::default();
    let log = fault_log.clone();
    let faults = tokio::spawn(async move {
        let mut rng = Rng(seed);
        loop {
            tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
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
            *log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(format!("{name}/{what}"))
                .or_default() += 1;
        }
    });

    let until = Instant::now() + Duration::from_secs(secs);
    let runs = [
        (Kind::Postgres, pg.clone(), database_url(), 0u32),
        (Kind::Redis, redis.clone(), redis_url(), 1u32),
    ];
    let run = |(kind, proxy, url, account): (Kind, Arc<FaultProxy>, String, u32)| {
        let endpoint = endpoint.clone();
        async move {
            let name = unique_name("soak");
            let (_, via) = through(&url, Some(&proxy)).await;
            let store = open(kind, &via, &name).await;
            let (c, gw) = client(endpoint.clone(), store.clone(), account).await;
            let label = if kind == Kind::Postgres {
                "postgres"
            } else {
                "redis"
            };
            let spec = format!("{endpoint}\n{label}\n{via}\n{name}\n{account}\n1000000\n{secs}");
            let kid = Child::spawn("soak", CHILD_ENV, &spec);
            let here = lifecycle(c.clone(), gw, account, 0, until).await;
            let out = kid
                .wait_success_async(Duration::from_secs(secs + 180))
                .await;
            let theirs: Vec<u64> = out
                .value("TALLY")
                .expect("child tally")
                .split(' ')
                .map(|v| v.parse().expect("count"))
                .collect();
            (kind, label, name, url, store, c, here, theirs)
        }
    };
    let [a, b] = runs;
    let (a, b) = tokio::join!(run(a), run(b));
    let results = [a, b];

    // Faults stop; everything heals; every short-term order runs out.
    faults.abort();
    let mut injected: Vec<_> = fault_log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
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
    ticker.abort();
    chain.sim.advance_blocks(GOOD_FOR + 5);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let messages = chain.sim.messages();
    let on_sim: HashMap<String, SimStatus> = chain
        .sim
        .orders()
        .into_iter()
        .map(|o| (key(&o.order_id), o.status))
        .collect();
    let mut failures = Vec::new();
    for (kind, label, name, url, store, c, here, theirs) in results {
        println!(
            "soak[{label}]: this process placed {} (failed {}), cancelled {} (failed {}); \
             the child placed {} (failed {}), cancelled {} (failed {})",
            here.placed,
            here.place_failed,
            here.cancelled,
            here.cancel_failed,
            theirs[0],
            theirs[1],
            theirs[2],
            theirs[3]
        );
        let config = SupervisorConfig {
            pending_after: Duration::from_secs(1),
            ..SupervisorConfig::default()
        };
        let owner = chain.address(if kind == Kind::Postgres { 0 } else { 1 });
        let settle_by = Instant::now() + Duration::from_secs(120);
        let mut rounds = 0;
        let records = loop {
            rounds += 1;
            let report = Supervisor::run_once(&c, &config).await;
            let confirmed = c.confirm_all(Duration::from_secs(5)).await;
            let all = list_all(store.as_ref(), &owner).await;
            let open = all
                .iter()
                .filter(|m| {
                    matches!(
                        m.status,
                        OrderStatus::Pending | OrderStatus::Cancelling | OrderStatus::Active
                    )
                })
                .count();
            if open == 0 || Instant::now() > settle_by {
                println!(
                    "soak[{label}]: recovery settled in {rounds} rounds ({open} open); \
                     last tick {report:?}; confirm {confirmed:?}"
                );
                break all;
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
        };
        failures.extend(check(label, &owner, &records, &messages, &on_sim));
        cleanup(kind, &url, &name).await;
    }
    assert!(failures.is_empty(), "soak found:\n{}", failures.join("\n"));
}

/// A chain order id keyed as core prints an `OrderId`: owner/subaccount/clob_pair/flags/client.
fn key(id: &dydx_proto::dydxprotocol::clob::OrderId) -> String {
    let sub = id.subaccount_id.as_ref();
    format!(
        "{}/{}/{}/{}/{}",
        sub.map_or("", |s| s.owner.as_str()),
        sub.map_or(0, |s| s.number),
        id.clob_pair_id,
        id.order_flags,
        id.client_id
    )
}

async fn list_all(store: &dyn MetadataStore, owner: &str) -> Vec<OrderMetadata> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&ListQuery {
                owner: Some(owner.to_owned()),
                after: after.clone(),
                limit: 500,
                ..ListQuery::default()
            })
            .await
            .expect("list");
        assert!(
            page.invalid.is_empty(),
            "corrupt records: {:?}",
            page.invalid
        );
        out.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// The checks, against the simulator's log: returns what failed.
fn check(
    label: &str,
    owner: &str,
    records: &[OrderMetadata],
    messages: &[ordermeta::dydx_sim::ReceivedMsg],
    on_sim: &HashMap<String, SimStatus>,
) -> Vec<String> {
    type Pid = String;
    let accepted = |m: &&ordermeta::dydx_sim::ReceivedMsg| matches!(m.final_result(), Some(Ok(())));
    let mut placed: HashMap<Pid, usize> = HashMap::new();
    let mut cancels: HashMap<Pid, usize> = HashMap::new();
    for m in messages.iter().filter(accepted) {
        match &m.kind {
            MsgKind::PlaceOrder {
                order_id: Some(id), ..
            } if id.subaccount_id.as_ref().is_some_and(|s| s.owner == owner) => {
                *placed.entry(key(id)).or_default() += 1;
            }
            MsgKind::CancelOrder {
                order_id: Some(id), ..
            } if id.subaccount_id.as_ref().is_some_and(|s| s.owner == owner) => {
                *cancels.entry(key(id)).or_default() += 1;
            }
            _ => {}
        }
    }
    let mut fails = Vec::new();
    let mut by_status: HashMap<OrderStatus, usize> = HashMap::new();
    let mut recorded = std::collections::HashSet::new();
    let mut cancelled_recorded_expired = 0;
    for r in records {
        *by_status.entry(r.status).or_default() += 1;
        let pid: Pid = r.dydx_order_id.to_string();
        recorded.insert(pid.clone());
        let n_cancels = cancels.get(&pid).copied().unwrap_or(0);
        let on_chain = placed.contains_key(&pid);
        if n_cancels > 1 {
            fails.push(format!("{}: cancelled {n_cancels} times", r.order_id));
        }
        let sim = on_sim.get(&pid).copied();
        // The record against the order's true state on the node. An order the node cancelled
        // may be recorded expired: its cancel's answer was lost to a fault, the claim was
        // given back, and the order ran out before anyone cancelled again (counted, not a
        // failure: the order is gone either way and no second cancel was sent).
        match (r.status, sim) {
            (OrderStatus::Pending | OrderStatus::Cancelling | OrderStatus::Active, _) => {
                fails.push(format!(
                    "{}: still {:?} (node: {sim:?})",
                    r.order_id, r.status
                ));
            }
            (_, Some(s)) if s.is_live() || s == SimStatus::PlacePending => {
                fails.push(format!(
                    "{}: {:?}, yet live on the node ({s:?})",
                    r.order_id, r.status
                ));
            }
            (OrderStatus::Failed, Some(s)) => {
                fails.push(format!(
                    "{}: failed, yet the node accepted it ({s:?})",
                    r.order_id
                ));
            }
            (OrderStatus::Cancelled, Some(s)) if s != SimStatus::Canceled => {
                fails.push(format!(
                    "{}: cancelled, yet the node says {s:?}",
                    r.order_id
                ));
            }
            (OrderStatus::Cancelled, _) if on_chain && n_cancels == 0 => {
                fails.push(format!(
                    "{}: cancelled, yet no cancel reached the node",
                    r.order_id
                ));
            }
            (OrderStatus::Expired, Some(SimStatus::Canceled)) => cancelled_recorded_expired += 1,
            (OrderStatus::Expired, Some(s)) if s != SimStatus::Expired => {
                fails.push(format!("{}: expired, yet the node says {s:?}", r.order_id));
            }
            (OrderStatus::Filled, Some(s)) if s != SimStatus::Filled => {
                fails.push(format!("{}: filled, yet the node says {s:?}", r.order_id));
            }
            _ => {}
        }
    }
    let lost: Vec<_> = placed.keys().filter(|p| !recorded.contains(*p)).collect();
    for p in &lost {
        fails.push(format!("lost: the node accepted {p}, no record"));
    }
    println!(
        "soak[{label}]: checked {} records {by_status:?} against {} accepted placements and {} \
         accepted cancels ({} orders on the node): {} cancelled twice, {} lost, \
         {cancelled_recorded_expired} cancelled on the node but recorded expired, {} failures",
        records.len(),
        placed.len(),
        cancels.values().sum::<usize>(),
        on_sim.keys().filter(|k| k.starts_with(owner)).count(),
        cancels.values().filter(|n| **n > 1).count(),
        lost.len(),
        fails.len()
    );
    fails
}

async fn cleanup(kind: Kind, url: &str, name: &str) {
    match kind {
        Kind::Postgres => {
            if let Ok(pool) = sqlx::PgPool::connect(url).await {
                let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                if let Err(e) = sqlx::query(&sql).execute(&pool).await {
                    eprintln!("cleanup of schema {name} failed: {e}");
                }
                pool.close().await;
            }
        }
        Kind::Redis => {
            if let Ok(s) = RedisStore::options().namespace(name).connect(url).await
                && let Err(e) = s.delete_namespace().await
            {
                eprintln!("cleanup of namespace {name} failed: {e}");
            }
        }
    }
}
