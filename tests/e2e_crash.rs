//! The crash matrix, on SQLite, PostgreSQL and Redis, with the real `dydx` client against the
//! node simulator: a child process (this test binary re-run) is SIGKILLed at each point of an
//! order's life —
//!
//! 1. after `pending` is written, before the broadcast;
//! 2. after the broadcast, before `active` is written;
//! 3. after the cancel claim, before the cancel broadcast;
//! 4. after the cancel broadcast, before `cancelled` is written —
//!
//! for a short-term and a long-term order each. Then this (fresh) process runs the recovery
//! [`Supervisor`] on the same store, and within two lease periods every order is settled: the
//! simulator holds no live order of the account (counted on the simulator, not in our
//! records) and no record is left `pending` or `cancelling`. The same crashes followed by one
//! `cancel_all` (with an `active` order beside them, so every open status is present) leave
//! nothing live either.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dydx::indexer::{ClientId, Height};
use dydx::node::{OrderBuilder, OrderSide, Wallet};
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta::dydx::{
    CancelErrorKind, ChainClock, ChainSettings, DydxGateway, GatewayError, GatewayOptions,
    OrderGateway, OrderMetaClient, RecordingSwitch, Supervisor, SupervisorConfig,
};
use ordermeta::dydx_sim::fixtures;
use ordermeta::{GoodTil, ListQuery, MetadataStoreExt, OrderId, OrderStatus};
use ordermeta_testkit::child::{self, Child};
use ordermeta_testkit::{database_url, redis_url, unique_name};

use common::{Chain, MNEMONIC, details, market};

const CHILD_ENV: &str = "ORDERMETA_CRASH_CHILD";
/// Short, so that recovery of a dead canceller's claim is quick; the supervisor must settle
/// everything within two of these.
const LEASE: Duration = Duration::from_secs(4);
const POINTS: [&str; 4] = [
    "after_pending",
    "after_broadcast",
    "after_claim",
    "after_cancel_broadcast",
];

/// A gateway that stops for ever (until the process is killed) at one point, after printing
/// `AT:<point>` so the parent knows where the child is.
#[derive(Debug)]
struct StopAt {
    inner: DydxGateway,
    point: String,
}

impl StopAt {
    async fn stop_here(&self, point: &str) {
        if self.point == point {
            println!("AT:{point}");
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl OrderGateway for StopAt {
    fn signer(&self) -> String {
        self.inner.signer()
    }
    async fn clock(&self) -> Result<ChainClock, GatewayError> {
        self.inner.clock().await
    }
    async fn place(&self, order: Order) -> Result<String, GatewayError> {
        self.stop_here("after_pending").await;
        let hash = self.inner.place(order).await?;
        self.stop_here("after_broadcast").await;
        Ok(hash)
    }
    async fn cancel(&self, order_id: &OrderId, good_til: GoodTil) -> Result<String, GatewayError> {
        self.stop_here("after_claim").await;
        let hash = self.inner.cancel(order_id, good_til).await?;
        self.stop_here("after_cancel_broadcast").await;
        Ok(hash)
    }
    async fn batch_cancel(
        &self,
        subaccount_number: u32,
        batches: Vec<(u32, Vec<u32>)>,
        good_til_block: u32,
    ) -> Result<String, GatewayError> {
        self.inner
            .batch_cancel(subaccount_number, batches, good_til_block)
            .await
    }
}

fn settings() -> ChainSettings {
    ChainSettings {
        claim_lease: LEASE,
        ..ChainSettings::default()
    }
}

/// The child: place (and, for the cancel points, cancel) one order through a gateway that
/// stops at `point`; the parent kills it there.
async fn child_run(payload: &str) {
    let parts: Vec<&str> = payload.split('\n').collect();
    let [endpoint, store_url, point, kind, client_id] = parts[..] else {
        panic!("bad child payload {payload:?}");
    };
    let client_id: u32 = client_id.parse().expect("client id");
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    let store = ordermeta::open(store_url).await.expect("open the store");
    let inner = DydxGateway::connect_with(
        fixtures::node_config(endpoint.to_owned()),
        &wallet,
        0,
        GatewayOptions::default(),
    )
    .await
    .expect("connect");
    let gateway = StopAt {
        inner,
        point: point.to_owned(),
    };
    let clock = gateway.clock().await.expect("clock");
    let sub = wallet
        .account_offline(0)
        .expect("account")
        .subaccount(0)
        .expect("subaccount");
    let builder = OrderBuilder::new(market(), sub).limit(OrderSide::Buy, 50_000, 1);
    let (_, order) = if kind == "short" {
        builder.until(Height(clock.height + 38))
    } else {
        builder.long_term().until(
            chrono::DateTime::from_timestamp(i64::from(clock.block_time) + 3_600, 0).expect("time"),
        )
    }
    .build(ClientId(client_id))
    .expect("build order");
    let client = OrderMetaClient::new(
        Arc::new(gateway),
        store,
        RecordingSwitch::new(true),
        settings(),
    );
    let placed = client.place_order(order, details()).await.expect("place");
    client.cancel_order(&placed.order_id).await.expect("cancel");
    panic!("the child was to stop at {point} and be killed there");
}

/// How the fresh process brings the crashed orders back under control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recovery {
    /// The recovery supervisor, left running.
    Supervisor,
    /// One `cancel_all` (the kill switch), once the dead cancellers' leases ran out; an
    /// `active` order placed normally is in the mix too.
    CancelAll,
}

/// Runs the whole matrix on the store at `store_url`.
async fn crash_matrix(test_name: &str, store_url: String, recovery: Recovery) {
    let chain = Chain::start().await;
    let store = ordermeta::open(&store_url).await.expect("open the store");
    let mut n = 0u32;
    for point in POINTS {
        for kind in ["short", "long"] {
            n += 1;
            let payload = format!(
                "{}\n{store_url}\n{point}\n{kind}\n{}",
                chain.sim.endpoint(),
                1_000 + n
            );
            let mut c = Child::spawn(test_name, CHILD_ENV, &payload);
            let line = c.wait_for_line("AT:", Duration::from_secs(60));
            assert_eq!(line, format!("AT:{point}"));
            c.kill9();
            // Stateful placements are limited to 2 per block; a new block for each child.
            chain.sim.advance_blocks(1);
        }
    }
    let records = store
        .list_all(&ListQuery::default())
        .await
        .expect("list")
        .items;
    assert_eq!(records.len(), 8, "every child recorded its order first");
    let live_before = chain.sim.open_orders().len();
    assert!(
        live_before >= 4,
        "orders broadcast before the kill rest on the node: {live_before}"
    );

    // A fresh process (this one) takes over the same store.
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    let gateway = DydxGateway::connect(chain.node_config(), &wallet, 0)
        .await
        .expect("connect");
    let client = Arc::new(OrderMetaClient::new(
        Arc::new(gateway),
        store.clone(),
        RecordingSwitch::new(true),
        settings(),
    ));
    if recovery == Recovery::CancelAll {
        let active = client
            .place_order(chain.short_term(0, 2_000, 30), details())
            .await
            .expect("place an active order");
        assert_eq!(client.flush_active_writes(Duration::from_secs(10)).await, 0);
        let open: Vec<OrderStatus> = store
            .list_all(&ListQuery::default())
            .await
            .expect("list")
            .items
            .iter()
            .map(|m| m.status)
            .collect();
        for status in OrderStatus::OPEN {
            assert!(open.contains(&status), "an order is {status}: {open:?}");
        }
        // The dead cancellers' claims must have run out to be taken over.
        tokio::time::sleep(LEASE).await;
        let report = client
            .cancel_all(ordermeta::dydx::CancelScope::All)
            .await
            .expect("cancel_all");
        eprintln!("cancel_all: {:?}", report.counts());
        // A stateful order that was never placed, or whose cancel already reached the node,
        // answers "does not exist" / "already cancelling": settled, not failed.
        for (id, e) in &report.failed {
            assert!(
                matches!(
                    e.kind(),
                    CancelErrorKind::AlreadyCancelled | CancelErrorKind::CancelInProgress
                ),
                "{id}: {e}"
            );
        }
        assert_eq!(
            report.cancelled.len() + report.failed.len(),
            9,
            "{:?}",
            report.counts()
        );
        chain.sim.advance_blocks(1);
        assert!(
            chain.sim.open_orders().is_empty(),
            "{:?}",
            chain.sim.open_orders()
        );
        let m = store.get_required(&active.order_id).await.expect("get");
        assert_eq!(m.status, OrderStatus::Cancelled);
        return;
    }
    let config = SupervisorConfig {
        interval: Duration::from_millis(200),
        pending_after: Duration::from_secs(1),
        ..SupervisorConfig::default()
    };
    let started = Instant::now();
    let supervisor = Supervisor::spawn(client, config);
    let limit = 2 * LEASE;
    loop {
        let open = store
            .list_all(&ListQuery {
                statuses: OrderStatus::OPEN.to_vec(),
                ..ListQuery::default()
            })
            .await
            .expect("list open");
        let live = chain.sim.open_orders();
        if open.items.is_empty() && live.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "not settled within two leases ({limit:?}): records {:?}, live on the node {live:?}",
            open.items
                .iter()
                .map(|m| (&m.order_id, m.status))
                .collect::<Vec<_>>()
        );
        // The chain keeps producing blocks (stateful cancels take effect in the next one).
        tokio::time::sleep(Duration::from_millis(500)).await;
        chain.sim.advance_blocks(1);
    }
    let report = supervisor.stop().await;
    eprintln!("settled in {:?}: {report:?}", started.elapsed());
    for m in store
        .list_all(&ListQuery::default())
        .await
        .expect("list")
        .items
    {
        assert!(
            matches!(m.status, OrderStatus::Cancelled | OrderStatus::Expired),
            "{} ended {}",
            m.order_id,
            m.status
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_sqlite() {
    if let Some(p) = child::payload(CHILD_ENV) {
        return child_run(&p).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("crash.db").display());
    crash_matrix("crash_matrix_sqlite", url, Recovery::Supervisor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_all_after_crashes_sqlite() {
    if let Some(p) = child::payload(CHILD_ENV) {
        return child_run(&p).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("crash.db").display());
    crash_matrix("cancel_all_after_crashes_sqlite", url, Recovery::CancelAll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_postgres() {
    on_postgres("crash_matrix_postgres", Recovery::Supervisor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_all_after_crashes_postgres() {
    on_postgres("cancel_all_after_crashes_postgres", Recovery::CancelAll).await;
}

async fn on_postgres(test_name: &str, recovery: Recovery) {
    if let Some(p) = child::payload(CHILD_ENV) {
        return child_run(&p).await;
    }
    let schema = unique_name("crash");
    let base = database_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    crash_matrix(test_name, format!("{base}{sep}schema={schema}"), recovery).await;
    let pool = ordermeta::postgres::sqlx::PgPool::connect(&base)
        .await
        .expect("cleanup connection");
    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    let _ = ordermeta::postgres::sqlx::query(&drop).execute(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_redis() {
    on_redis("crash_matrix_redis", Recovery::Supervisor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_all_after_crashes_redis() {
    on_redis("cancel_all_after_crashes_redis", Recovery::CancelAll).await;
}

async fn on_redis(test_name: &str, recovery: Recovery) {
    if let Some(p) = child::payload(CHILD_ENV) {
        return child_run(&p).await;
    }
    let ns = unique_name("crash");
    let base = redis_url();
    crash_matrix(test_name, format!("{base}?namespace={ns}"), recovery).await;
    let store = ordermeta::redis::RedisStore::options()
        .namespace(&ns)
        .connect(&base)
        .await
        .expect("cleanup connection");
    let _ = store.delete_namespace().await;
}
