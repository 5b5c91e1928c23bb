//! The soak's parts: the stores and clients it opens through the fault proxies, and the
//! place → cancel lifecycle its tasks run (short-term and stateful orders). The crashing
//! children are in [`crash`], the end-of-soak checks in [`check`].

pub mod check;
pub mod crash;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dydx::indexer::{ClientId, Height};
use dydx::node::{OrderBuilder, OrderSide, Wallet};
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta::MetadataStore;
use ordermeta::dydx::{
    CancelRetry, ChainClock, ChainSettings, ConfirmSettings, DydxGateway, NonceMode, OrderGateway,
    OrderMetaClient, RecordingSwitch,
};
use ordermeta::postgres::PgStore;
use ordermeta::redis::RedisStore;

use crate::common::{Chain, MNEMONIC, dydx_proto, market};

/// Lifecycle tasks per process.
pub const TASKS: u32 = 3;
/// Short-term orders of the lifecycle are good for this many blocks.
pub const GOOD_FOR: u32 = 20;
/// One lifecycle order in this many is stateful (long-term).
pub const STATEFUL_EVERY: u32 = 4;
/// Stateful orders are good for this long past the latest block time.
pub const STATEFUL_FOR: Duration = Duration::from_secs(120);
/// The claim lease of the lifecycle clients: longer than one whole cancel (its retries within
/// [`cancel_retry`]'s 3 s budget, one call deadline of 5 s, the write of the outcome), so that
/// the supervisor running beside them never takes over a cancel still in flight.
pub const LEASE: Duration = Duration::from_secs(15);
/// Processes signing stateful txs for one account (this one, the lifecycle child, the
/// crashing children): each has its own lane of timestamp nonces.
pub const LANES: u32 = 3;

/// A tiny seeded generator (xorshift64*): the soak's faults are reproducible from the seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Postgres,
    Redis,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
        }
    }

    pub fn parse(label: &str) -> Self {
        if label == "postgres" {
            Kind::Postgres
        } else {
            Kind::Redis
        }
    }
}

/// `url` with its host:port replaced by the proxy's; and the upstream address.
pub async fn through(url: &str, proxy: Option<SocketAddr>) -> (SocketAddr, String) {
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
        Some(p) => format!("{}{}{}", &url[..start + host_at], p, &rest[auth_end..]),
        None => url.to_owned(),
    };
    (upstream, url)
}

/// Opens the store through a faulty proxy: a process starting during a fault retries, as an
/// operator's would (bounded).
pub async fn open(kind: Kind, url: &str, name: &str) -> Arc<dyn MetadataStore> {
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
pub async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
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

/// The lifecycle clients' cancel retries: at most 3 s of them, so that a whole cancel fits
/// in [`LEASE`].
pub fn cancel_retry() -> CancelRetry {
    CancelRetry {
        max_attempts: 3,
        min_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
        budget: Duration::from_secs(3),
    }
}

/// The settings of a lifecycle client: [`LEASE`], [`cancel_retry`], and confirmations given
/// up before the lease runs out.
pub fn settings() -> ChainSettings {
    ChainSettings {
        claim_lease: LEASE,
        cancel_retry: cancel_retry(),
        confirm: ConfirmSettings {
            within: Duration::from_secs(12),
            ..ConfirmSettings::default()
        },
        ..ChainSettings::default()
    }
}

/// A gateway of `account` through the node proxy at `endpoint`, signing stateful txs with
/// timestamp nonces in `lane` (retried while a fault lasts).
pub async fn gateway(endpoint: &str, account: u32, lane: u32) -> DydxGateway {
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    retry("connect to the simulator", || async {
        DydxGateway::connect(
            Chain::node_config_for(endpoint.to_owned()),
            &wallet,
            account,
        )
        .await
        .map(|g| g.with_nonces(NonceMode::timestamp_lane(lane, LANES)))
        .map_err(|e| e.to_string())
    })
    .await
}

/// A lifecycle client ([`settings`]) and its gateway.
pub async fn client(
    endpoint: &str,
    store: Arc<dyn MetadataStore>,
    account: u32,
    lane: u32,
) -> (Arc<OrderMetaClient>, Arc<DydxGateway>) {
    let gateway = Arc::new(gateway(endpoint, account, lane).await);
    let c = OrderMetaClient::new(
        gateway.clone(),
        store,
        RecordingSwitch::new(true),
        settings(),
    );
    (Arc::new(c), gateway)
}

/// A buy of `account`/subaccount 0 at 50,000 (never filled: the simulator has no matching):
/// short-term good for `blocks`, or stateful good for [`STATEFUL_FOR`].
pub fn order(
    account: u32,
    client_id: u32,
    clock: ChainClock,
    stateful: bool,
    blocks: u32,
) -> Order {
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    let sub = wallet
        .account_offline(account)
        .expect("account")
        .subaccount(0)
        .expect("sub");
    let builder = OrderBuilder::new(market(), sub).limit(OrderSide::Buy, 50_000, 1);
    let builder = if stateful {
        let until = i64::from(clock.block_time) + STATEFUL_FOR.as_secs() as i64;
        builder
            .long_term()
            .until(chrono::DateTime::from_timestamp(until, 0).expect("good-til time"))
    } else {
        builder.until(Height(clock.height + blocks))
    };
    builder.build(ClientId(client_id)).expect("build order").1
}

/// What the lifecycle tasks of one process did.
#[derive(Default, Debug, Clone, Copy)]
pub struct Tally {
    pub placed: u64,
    pub place_failed: u64,
    pub cancelled: u64,
    pub cancel_failed: u64,
    pub stateful_placed: u64,
    pub stateful_cancelled: u64,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.placed += o.placed;
        self.place_failed += o.place_failed;
        self.cancelled += o.cancelled;
        self.cancel_failed += o.cancel_failed;
        self.stateful_placed += o.stateful_placed;
        self.stateful_cancelled += o.stateful_cancelled;
    }

    /// The child's report line (`TALLY=…`).
    pub fn to_line(self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.placed,
            self.place_failed,
            self.cancelled,
            self.cancel_failed,
            self.stateful_placed,
            self.stateful_cancelled
        )
    }

    pub fn from_line(line: &str) -> Tally {
        let v: Vec<u64> = line.split(' ').map(|v| v.parse().expect("count")).collect();
        Tally {
            placed: v[0],
            place_failed: v[1],
            cancelled: v[2],
            cancel_failed: v[3],
            stateful_placed: v[4],
            stateful_cancelled: v[5],
        }
    }
}

/// Places and cancels orders until `until`, [`TASKS`] tasks at once, one order in
/// [`STATEFUL_EVERY`] stateful; errors are expected (faults) and counted. Client ids are
/// `base + task * 100_000 + i`.
pub async fn lifecycle(
    client: Arc<OrderMetaClient>,
    gateway: Arc<DydxGateway>,
    account: u32,
    base: u32,
    until: Instant,
) -> Tally {
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (client, gateway) = (client.clone(), gateway.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut i = 0u32;
            while Instant::now() < until {
                i += 1;
                let Ok(clock) = gateway.clock().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let stateful = (i + t).is_multiple_of(STATEFUL_EVERY);
                let o = order(account, base + t * 100_000 + i, clock, stateful, GOOD_FOR);
                match client.place_order(o, crate::common::details()).await {
                    Ok(placed) => {
                        tally.placed += 1;
                        tally.stateful_placed += u64::from(stateful);
                        match client.cancel_order(&placed.order_id).await {
                            Ok(_) => {
                                tally.cancelled += 1;
                                tally.stateful_cancelled += u64::from(stateful);
                            }
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
        all.add(t.await.expect("join"));
    }
    all
}
