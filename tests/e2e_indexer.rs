//! End to end, the indexer sync (issue 13) on SQLite, PostgreSQL and Redis: the unmodified
//! `dydx` client — `NodeClient` through `DydxGateway`, `IndexerClient` through `DydxIndexer` —
//! against the simulator's node and indexer. Every flow checks the records against what the
//! simulator holds.

#[macro_use]
mod common;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{Chain, details, sell_details};
use futures::StreamExt;
use ordermeta::dydx::{
    CancelErrorKind, DydxIndexer, FeedEvent, FeedStream, IndexerApi, IndexerClock, IndexerError,
    IndexerFill, IndexerOptions, IndexerOrder, IndexerSubaccount, IndexerSync, OrderMetaClient,
    SyncConfig, SyncReport, from_proto_order_id, indexer_order_id, order_key, to_proto_order_id,
};
use ordermeta::dydx_sim::{Fill, OrderStatus as Sim, fixtures};
use ordermeta::{MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus};

/// The indexer flows, on the store of the invoking module (its `fresh` and `open`, as in
/// `common::e2e_flows!`).
macro_rules! indexer_flows {
    () => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn fill_reaches_the_record_within_a_second() {
            fresh(|s| crate::fill_reaches_record(move || open(s.clone()))).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_cancel_that_loses_to_a_fill_ends_filled() {
            fresh(|s| crate::cancel_loses_to_fill(move || open(s.clone()))).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn backfill_of_50_orders_then_cancel_by_id_and_client_id() {
            fresh(|s| crate::backfill_then_cancel(move || open(s.clone()))).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn socket_killed_and_restored_loses_nothing() {
            fresh(|s| crate::socket_killed(move || open(s.clone()))).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn duplicated_and_reordered_messages_change_nothing() {
            fresh(|s| crate::duplicates_and_reordering(move || open(s.clone()))).await;
        }
    };
}

mod sqlite {
    use std::future::Future;
    use std::path::PathBuf;
    use std::sync::Arc;

    use ordermeta::MetadataStore;
    use ordermeta::sqlite::SqliteStore;

    async fn fresh<F, Fut>(flow: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = ()>,
    {
        let dir = tempfile::tempdir().expect("tempdir");
        flow(dir.path().join("orders.db").display().to_string()).await;
    }

    async fn open(path: String) -> Arc<dyn MetadataStore> {
        Arc::new(
            SqliteStore::open(PathBuf::from(path))
                .await
                .expect("open sqlite"),
        )
    }

    indexer_flows!();
}

mod postgres {
    use std::future::Future;
    use std::sync::Arc;

    use ordermeta::MetadataStore;
    use ordermeta::postgres::{PgStore, sqlx};
    use ordermeta_testkit::{database_url, env::postgres_missing, unique_name};

    async fn open(schema: String) -> Arc<dyn MetadataStore> {
        let url = database_url();
        let store = PgStore::options()
            .schema(schema)
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap_or_else(|e| postgres_missing(&url, e));
        Arc::new(store)
    }

    async fn fresh<F, Fut>(flow: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = ()>,
    {
        crate::common::run_then_clean(unique_name("e2ei"), flow, drop_schema).await;
    }

    async fn drop_schema(schema: String) {
        let Ok(pool) = sqlx::PgPool::connect(&database_url()).await else {
            return eprintln!("cleanup of schema {schema} failed");
        };
        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        if let Err(e) = sqlx::query(&sql).execute(&pool).await {
            eprintln!("cleanup of schema {schema} failed: {e}");
        }
        pool.close().await;
    }

    indexer_flows!();
}

mod redis {
    use std::future::Future;
    use std::sync::Arc;

    use ordermeta::MetadataStore;
    use ordermeta::redis::RedisStore;
    use ordermeta_testkit::{env::redis_missing, redis_url, unique_name};

    async fn connect(namespace: &str) -> RedisStore {
        let url = redis_url();
        RedisStore::options()
            .namespace(namespace)
            .connect(&url)
            .await
            .unwrap_or_else(|e| redis_missing(&url, e))
    }

    async fn open(namespace: String) -> Arc<dyn MetadataStore> {
        Arc::new(connect(&namespace).await)
    }

    async fn fresh<F, Fut>(flow: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = ()>,
    {
        crate::common::run_then_clean(unique_name("e2ei"), flow, |ns| async move {
            if let Err(e) = connect(&ns).await.delete_namespace().await {
                eprintln!("cleanup of namespace {ns} failed: {e}");
            }
        })
        .await;
    }

    indexer_flows!();
}

/// Generous deadline of every wait (the one timed assertion is the fill's second).
const DEADLINE: Duration = Duration::from_secs(15);

/// A running simulator, a client of account 0 over `store` with the indexer attached, and
/// the indexer client.
struct Setup {
    chain: Chain,
    store: Arc<dyn MetadataStore>,
    client: Arc<OrderMetaClient>,
    indexer: Arc<DydxIndexer>,
}

impl Setup {
    async fn new(store: Arc<dyn MetadataStore>) -> Self {
        let chain = Chain::start().await;
        let sim = &chain.sim;
        let indexer = Arc::new(DydxIndexer::new(
            fixtures::indexer_config(
                sim.indexer_url().expect("indexer"),
                sim.indexer_ws_url().expect("indexer websocket"),
            ),
            IndexerOptions::default(),
        ));
        let client = chain.client(store.clone(), 0).await;
        let client = Arc::new(client.with_indexer(indexer.clone()));
        Setup {
            chain,
            store,
            client,
            indexer,
        }
    }

    /// Spawns the sync over `indexer` and waits until its subscription is registered and its
    /// first REST snapshot is done.
    async fn sync(&self, indexer: Arc<dyn IndexerApi>) -> IndexerSync {
        let config = SyncConfig {
            // Gaps must be closed by the gap logic, not by the periodic snapshot.
            resync_interval: Duration::from_secs(600),
            reconnect_delay: Duration::from_millis(100),
            max_reconnect_delay: Duration::from_millis(500),
            ..SyncConfig::default()
        };
        let sync = IndexerSync::spawn(self.client.clone(), indexer, config);
        eventually("the sync subscribed", || async {
            self.chain.sim.indexer_ws_subscriptions() >= 1 && sync.report().snapshots >= 1
        })
        .await;
        sync
    }

    /// Places a short-term order of client id `cid` through ordermeta; its record.
    async fn place_short(&self, cid: u32) -> OrderMetadata {
        let placed = self
            .client
            .place_order(self.chain.short_term(0, cid, 30), details())
            .await
            .expect("place");
        self.record(&placed.order_id).await
    }

    async fn record(&self, id: &str) -> OrderMetadata {
        // The client's queued `active` writes first (written in the background by default).
        self.client
            .flush_active_writes(std::time::Duration::from_secs(10))
            .await;
        self.store.get_required(id).await.expect("record")
    }

    /// The simulator's status of a record's order.
    fn sim_status(&self, meta: &OrderMetadata) -> Sim {
        self.chain
            .sim
            .order(&to_proto_order_id(&meta.dydx_order_id))
            .expect("known to the node")
            .status
    }

    /// Fills on the node and produces the block that makes the indexer publish it.
    fn fill(&self, meta: &OrderMetadata, fill: Fill) {
        self.fill_in_next_block(meta, fill);
        self.chain.sim.advance_blocks(1);
    }

    /// Fills on the node; the indexer reports it with the next block.
    fn fill_in_next_block(&self, meta: &OrderMetadata, fill: Fill) {
        self.chain
            .sim
            .fill(&to_proto_order_id(&meta.dydx_order_id), fill)
            .expect("fill on the node");
    }

    /// Waits until every record says what the simulator holds; returns the records.
    async fn agree(&self, ids: &[String]) -> Vec<OrderMetadata> {
        let start = Instant::now();
        loop {
            let mut records = Vec::new();
            let mut apart = Vec::new();
            for id in ids {
                let m = self.record(id).await;
                let sim = self.sim_status(&m);
                if m.status != expected(sim) {
                    apart.push(format!(
                        "{}: {} vs the node's {sim:?}",
                        m.order_id, m.status
                    ));
                }
                records.push(m);
            }
            if apart.is_empty() {
                return records;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "records disagree with the simulator after {DEADLINE:?}: {apart:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The record status the simulator's order status implies.
fn expected(s: Sim) -> OrderStatus {
    match s {
        Sim::Filled => OrderStatus::Filled,
        Sim::Canceled | Sim::Removed => OrderStatus::Cancelled,
        Sim::Expired => OrderStatus::Expired,
        Sim::PlacePending => OrderStatus::Pending,
        Sim::Open | Sim::CancelPending => OrderStatus::Active,
    }
}

/// Polls `check` every 10 ms until it holds, within [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < DEADLINE,
            "not within {DEADLINE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the sync has applied nothing new for 300 ms (the feed has gone quiet).
async fn quiet(sync: &IndexerSync) {
    let start = Instant::now();
    loop {
        let before = sync.report().reports;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if sync.report().reports == before {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "the feed never went quiet");
    }
}

/// 0.4 BTC in base quantums (BTC-USD: atomic resolution -10).
const FOUR_TENTHS: u64 = 4_000_000_000;

/// A partial fill raises the recorded quantity; the full fill made on the simulator reaches
/// the record as `filled` within one second.
async fn fill_reaches_record<S, F>(open: S)
where
    S: Fn() -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let s = Setup::new(open().await).await;
    let meta = s.place_short(101).await;
    let sync = s.sync(s.indexer.clone()).await;
    s.fill(&meta, Fill::Quantums(FOUR_TENTHS));
    eventually("the partial fill is recorded", || async {
        s.record(&meta.order_id).await.filled_quantity.as_deref() == Some("0.4")
    })
    .await;
    assert_eq!(s.record(&meta.order_id).await.status, OrderStatus::Active);

    s.fill_in_next_block(&meta, Fill::Full);
    // The indexer publishes the fill with its block: the second starts there.
    let start = Instant::now();
    s.chain.sim.advance_blocks(1);
    loop {
        if s.record(&meta.order_id).await.status == OrderStatus::Filled {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the fill did not reach the record within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("fill reached the record in {:?}", start.elapsed());
    let m = s.record(&meta.order_id).await;
    assert_eq!(s.sim_status(&m), Sim::Filled);
    assert_eq!(m.filled_quantity.as_deref(), Some("1"));
    assert_eq!(m.indexer_id, Some(indexer_order_id(&m.dydx_order_id)));
    let report = sync.stop().await;
    assert_eq!((report.partial_fills, report.filled), (1, 1), "{report:?}");
}

/// A short-term cancel accepted by the node after the order filled (before the fill's block,
/// so before the indexer reports it): recorded `cancelled`, then `filled` once the indexer
/// reports the fill. A stateful cancel of a filled order (clob 3006) is decided by the
/// indexer at once: `filled`.
async fn cancel_loses_to_fill<S, F>(open: S)
where
    S: Fn() -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let s = Setup::new(open().await).await;
    let meta = s.place_short(201).await;
    let sync = s.sync(s.indexer.clone()).await;
    s.fill_in_next_block(&meta, Fill::Full);
    let cancelled = s.client.cancel_order(&meta.order_id).await;
    assert!(
        cancelled.is_ok(),
        "the node accepts the cancel: {cancelled:?}"
    );
    assert_eq!(
        s.record(&meta.order_id).await.status,
        OrderStatus::Cancelled
    );
    s.chain.sim.advance_blocks(1);
    eventually("the fill wins", || async {
        s.record(&meta.order_id).await.status == OrderStatus::Filled
    })
    .await;
    assert_eq!(s.sim_status(&meta), Sim::Filled);

    let placed = s
        .client
        .place_order(s.chain.long_term(0, 202, 3600), sell_details())
        .await
        .expect("place long-term");
    s.chain.sim.advance_blocks(1);
    let long = s.record(&placed.order_id).await;
    s.fill(&long, Fill::Full);
    let err = s
        .client
        .cancel_order(&long.order_id)
        .await
        .expect_err("gone");
    assert_eq!(err.kind(), CancelErrorKind::AlreadyFilled, "{err}");
    let m = s.record(&long.order_id).await;
    assert_eq!(
        m.status,
        OrderStatus::Filled,
        "decided by the indexer, not guessed"
    );
    assert_eq!(s.sim_status(&m), Sim::Filled);
    sync.stop().await;
}

/// 50 orders placed straight through `NodeClient` (10 long-term, 40 short-term) are imported
/// by the sync's backfill, then cancelled — half by id, half by client id: the simulator
/// holds none of them live afterwards.
async fn backfill_then_cancel<S, F>(open: S)
where
    S: Fn() -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let s = Setup::new(open().await).await;
    let mut node = dydx::node::NodeClient::connect(s.chain.node_config())
        .await
        .expect("node client");
    let mut account = s.chain.wallet.account(0, &mut node).await.expect("account");
    let mut orders = Vec::new();
    for n in 0..50u32 {
        let order = if n < 10 {
            s.chain.long_term(0, 300 + n, 3600)
        } else {
            s.chain.short_term(0, 300 + n, 30)
        };
        node.place_order(&mut account, order.clone())
            .await
            .expect("placed without ordermeta");
        if n < 10 {
            // One stateful tx per block: the account sequence is committed state.
            s.chain.sim.advance_blocks(1);
            account = s.chain.wallet.account(0, &mut node).await.expect("account");
        }
        orders.push(order);
    }
    assert_eq!(s.chain.sim.open_orders().len(), 50);
    assert!(
        s.store
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );

    let sync = s.sync(s.indexer.clone()).await;
    eventually("all 50 imported", || async { sync.report().imported == 50 }).await;
    for (n, order) in orders.iter().enumerate() {
        let id = from_proto_order_id(order.order_id.as_ref().expect("id")).expect("id");
        let cid = id.client_id;
        let m = s
            .client
            .find_by_client_id(0, 0, cid)
            .await
            .expect("find")
            .expect("imported");
        assert_eq!(m.dydx_order_id, id);
        assert_eq!(m.status, OrderStatus::Active);
        assert!(
            m.history[0]
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("imported from the indexer")),
            "{:?}",
            m.history
        );
        let done = if n % 2 == 0 {
            let key = order_key(&id, m.good_til);
            assert_eq!(key, m.order_id, "the id place_order would have given it");
            s.client.cancel_order(&key).await
        } else {
            s.client.cancel_by_client_id(0, 0, cid).await
        };
        done.unwrap_or_else(|e| panic!("cancel of client id {cid}: {e}"));
    }
    s.chain.sim.advance_blocks(1);
    s.client.confirm_all(Duration::from_secs(10)).await;
    assert!(
        s.chain.sim.open_orders().is_empty(),
        "still live on the node: {:?}",
        s.chain.sim.open_orders()
    );
    let ids: Vec<String> = s
        .store
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|m| m.order_id)
        .collect();
    assert_eq!(ids.len(), 50);
    for m in s.agree(&ids).await {
        assert_eq!(m.status, OrderStatus::Cancelled, "{}", m.order_id);
    }
    let report = sync.stop().await;
    assert_eq!(report.imported, 50, "{report:?}");
}

/// The websocket is killed twice mid-run with fills, a removal and a cancel in the gaps —
/// once with reconnects refused (the feed ends), once reconnecting underneath (a second
/// snapshot): every record ends as the simulator says, filled quantities included.
async fn socket_killed<S, F>(open: S)
where
    S: Fn() -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let s = Setup::new(open().await).await;
    let mut metas = Vec::new();
    for n in 0..6 {
        metas.push(s.place_short(400 + n).await);
    }
    let ids: Vec<String> = metas.iter().map(|m| m.order_id.clone()).collect();
    let sync = s.sync(s.indexer.clone()).await;

    // Gap 1: sockets killed, reconnects refused.
    s.chain.sim.set_indexer_ws_accepting(false);
    assert!(s.chain.sim.drop_indexer_sockets() >= 1);
    eventually("the feed ended", || async { sync.report().gaps >= 1 }).await;
    s.fill(&metas[0], Fill::Full);
    s.fill(&metas[1], Fill::Quantums(FOUR_TENTHS));
    s.chain
        .sim
        .remove_order(&to_proto_order_id(&metas[2].dydx_order_id))
        .expect("remove");
    s.chain.sim.advance_blocks(1);
    s.chain.sim.set_indexer_ws_accepting(true);
    eventually("re-subscribed", || async {
        s.chain.sim.indexer_ws_subscriptions() >= 1
    })
    .await;
    s.agree(&ids).await;
    eventually("the partial fill of the gap", || async {
        s.record(&ids[1]).await.filled_quantity.as_deref() == Some("0.4")
    })
    .await;

    // Gap 2: sockets killed; the client reconnects by itself.
    let gaps = sync.report().gaps;
    assert!(s.chain.sim.drop_indexer_sockets() >= 1);
    s.fill(&metas[1], Fill::Full);
    s.fill(&metas[3], Fill::Full);
    s.client.cancel_order(&ids[4]).await.expect("cancel");
    s.chain.sim.advance_blocks(1);
    eventually("the second gap is seen", || async {
        sync.report().gaps > gaps
    })
    .await;
    let records = s.agree(&ids).await;
    let statuses: Vec<OrderStatus> = records.iter().map(|m| m.status).collect();
    use OrderStatus::{Active, Cancelled, Filled};
    assert_eq!(
        statuses,
        [Filled, Filled, Cancelled, Filled, Cancelled, Active]
    );
    assert_eq!(records[1].filled_quantity.as_deref(), Some("1"));
    assert!(
        records[2].cancel_confirmed_at.is_some(),
        "removed: confirmed by the chain"
    );
    let report = sync.stop().await;
    assert!(report.gaps >= 2 && report.connections >= 2, "{report:?}");
}

/// Every feed message delivered twice, each pair in reverse order, and finally the whole
/// history replayed backwards: the records end as the simulator says, and the replay writes
/// nothing.
async fn duplicates_and_reordering<S, F>(open: S)
where
    S: Fn() -> F,
    F: Future<Output = Arc<dyn MetadataStore>>,
{
    let s = Setup::new(open().await).await;
    let mut metas = Vec::new();
    for n in 0..4 {
        metas.push(s.place_short(500 + n).await);
    }
    let ids: Vec<String> = metas.iter().map(|m| m.order_id.clone()).collect();
    let chaos = Arc::new(Chaos::new(s.indexer.clone()));
    let sync = s.sync(chaos.clone()).await;
    s.fill(&metas[0], Fill::Quantums(FOUR_TENTHS / 2));
    s.fill(&metas[0], Fill::Quantums(FOUR_TENTHS));
    s.fill(&metas[0], Fill::Full);
    s.fill(&metas[1], Fill::Quantums(FOUR_TENTHS));
    s.fill(&metas[1], Fill::Full);
    s.chain
        .sim
        .remove_order(&to_proto_order_id(&metas[2].dydx_order_id))
        .expect("remove");
    s.client.cancel_order(&ids[3]).await.expect("cancel");
    s.chain.sim.advance_blocks(1);
    s.agree(&ids).await;
    quiet(&sync).await;
    let settled = s.agree(&ids).await;
    assert_eq!(settled[0].filled_quantity.as_deref(), Some("1"));
    let before = sync.report();
    let replayed = chaos.replay_backwards();
    assert!(replayed >= 5, "the feed carried the updates: {replayed}");
    eventually("the replay is applied", || async {
        sync.report().reports >= before.reports + replayed as u64
    })
    .await;
    let after = s.agree(&ids).await;
    for (a, b) in settled.iter().zip(&after) {
        assert_eq!(a.version, b.version, "{} changed by old news", a.order_id);
        assert_eq!(a.filled_quantity, b.filled_quantity);
    }
    let report: SyncReport = sync.stop().await;
    assert!(report.unchanged > 0, "{report:?}");
}

/// The simulator's indexer, its feed duplicated and reordered: each update is held until the
/// next (or 100 ms), then both go out twice, the later first. Keeps every update it saw, to
/// replay them backwards.
struct Chaos {
    inner: Arc<DydxIndexer>,
    seen: Arc<Mutex<Vec<FeedEvent>>>,
    replay: Mutex<Option<futures::channel::mpsc::UnboundedSender<FeedEvent>>>,
}

impl Chaos {
    fn new(inner: Arc<DydxIndexer>) -> Self {
        Chaos {
            inner,
            seen: Arc::default(),
            replay: Mutex::new(None),
        }
    }

    /// Sends every update seen so far, newest first, into the live stream; how many.
    fn replay_backwards(&self) -> usize {
        let seen = self.seen.lock().expect("lock").clone();
        let guard = self.replay.lock().expect("lock");
        let tx = guard.as_ref().expect("subscribed");
        for ev in seen.iter().rev() {
            tx.unbounded_send(ev.clone()).expect("replay");
        }
        seen.iter()
            .map(|e| match e {
                FeedEvent::Update { orders, .. } => orders.len(),
                FeedEvent::Snapshot { .. } => 0,
            })
            .sum()
    }
}

#[async_trait]
impl IndexerApi for Chaos {
    async fn open_orders(&self, s: &IndexerSubaccount) -> Result<Vec<IndexerOrder>, IndexerError> {
        self.inner.open_orders(s).await
    }
    async fn latest_orders(
        &self,
        s: &IndexerSubaccount,
        limit: u32,
    ) -> Result<Vec<IndexerOrder>, IndexerError> {
        self.inner.latest_orders(s, limit).await
    }
    async fn order(&self, owner: &str, id: &str) -> Result<Option<IndexerOrder>, IndexerError> {
        self.inner.order(owner, id).await
    }
    async fn fills_since(
        &self,
        s: &IndexerSubaccount,
        after: u32,
        limit: u32,
    ) -> Result<Vec<IndexerFill>, IndexerError> {
        self.inner.fills_since(s, after, limit).await
    }
    async fn clock(&self) -> Result<IndexerClock, IndexerError> {
        self.inner.clock().await
    }
    async fn subscribe(&self, s: &IndexerSubaccount) -> Result<FeedStream, IndexerError> {
        let feed = self.inner.subscribe(s).await?;
        let seen = self.seen.clone();
        let (tx, replay) = futures::channel::mpsc::unbounded();
        *self.replay.lock().expect("lock") = Some(tx);
        let shuffled = futures::stream::unfold((feed, seen), |(mut feed, seen)| async move {
            let first = feed.next().await?;
            if matches!(first, FeedEvent::Snapshot { .. }) {
                return Some((vec![first], (feed, seen)));
            }
            let second = match tokio::time::timeout(Duration::from_millis(100), feed.next()).await {
                Ok(Some(ev)) => Some(ev),
                Ok(None) | Err(_) => None,
            };
            let mut out = Vec::new();
            {
                let mut log = seen.lock().expect("lock");
                log.push(first.clone());
                log.extend(second.clone());
            }
            for _ in 0..2 {
                out.extend(second.clone());
                out.push(first.clone());
            }
            Some((out, (feed, seen)))
        })
        .flat_map(futures::stream::iter);
        Ok(futures::stream::select(shuffled, replay).boxed())
    }
}
