//! End-to-end flows shared by every backend: the unmodified `dydx` client, through
//! `DydxGateway`, against the local node simulator over real gRPC. Each flow asserts on what
//! the simulator received, not on what ordermeta believes.

#![allow(dead_code)] // each test binary uses a subset

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dydx::indexer::{ClientId, Height};
use dydx::node::{NodeConfig, OrderBuilder, OrderSide, Wallet};
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta::dydx::{
    CancelErrorKind, ChainSettings, DydxGateway, OrderDetails, OrderMetaClient, PlaceError,
    RecordingSwitch, to_proto_order_id,
};
use ordermeta::dydx_sim::{MsgKind, ReceivedMsg, SimConfig, SimHandle, SimNode, fixtures};
use ordermeta::{GoodTil, MetadataStore, MetadataStoreExt, OrderStatus, OrderType, Side};
use ordermeta_testkit::child::{self, Child};

pub use dydx_proto;

/// The end-to-end tests every store runs. The invoking file defines
/// `async fn fresh(flow)`, which runs `flow(spec)` on a fresh database (file, schema or
/// namespace) and removes it afterwards, and `async fn open(spec) -> Arc<dyn MetadataStore>`,
/// which opens a new handle on it as a restarted process would. `store_down_at_placement`
/// differs per store and stays in each file.
#[allow(unused_macros)] // e2e_testnet does not use it
macro_rules! e2e_flows {
    () => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn place_restart_cancel() {
            fresh(|s| common::place_restart_cancel(move || open(s.clone()))).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn refusals_send_no_cancel() {
            fresh(|s| common::refusals(move || open(s.clone()))).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_cancels_send_one_tx() {
            fresh(|s| common::concurrent_cancels(move || open(s.clone()))).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn recording_off_is_the_old_behaviour() {
            fresh(|s| common::recording_off(move || open(s.clone()))).await;
        }

        /// Current-thread runtime: the `active` write is certainly still queued when the
        /// cancel starts.
        #[tokio::test(flavor = "current_thread")]
        async fn cancel_right_after_place() {
            fresh(|s| common::cancel_right_after_place(move || open(s.clone()))).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn abandoned_active_write_is_reconciled() {
            fresh(|s| common::abandoned_active_write_is_reconciled(move || open(s.clone()))).await;
        }

        /// 8 tasks here and 8 in a second OS process (this test binary re-invoked) cancel
        /// the same order through the same database and the same node: exactly one cancel
        /// tx reaches it.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_cancels_across_processes() {
            if std::env::var_os(common::CHILD_ENV).is_some() {
                // The child works in the parent's database, which the parent removes.
                return common::cancels_across_processes(
                    "concurrent_cancels_across_processes",
                    String::new(),
                    open,
                )
                .await;
            }
            fresh(|s| {
                common::cancels_across_processes("concurrent_cancels_across_processes", s, open)
            })
            .await;
        }
    };
}

/// The test mnemonic and the BTC-USD market (clob pair 0), shared with the simulator's tests.
pub use ordermeta::dydx_sim::fixtures::{MNEMONIC, market};

/// A running simulator with two funded accounts of [`MNEMONIC`].
pub struct Chain {
    pub sim: SimHandle,
    pub wallet: Wallet,
}

impl Chain {
    pub async fn start() -> Self {
        let sim = SimNode::start(SimConfig::default().with_mnemonic(MNEMONIC, 2))
            .await
            .expect("start simulator");
        let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
        Chain { sim, wallet }
    }

    /// A chain that is already running (another process's), reached by its endpoint.
    pub fn node_config_for(endpoint: String) -> NodeConfig {
        fixtures::node_config(endpoint)
    }

    pub fn node_config(&self) -> NodeConfig {
        Self::node_config_for(self.sim.endpoint())
    }

    /// A fresh client — new gRPC connection, new account state — for `account`, over `store`:
    /// what a restarted process builds.
    pub async fn client(&self, store: Arc<dyn MetadataStore>, account: u32) -> OrderMetaClient {
        client_for(self.node_config(), &self.wallet, store, account).await
    }

    pub fn address(&self, account: u32) -> String {
        self.wallet
            .account_offline(account)
            .expect("account")
            .address()
            .to_string()
    }

    /// A short-term limit order of `account`/subaccount 0 on clob pair 0, good for `blocks`.
    pub fn short_term(&self, account: u32, client_id: u32, blocks: u32) -> Order {
        let sub = self
            .wallet
            .account_offline(account)
            .expect("account")
            .subaccount(0)
            .expect("sub");
        let (_, order) = OrderBuilder::new(market(), sub)
            .limit(OrderSide::Buy, 50_000, 1)
            .until(Height(self.sim.height() + blocks))
            .build(ClientId(client_id))
            .expect("build short-term order");
        order
    }

    /// A long-term limit order of `account`/subaccount 0, good for `secs` past the block time.
    pub fn long_term(&self, account: u32, client_id: u32, secs: i64) -> Order {
        let sub = self
            .wallet
            .account_offline(account)
            .expect("account")
            .subaccount(0)
            .expect("sub");
        let (_, order) = OrderBuilder::new(market(), sub)
            .limit(OrderSide::Sell, 70_000, 1)
            .long_term()
            .until(self.sim.block_time() + chrono::Duration::seconds(secs))
            .build(ClientId(client_id))
            .expect("build long-term order");
        order
    }

    /// Every `MsgCancelOrder` the node received for the order recorded under `order_id`'s
    /// chain id.
    pub fn cancels_of(&self, id: &dydx_proto::dydxprotocol::clob::OrderId) -> Vec<ReceivedMsg> {
        self.sim
            .messages()
            .into_iter()
            .filter(
                |m| matches!(&m.kind, MsgKind::CancelOrder { order_id: Some(o), .. } if o == id),
            )
            .collect()
    }

    pub fn count(&self, pred: impl Fn(&MsgKind) -> bool) -> usize {
        self.sim.messages().iter().filter(|m| pred(&m.kind)).count()
    }
}

pub async fn client_for(
    config: NodeConfig,
    wallet: &Wallet,
    store: Arc<dyn MetadataStore>,
    account: u32,
) -> OrderMetaClient {
    let gateway = DydxGateway::connect(config, wallet, account)
        .await
        .expect("connect gateway to the simulator");
    OrderMetaClient::new(
        Arc::new(gateway),
        store,
        RecordingSwitch::new(true),
        ChainSettings::default(),
    )
}

/// The details of [`Chain::short_term`]'s orders (a limit buy).
pub fn details() -> OrderDetails {
    OrderDetails {
        symbol: "BTC-USD".into(),
        side: Side::Buy,
        quantity: "1".into(),
        price: Some("50000".into()),
        order_type: OrderType::Limit,
    }
}

/// The details of [`Chain::long_term`]'s orders (a limit sell): the client refuses details
/// that contradict the order.
pub fn sell_details() -> OrderDetails {
    OrderDetails {
        side: Side::Sell,
        price: Some("70000".into()),
        ..details()
    }
}

fn sim_good_til(kind: &MsgKind) -> Option<GoodTil> {
    match kind {
        MsgKind::CancelOrder { good_til, .. } => good_til.map(|g| match g {
            ordermeta::dydx_sim::GoodTil::Block(b) => GoodTil::Block(b),
            ordermeta::dydx_sim::GoodTil::BlockTime(t) => GoodTil::BlockTime(t),
        }),
        _ => None,
    }
}

/// Place a short-term and a long-term order, drop everything (a restart), reopen the store
/// and a new connection, cancel both by id: the node received exactly one cancel each, with
/// the placed OrderId and the order's own good-til, and removed both orders.
pub async fn place_restart_cancel<S, F>(open: S)
where
    S: Fn() -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let chain = Chain::start().await;
    let (short, long) = {
        let client = chain.client(open().await, 0).await;
        let short = client
            .place_order(chain.short_term(0, 11, 20), details())
            .await
            .expect("place short-term");
        let long = client
            .place_order(chain.long_term(0, 12, 3600), sell_details())
            .await
            .expect("place long-term");
        // A graceful shutdown: the `active` writes still queued are written before the
        // client goes (see `abandoned_active_write_is_reconciled` for an abrupt one).
        assert_eq!(client.flush_active_writes(Duration::from_secs(10)).await, 0);
        (short, long)
    };
    chain.sim.advance_blocks(1);

    let store = open().await;
    let client = chain.client(store.clone(), 0).await;
    for placed in [&short, &long] {
        let meta = store
            .get_required(&placed.order_id)
            .await
            .expect("metadata survives restart");
        assert_eq!(meta.status, OrderStatus::Active);
        assert_eq!(meta.tx_hash.as_deref(), Some(placed.tx_hash.as_str()));
        let proto = to_proto_order_id(&meta.dydx_order_id);
        assert!(
            chain
                .sim
                .order(&proto)
                .expect("on the book")
                .status
                .is_live()
        );

        let done = client
            .cancel_order(&placed.order_id)
            .await
            .expect("cancel by id");
        chain.sim.advance_blocks(1);
        // A stateful cancel is final once its block executed it: confirm it (the supervisor
        // does this on its own each tick).
        client.confirm_all(std::time::Duration::from_secs(5)).await;

        let cancels = chain.cancels_of(&proto);
        assert_eq!(
            cancels.len(),
            1,
            "exactly one MsgCancelOrder for {}",
            placed.order_id
        );
        assert_eq!(cancels[0].code(), 0, "accepted: {:?}", cancels[0].result);
        assert_eq!(
            sim_good_til(&cancels[0].kind),
            Some(meta.good_til),
            "the order's own good-til"
        );
        assert_eq!(
            cancels[0].tx_hash.to_uppercase(),
            done.tx_hash.to_uppercase()
        );
        let state = chain.sim.order(&proto).expect("known to the node");
        assert!(
            !state.status.is_live(),
            "{} still live: {:?}",
            placed.order_id,
            state.status
        );

        let after = store.get_required(&placed.order_id).await.expect("get");
        assert_eq!(after.status, OrderStatus::Cancelled);
        assert_eq!(after.cancel_tx_hash.as_deref(), Some(done.tx_hash.as_str()));
        assert!(after.cancelled_at.is_some());
    }
}

/// Expired (by height and by time), filled, already-cancelled, not-owned and unknown ids each
/// give their error, and the node received no cancel for them.
pub async fn refusals<S, F>(open: S)
where
    S: Fn() -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let chain = Chain::start().await;
    let store = open().await;
    let me = chain.client(store.clone(), 0).await;
    let other = chain.client(store.clone(), 1).await;

    let expiring = me
        .place_order(chain.short_term(0, 21, 2), details())
        .await
        .expect("place");
    let expiring_lt = me
        .place_order(chain.long_term(0, 22, 30), sell_details())
        .await
        .expect("place");
    let filled = me
        .place_order(chain.short_term(0, 23, 20), details())
        .await
        .expect("place");
    let cancelled = me
        .place_order(chain.short_term(0, 24, 20), details())
        .await
        .expect("place");
    let theirs = other
        .place_order(chain.short_term(1, 25, 20), details())
        .await
        .expect("place");
    // `me` reads `other`'s record: written `active` by `other`'s writer first (the queued
    // write of another client is not `me`'s to run).
    assert_eq!(other.flush_active_writes(Duration::from_secs(10)).await, 0);
    chain.sim.advance_blocks(1);

    me.cancel_order(&cancelled.order_id)
        .await
        .expect("first cancel");
    let fill_meta = store.get_required(&filled.order_id).await.expect("get");
    chain
        .sim
        .fill(
            &to_proto_order_id(&fill_meta.dydx_order_id),
            ordermeta::dydx_sim::Fill::Full,
        )
        .expect("fill on the node");
    me.mark_filled(&filled.order_id).await.expect("fill feed");
    chain.sim.advance_blocks(3);
    chain
        .sim
        .set_block_time(chain.sim.block_time() + chrono::Duration::seconds(120))
        .expect("advance block time");
    chain.sim.advance_blocks(1);

    let cancels_before = chain.count(|k| matches!(k, MsgKind::CancelOrder { .. }));
    let cases = [
        (expiring.order_id.as_str(), CancelErrorKind::OrderExpired),
        (expiring_lt.order_id.as_str(), CancelErrorKind::OrderExpired),
        (filled.order_id.as_str(), CancelErrorKind::AlreadyFilled),
        (
            cancelled.order_id.as_str(),
            CancelErrorKind::AlreadyCancelled,
        ),
        (theirs.order_id.as_str(), CancelErrorKind::NotOwner),
        ("no-such-order", CancelErrorKind::InvalidOrderId),
    ];
    for (id, kind) in cases {
        let err = me.cancel_order(id).await.expect_err(id);
        assert_eq!(err.kind(), kind, "{id}: {err}");
    }
    assert_eq!(
        chain.count(|k| matches!(k, MsgKind::CancelOrder { .. })),
        cancels_before,
        "no cancel reached the node"
    );
    for id in [&expiring.order_id, &expiring_lt.order_id] {
        assert_eq!(
            store.get_required(id).await.expect("get").status,
            OrderStatus::Expired
        );
    }
    assert_eq!(
        store
            .get_required(&theirs.order_id)
            .await
            .expect("get")
            .status,
        OrderStatus::Active,
        "not-owned order untouched"
    );
}

/// 16 concurrent cancels of one order from one client: exactly one cancel tx reached the node.
pub async fn concurrent_cancels<S, F>(open: S)
where
    S: Fn() -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let chain = Chain::start().await;
    let store = open().await;
    let client = Arc::new(chain.client(store.clone(), 0).await);
    let placed = client
        .place_order(chain.short_term(0, 31, 20), details())
        .await
        .expect("place");
    let wins = cancel_many(client.clone(), &placed.order_id, 16).await;
    assert_eq!(wins, 1);
    let meta = store.get_required(&placed.order_id).await.expect("get");
    assert_eq!(
        chain
            .cancels_of(&to_proto_order_id(&meta.dydx_order_id))
            .len(),
        1
    );
}

/// The store is down at placement: the order is not broadcast.
pub async fn store_down_places_nothing(broken: Arc<dyn MetadataStore>) {
    let chain = Chain::start().await;
    let client = chain.client(broken, 0).await;
    let err = client
        .place_order(chain.short_term(0, 41, 20), details())
        .await
        .expect_err("must refuse");
    assert!(matches!(err, PlaceError::Storage { .. }), "{err}");
    assert_eq!(
        chain.count(|k| matches!(k, MsgKind::PlaceOrder { .. })),
        0,
        "nothing reached the node"
    );
}

/// Recording off: placement works as before (the node gets it, nothing is recorded) and
/// cancel-by-id still cancels it, from the id alone (issue 17: no rollback strands an order).
pub async fn recording_off<S, F>(open: S)
where
    S: Fn() -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let chain = Chain::start().await;
    let store = open().await;
    let client = chain.client(store.clone(), 0).await;
    client.recording().set(false);
    let placed = client
        .place_order(chain.short_term(0, 51, 20), details())
        .await
        .expect("place");
    assert!(!placed.recorded);
    assert_eq!(chain.count(|k| matches!(k, MsgKind::PlaceOrder { .. })), 1);
    assert!(
        store.get(&placed.order_id).await.expect("get").is_none(),
        "nothing recorded"
    );
    let cancelled = client
        .cancel_order(&placed.order_id)
        .await
        .expect("cancelled from the id");
    assert!(!cancelled.recorded);
    assert_eq!(chain.count(|k| matches!(k, MsgKind::CancelOrder { .. })), 1);
    // Flipped back on at run time, without a restart, recording resumes.
    client.recording().set(true);
    let placed = client
        .place_order(chain.short_term(0, 52, 20), details())
        .await
        .expect("place");
    assert!(placed.recorded);
    assert!(store.get(&placed.order_id).await.expect("get").is_some());
}

/// The environment variable that makes a test binary the child of
/// [`cancels_across_processes`]; its value is the chain's endpoint, the store spec and the
/// order id, one per line.
pub const CHILD_ENV: &str = "ORDERMETA_E2E_CHILD";

/// 8 tasks in this process and 8 in a second OS process (this test binary re-invoked on
/// `test_name`) cancel one order through the same database (`store_spec`, handed to `open`
/// in both processes) and the same node: exactly one cancel tx reaches the node.
///
/// In the child (recognised by [`CHILD_ENV`]) it only runs its 8 cancels and prints how many
/// it won; the parent's `store_spec` is then ignored.
pub async fn cancels_across_processes<O, F>(test_name: &str, store_spec: String, open: O)
where
    O: Fn(String) -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    if let Some(spec) = child::payload(CHILD_ENV) {
        let mut parts = spec.lines();
        let (endpoint, store_spec, id) = (
            parts.next().expect("endpoint").to_owned(),
            parts.next().expect("store spec").to_owned(),
            parts.next().expect("order id").to_owned(),
        );
        let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
        let client = client_for(
            Chain::node_config_for(endpoint),
            &wallet,
            open(store_spec).await,
            0,
        )
        .await;
        let wins = cancel_many(Arc::new(client), &id, 8).await;
        println!("WINS={wins}");
        return;
    }
    let chain = Chain::start().await;
    let store = open(store_spec.clone()).await;
    let client = Arc::new(chain.client(store.clone(), 0).await);
    let placed = client
        .place_order(chain.short_term(0, 61, 30), details())
        .await
        .expect("place");
    // The child process reads the record: `active` first (another process sees `pending`
    // until this client's writer ran, and answers `PlacementPending` meanwhile).
    assert_eq!(client.flush_active_writes(Duration::from_secs(10)).await, 0);

    let spec = format!(
        "{}\n{store_spec}\n{}",
        chain.sim.endpoint(),
        placed.order_id
    );
    let child = Child::spawn(test_name, CHILD_ENV, &spec);
    let here = cancel_many(client.clone(), &placed.order_id, 8).await;
    let child_wins: usize = child
        .wait_success_async(Duration::from_secs(120))
        .await
        .parsed("WINS");
    assert_eq!(
        here + child_wins,
        1,
        "exactly one canceller won across both processes"
    );
    let meta = store.get_required(&placed.order_id).await.expect("get");
    assert_eq!(
        chain
            .cancels_of(&to_proto_order_id(&meta.dydx_order_id))
            .len(),
        1
    );
    assert_eq!(meta.status, OrderStatus::Cancelled);
}

/// Each order is cancelled by id the moment its placement returns, its `active` write still
/// queued (the default background write; a current-thread runtime, so the writer has not
/// run): the cancel writes it first and cancels from the record. The node received exactly
/// one cancel per order and holds none live; each record is `cancelled` with both hashes.
pub async fn cancel_right_after_place<S, F>(open: S)
where
    S: Fn() -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let chain = Chain::start().await;
    let store = open().await;
    let client = chain.client(store.clone(), 0).await;
    for n in 0..5 {
        let placed = client
            .place_order(chain.short_term(0, 81 + n, 20), details())
            .await
            .expect("place");
        assert_eq!(client.active_writes_queued(), 1, "the write is queued");
        let done = client
            .cancel_order(&placed.order_id)
            .await
            .expect("cancel at once");
        assert_eq!(done.path, ordermeta::dydx::CancelPath::Record);
        let meta = store.get_required(&placed.order_id).await.expect("get");
        assert_eq!(meta.status, OrderStatus::Cancelled);
        assert_eq!(meta.tx_hash.as_deref(), Some(placed.tx_hash.as_str()));
        assert_eq!(meta.cancel_tx_hash.as_deref(), Some(done.tx_hash.as_str()));
        let proto = to_proto_order_id(&meta.dydx_order_id);
        assert_eq!(chain.cancels_of(&proto).len(), 1, "one cancel");
        let state = chain.sim.order(&proto).expect("known to the node");
        assert!(!state.status.is_live(), "{:?}", state.status);
    }
    assert_eq!(client.flush_active_writes(Duration::from_secs(10)).await, 0);
}

/// A process stops abruptly right after a placement — its runtime dropped with the `active`
/// write queued, so the write is abandoned: the record stays `pending` (another client's
/// cancel answers `PlacementPending`), and reconciliation cancels the order on chain; the
/// node agrees it is no longer live.
pub async fn abandoned_active_write_is_reconciled<S, F>(open: S)
where
    S: Fn() -> F + Clone + Send + 'static,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let chain = Chain::start().await;
    let endpoint = chain.sim.endpoint();
    let order = chain.short_term(0, 91, 30);
    let open_there = open.clone();
    let placed = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
            let config = Chain::node_config_for(endpoint);
            let client = client_for(config, &wallet, open_there().await, 0).await;
            let placed = client.place_order(order, details()).await.expect("place");
            assert_eq!(client.active_writes_queued(), 1, "the write is queued");
            placed
        })
        // The runtime goes here, and its writer task with the queued write.
    })
    .await
    .expect("the placing process");

    let store = open().await;
    let meta = store.get_required(&placed.order_id).await.expect("get");
    assert_eq!(meta.status, OrderStatus::Pending, "the write was abandoned");
    let proto = to_proto_order_id(&meta.dydx_order_id);
    assert!(chain.sim.order(&proto).expect("placed").status.is_live());

    let client = chain.client(store.clone(), 0).await;
    let err = client
        .cancel_order(&placed.order_id)
        .await
        .expect_err("pending");
    assert_eq!(err.kind(), CancelErrorKind::PlacementPending, "{err}");
    let report = client
        .reconcile_pending(Duration::ZERO)
        .await
        .expect("reconcile");
    assert_eq!(report.cancelled, 1, "{report:?}");
    let meta = store.get_required(&placed.order_id).await.expect("get");
    assert_eq!(meta.status, OrderStatus::Cancelled);
    assert_eq!(chain.cancels_of(&proto).len(), 1);
    let state = chain.sim.order(&proto).expect("known to the node");
    assert!(!state.status.is_live(), "{:?}", state.status);
}

/// Runs `flow` on `spec`, the name of a fresh database (schema or namespace), then
/// `cleanup(spec)`.
pub async fn run_then_clean<F, Fut, C, CFut>(spec: String, flow: F, cleanup: C)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
    C: FnOnce(String) -> CFut,
    CFut: Future<Output = ()>,
{
    flow(spec.clone()).await;
    cleanup(spec).await;
}

/// `n` concurrent cancels of `id`; returns how many succeeded. Every loser must be told the
/// cancel is in progress or done.
async fn cancel_many(client: Arc<OrderMetaClient>, id: &str, n: usize) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = client.clone();
            let id = id.to_owned();
            tokio::spawn(async move { c.cancel_order(&id).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => wins += 1,
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    CancelErrorKind::CancelInProgress | CancelErrorKind::AlreadyCancelled
                ),
                "{e}"
            ),
        }
    }
    wins
}
