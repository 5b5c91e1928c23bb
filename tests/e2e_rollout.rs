//! Staged rollout and rollback (issue 17), end to end: the unmodified `dydx` client through
//! `DydxGateway` against the local node simulator over gRPC, on real stores (SQLite files, a
//! private PostgreSQL server). Every assertion about the chain is on what the simulator
//! received and holds, not on what ordermeta believes.
//!
//! - 8 tasks place 1,000 short-term orders over 4 markets while an operator thread widens the
//!   rollout scope from one market to all (through a share) and back to none;
//! - fail-open rides out a PostgreSQL outage (every order broadcast, written after the
//!   server returns, then cancelled from its record) while fail-closed broadcasts nothing;
//! - with recording switched off at run time, recorded orders are still cancelled, unrecorded
//!   ones from their id alone or with `cancel_exact`, and a malformed id is `InvalidOrderId`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dydx::indexer::{ClientId, ClobPairId, Height};
use dydx::node::{OrderBuilder, OrderMarketParams, OrderSide, Wallet};
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta::dydx::{
    Backfill, CancelErrorKind, CancelPath, CancelScope, ChainSettings, DydxGateway, FailurePolicy,
    OrderDetails, OrderMetaClient, PlaceError, Placed, RecordOutcome, RecordingSwitch,
    RolloutScope, Share, from_proto_order_id, parse_order_key, to_proto_order_id,
};
use ordermeta::dydx_sim::{
    MsgKind, OrderStatus as SimStatus, SimConfig, SimHandle, SimNode, fixtures,
};
use ordermeta::postgres::PgStoreOptions;
use ordermeta::sqlite::SqliteStore;
use ordermeta::{
    ListQuery, MetadataStore, MetadataStoreExt, OrderId, OrderStatus, OrderType, Side,
};
use ordermeta_testkit::pg::PrivatePg;
use ordermeta_testkit::poll_until;

/// The four markets the orders are spread over (the simulator accepts any clob pair id; it
/// does not simulate clob pair parameters).
const MARKETS: [(u32, &str); 4] = [
    (0, "BTC-USD"),
    (1, "ETH-USD"),
    (2, "SOL-USD"),
    (3, "LINK-USD"),
];

struct Chain {
    sim: SimHandle,
    wallet: Wallet,
}

impl Chain {
    async fn start() -> Self {
        let sim = SimNode::start(SimConfig::default().with_mnemonic(fixtures::MNEMONIC, 2))
            .await
            .expect("start simulator");
        let wallet = Wallet::from_mnemonic(fixtures::MNEMONIC).expect("wallet");
        Chain { sim, wallet }
    }

    async fn client(
        &self,
        store: Arc<dyn MetadataStore>,
        account: u32,
        scope: RolloutScope,
        settings: ChainSettings,
    ) -> OrderMetaClient {
        let gateway = DydxGateway::connect(
            fixtures::node_config(self.sim.endpoint()),
            &self.wallet,
            account,
        )
        .await
        .expect("connect gateway to the simulator");
        OrderMetaClient::new(
            Arc::new(gateway),
            store,
            RecordingSwitch::with_scope(scope),
            settings,
        )
    }

    fn address(&self, account: u32) -> String {
        self.wallet
            .account_offline(account)
            .expect("account")
            .address()
            .to_string()
    }

    /// A short-term buy of `account`/subaccount 0 on clob pair `clob`, good for `blocks`.
    fn short_term(&self, account: u32, clob: u32, client_id: u32, blocks: u32) -> Order {
        let sub = self
            .wallet
            .account_offline(account)
            .expect("account")
            .subaccount(0)
            .expect("subaccount");
        let market = OrderMarketParams {
            clob_pair_id: ClobPairId(clob),
            ..fixtures::market()
        };
        let (_, order) = OrderBuilder::new(market, sub)
            .limit(OrderSide::Buy, 50_000, 1)
            .until(Height(self.sim.height() + blocks))
            .build(ClientId(client_id))
            .expect("build short-term order");
        order
    }

    /// A long-term sell of `account`/subaccount 0 on clob pair 0, good for `secs`.
    fn long_term(&self, account: u32, client_id: u32, secs: i64) -> Order {
        let sub = self
            .wallet
            .account_offline(account)
            .expect("account")
            .subaccount(0)
            .expect("subaccount");
        let (_, order) = OrderBuilder::new(fixtures::market(), sub)
            .limit(OrderSide::Sell, 70_000, 1)
            .long_term()
            .until(self.sim.block_time() + chrono::Duration::seconds(secs))
            .build(ClientId(client_id))
            .expect("build long-term order");
        order
    }

    /// `MsgPlaceOrder`s the node received from `owner`.
    fn placements_of(&self, owner: &str) -> usize {
        self.count(|k| match k {
            MsgKind::PlaceOrder {
                order_id: Some(id), ..
            } => id.subaccount_id.as_ref().is_some_and(|s| s.owner == owner),
            _ => false,
        })
    }

    fn count(&self, pred: impl Fn(&MsgKind) -> bool) -> usize {
        self.sim.messages().iter().filter(|m| pred(&m.kind)).count()
    }

    /// The simulator's status of the order behind an ordermeta id.
    fn status_of(&self, order_id: &str) -> SimStatus {
        let (id, _) = parse_order_key(order_id).expect("an ordermeta id");
        self.sim
            .order(&to_proto_order_id(&id))
            .unwrap_or_else(|| panic!("{order_id}: never reached the node"))
            .status
    }
}

/// The details of an order of `Chain::short_term` (a buy) in market `clob`.
fn details(clob: u32) -> OrderDetails {
    let symbol = MARKETS
        .iter()
        .find(|(id, _)| *id == clob)
        .map_or("BTC-USD", |(_, s)| s);
    OrderDetails {
        symbol: symbol.into(),
        side: Side::Buy,
        quantity: "1".into(),
        price: Some("50000".into()),
        order_type: OrderType::Limit,
    }
}

/// The details of an order of `Chain::long_term` (a sell) in market `clob`.
fn sell_details(clob: u32) -> OrderDetails {
    OrderDetails {
        side: Side::Sell,
        price: Some("70000".into()),
        ..details(clob)
    }
}

async fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn MetadataStore> {
    Arc::new(
        SqliteStore::open(dir.path().join("orders.db"))
            .await
            .expect("open sqlite store"),
    )
}

async fn records(store: &dyn MetadataStore) -> usize {
    store
        .list_all(&ListQuery::default())
        .await
        .expect("list")
        .items
        .len()
}

/// One placement of the scope test: its id, what placement did with its record, and the
/// operator's epoch read just before and just after the call.
struct Outcome {
    placed: Placed,
    id: OrderId,
    before: usize,
    after: usize,
}

/// The scope an operator widens and narrows while the bot trades: one market, two, a
/// quarter of all orders, all, none.
fn phases() -> Vec<RolloutScope> {
    vec![
        RolloutScope::clob_pairs([0]),
        RolloutScope::clob_pairs([0, 1]),
        RolloutScope::share(Share::percent(25).expect("25%")),
        RolloutScope::all(),
        RolloutScope::none(),
    ]
}

/// Epoch value while the operator is between two scopes.
const CHANGING: usize = usize::MAX;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_is_widened_and_narrowed_while_8_tasks_place_1000_orders() {
    const TASKS: u32 = 8;
    const PER_TASK: u32 = 125;
    const TOTAL: usize = (TASKS * PER_TASK) as usize;
    let chain = Arc::new(Chain::start().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sqlite(&dir).await;
    let phases = phases();
    let client = Arc::new(
        chain
            .client(
                store.clone(),
                0,
                phases[0].clone(),
                ChainSettings::default(),
            )
            .await,
    );

    // The operator, on a thread of its own: each fifth of the run moves to the next scope.
    let placed = Arc::new(AtomicUsize::new(0));
    let epoch = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let operator = {
        let (switch, placed, epoch, done, phases) = (
            client.recording().clone(),
            placed.clone(),
            epoch.clone(),
            done.clone(),
            phases.clone(),
        );
        std::thread::spawn(move || {
            for next in 1..phases.len() {
                while placed.load(Ordering::SeqCst) < next * TOTAL / phases.len() {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                epoch.store(CHANGING, Ordering::SeqCst);
                switch.set_scope(phases[next].clone());
                epoch.store(next, Ordering::SeqCst);
            }
        })
    };

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (chain, client, placed, epoch) =
            (chain.clone(), client.clone(), placed.clone(), epoch.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for k in 0..PER_TASK {
                let client_id = task * 1_000 + k + 1;
                let clob = client_id % 4;
                let order = chain.short_term(0, clob, client_id, 30);
                let id = from_proto_order_id(order.order_id.as_ref().expect("id")).expect("id");
                let before = epoch.load(Ordering::SeqCst);
                let p = client
                    .place_order(order, details(clob))
                    .await
                    .expect("placed");
                let after = epoch.load(Ordering::SeqCst);
                placed.fetch_add(1, Ordering::SeqCst);
                out.push(Outcome {
                    placed: p,
                    id,
                    before,
                    after,
                });
            }
            out
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.expect("task"));
    }
    done.store(true, Ordering::SeqCst);
    operator.join().expect("operator thread");
    assert_eq!(
        epoch.load(Ordering::SeqCst),
        phases.len() - 1,
        "the run reached `none`"
    );
    assert_eq!(outcomes.len(), TOTAL);

    // Every order reached the node, recorded or not.
    assert_eq!(chain.placements_of(&chain.address(0)), TOTAL);
    // Every order placed in scope has a record (active, once the client's background writer
    // ran), none outside.
    assert_eq!(client.flush_active_writes(Duration::from_secs(30)).await, 0);
    let mut recorded = 0;
    for o in &outcomes {
        let meta = store.get(&o.placed.order_id).await.expect("get");
        match o.placed.record {
            RecordOutcome::Recorded => {
                recorded += 1;
                let meta = meta.unwrap_or_else(|| panic!("{}: no record", o.placed.order_id));
                assert_eq!(meta.status, OrderStatus::Active);
                assert_eq!(meta.dydx_order_id, o.id);
            }
            RecordOutcome::OutOfScope => {
                assert!(
                    meta.is_none(),
                    "{}: recorded out of scope",
                    o.placed.order_id
                );
            }
            other => panic!("{}: {other:?}", o.placed.order_id),
        }
    }
    assert_eq!(records(store.as_ref()).await, recorded);
    // Where the scope did not change during the call, the decision is exactly the phase's
    // rule; the share phase records exactly the orders whose bucket is below 25 %.
    let mut per_phase: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for o in outcomes
        .iter()
        .filter(|o| o.before == o.after && o.before != CHANGING)
    {
        let scope = &phases[o.before];
        let want = scope.admits(&o.id);
        if o.before == 2 {
            assert_eq!(want, Share::bucket(&o.id) < 2_500);
        }
        assert_eq!(
            o.placed.record == RecordOutcome::Recorded,
            want,
            "{} under {scope}",
            o.placed.order_id
        );
        let e = per_phase.entry(o.before).or_default();
        e.0 += 1;
        e.1 += usize::from(want);
    }
    println!(
        "phase -> (orders placed under it, recorded): {per_phase:?}; recorded in all: {recorded}"
    );
    for (i, scope) in phases.iter().enumerate() {
        let (n, rec) = per_phase.get(&i).copied().unwrap_or_default();
        assert!(n >= 50, "phase {scope}: only {n} orders placed under it");
        match i {
            3 => assert_eq!(rec, n, "all"),
            4 => assert_eq!(rec, 0, "none"),
            _ => assert!(0 < rec && rec < n, "{scope}: {rec} of {n}"),
        }
    }
    let stats = client.rollout_stats();
    assert_eq!(stats.recorded as usize, recorded);
    assert_eq!((stats.recorded + stats.out_of_scope) as usize, TOTAL);
    assert_eq!(stats.recording_failed, 0);
}

fn fail_open() -> ChainSettings {
    ChainSettings {
        failure_policy: FailurePolicy::FailOpen(Backfill {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            budget: Duration::from_secs(300),
            capacity: 10_000,
        }),
        ..ChainSettings::default()
    }
}

/// Places `n` orders of `client` from 8 tasks (client ids from `first`), on the 4 markets.
async fn place_many(
    chain: &Arc<Chain>,
    client: &Arc<OrderMetaClient>,
    account: u32,
    first: u32,
    n: u32,
) -> Vec<Result<Placed, PlaceError>> {
    let mut tasks = Vec::new();
    for task in 0..8 {
        let (chain, client) = (chain.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for client_id in (first..first + n).filter(|c| c % 8 == task) {
                let order = chain.short_term(account, client_id % 4, client_id, 35);
                out.push(client.place_order(order, details(client_id % 4)).await);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_rides_out_a_postgres_outage_and_fail_closed_stops() {
    let pg = tokio::task::block_in_place(|| PrivatePg::start(None));
    let store: Arc<dyn MetadataStore> = Arc::new(
        PgStoreOptions::new()
            .schema("rollout")
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(1))
            .operation_timeout(Duration::from_secs(2))
            .connect(&pg.url())
            .await
            .expect("connect to the private server"),
    );
    let chain = Arc::new(Chain::start().await);
    let (open_owner, closed_owner) = (chain.address(0), chain.address(1));
    let open = Arc::new(
        chain
            .client(store.clone(), 0, RolloutScope::all(), fail_open())
            .await,
    );
    let closed = Arc::new(
        chain
            .client(
                store.clone(),
                1,
                RolloutScope::all(),
                ChainSettings::default(),
            )
            .await,
    );

    // Store up: recorded before the broadcast, as always.
    let before: Vec<Placed> = place_many(&chain, &open, 0, 1, 40)
        .await
        .into_iter()
        .map(|r| r.expect("placed"))
        .collect();
    assert!(before.iter().all(|p| p.record == RecordOutcome::Recorded));

    // The database crashes mid-run.
    tokio::task::block_in_place(|| pg.stop("immediate"));
    let during: Vec<Placed> = place_many(&chain, &open, 0, 1_001, 80)
        .await
        .into_iter()
        .map(|r| r.expect("fail-open placement"))
        .collect();
    assert!(
        during
            .iter()
            .all(|p| p.record == RecordOutcome::Deferred && !p.recorded),
        "every placement during the outage is deferred"
    );
    let refused = place_many(&chain, &closed, 1, 5_001, 16).await;
    assert!(
        refused
            .iter()
            .all(|r| matches!(r, Err(PlaceError::Storage { .. }))),
        "fail-closed refuses every placement while the store is down"
    );
    // What the node saw: every fail-open order, no fail-closed one.
    assert_eq!(chain.placements_of(&open_owner), 120);
    assert_eq!(chain.placements_of(&closed_owner), 0);
    let stats = open.rollout_stats();
    assert_eq!(
        (stats.recorded, stats.recording_failed, stats.fail_open),
        (40, 80, 80)
    );
    let closed_stats = closed.rollout_stats();
    assert_eq!(
        (closed_stats.recording_failed, closed_stats.fail_open),
        (16, 0)
    );

    // The server returns: the write-behind lands every record.
    tokio::task::block_in_place(|| pg.start_again());
    let watched = open.clone();
    poll_until(
        "late records written",
        Duration::from_secs(120),
        move || {
            let s = watched.rollout_stats();
            async move { s.written_late == 80 && s.write_pending == 0 }
        },
    )
    .await;
    let stats = open.rollout_stats();
    println!("fail-open after the outage: {stats:?}; fail-closed: {closed_stats:?}");
    assert_eq!(stats.live_without_metadata, 0);

    // Every order that was placed is cancellable by id, from its record.
    for p in before.iter().chain(&during) {
        let done = open
            .cancel_order(&p.order_id)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", p.order_id));
        assert_eq!(done.path, CancelPath::Record, "{}", p.order_id);
        assert_eq!(
            chain.status_of(&p.order_id),
            SimStatus::Canceled,
            "{}",
            p.order_id
        );
    }
    assert_eq!(
        chain.count(|k| matches!(k, MsgKind::CancelOrder { .. })),
        120
    );
    // And fail-closed trades again, recorded.
    let again = place_many(&chain, &closed, 1, 6_001, 8).await;
    assert!(again.iter().all(|r| r.as_ref().is_ok_and(|p| p.recorded)));
    assert_eq!(chain.placements_of(&closed_owner), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_at_run_time_strands_no_order() {
    let chain = Chain::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sqlite(&dir).await;
    let client = chain
        .client(
            store.clone(),
            0,
            RolloutScope::all(),
            ChainSettings::default(),
        )
        .await;

    // Recorded while the rollout was on.
    let place = |order: Order, clob: u32| client.place_order(order, details(clob));
    let a1 = place(chain.short_term(0, 0, 1, 30), 0).await.expect("a1");
    let a2 = place(chain.short_term(0, 1, 2, 30), 1).await.expect("a2");
    let s1 = client
        .place_order(chain.long_term(0, 3, 600), sell_details(0))
        .await
        .expect("s1");
    chain.sim.advance_blocks(1);
    for p in [&a1, &a2, &s1] {
        assert!(p.recorded);
        assert_eq!(chain.status_of(&p.order_id), SimStatus::Open);
    }

    // Incident: roll back at run time, no restart.
    assert!(client.recording().set(false));

    // Orders recorded before are still cancelled by id, from their records.
    let c = client
        .cancel_order(&a1.order_id)
        .await
        .expect("a1 cancelled");
    assert_eq!(c.path, CancelPath::Record);
    let c = client
        .cancel_order(&s1.order_id)
        .await
        .expect("s1 cancelled");
    assert_eq!(c.path, CancelPath::Record);
    chain.sim.advance_blocks(1);
    assert_eq!(chain.status_of(&a1.order_id), SimStatus::Canceled);
    assert_eq!(chain.status_of(&s1.order_id), SimStatus::Canceled);
    assert_eq!(
        store.get_required(&a1.order_id).await.expect("get").status,
        OrderStatus::Cancelled
    );

    // Placed while off: not recorded, exactly as without ordermeta.
    let b1 = place(chain.short_term(0, 2, 11, 30), 2).await.expect("b1");
    let b2_order = chain.short_term(0, 3, 12, 30);
    // What a legacy bot keeps: the chain's OrderId and the good-til it chose.
    let b2_id = from_proto_order_id(b2_order.order_id.as_ref().expect("id")).expect("id");
    let b2 = place(b2_order, 3).await.expect("b2");
    let b3 = place(chain.long_term(0, 13, 600), 0).await.expect("b3");
    chain.sim.advance_blocks(1);
    for p in [&b1, &b2, &b3] {
        assert_eq!(p.record, RecordOutcome::OutOfScope);
        assert!(store.get(&p.order_id).await.expect("get").is_none());
        assert_eq!(chain.status_of(&p.order_id), SimStatus::Open);
    }

    // Cancelled from the id alone.
    for p in [&b1, &b3] {
        let c = client.cancel_order(&p.order_id).await.expect("from the id");
        assert_eq!((c.path, c.recorded), (CancelPath::OrderId, false));
    }
    // The legacy path: cancel_exact with the OrderId and good-til the bot kept.
    let (_, b2_good_til) = parse_order_key(&b2.order_id).expect("id");
    let c = client
        .cancel_exact(&b2_id, b2_good_til)
        .await
        .expect("exact");
    assert_eq!(c.path, CancelPath::Exact);
    chain.sim.advance_blocks(1);
    for p in [&b1, &b2, &b3] {
        assert_eq!(
            chain.status_of(&p.order_id),
            SimStatus::Canceled,
            "{}",
            p.order_id
        );
    }

    // A malformed id is its own error, and nothing reaches the node.
    let cancels = chain.count(|k| matches!(k, MsgKind::CancelOrder { .. }));
    for bad in [
        "not-an-order-id",
        &format!("{}/0/0/0/1", chain.address(0)),
        &format!("{}@q7", a2.order_id),
    ] {
        let err = client.cancel_order(bad).await.expect_err(bad);
        assert_eq!(err.kind(), CancelErrorKind::InvalidOrderId, "{bad}: {err}");
        assert!(
            err.to_string()
                .contains("owner/subaccount/clob_pair/flags/client_id@b")
        );
    }
    assert_eq!(
        chain.count(|k| matches!(k, MsgKind::CancelOrder { .. })),
        cancels
    );

    // The kill switch still works from the records with recording off.
    let report = client
        .cancel_all(CancelScope::All)
        .await
        .expect("kill switch");
    assert_eq!(report.cancelled.len(), 1, "{:?}", report.counts());
    assert_eq!(chain.status_of(&a2.order_id), SimStatus::Canceled);
    assert!(chain.sim.open_orders().is_empty(), "no order stranded");
    let stats = client.rollout_stats();
    assert_eq!((stats.recorded, stats.out_of_scope), (3, 3));
    assert_eq!(stats.cancelled_without_record, 3);
    println!(
        "rollback: {} cancels and {} batch cancel reached the node; {stats:?}",
        chain.count(|k| matches!(k, MsgKind::CancelOrder { .. })),
        chain.count(|k| matches!(k, MsgKind::BatchCancel { .. }))
    );
}
