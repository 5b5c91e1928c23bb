//! Several OS processes signing stateful cancels for ONE account, on the simulator's chain
//! model: the node serves committed sequences, stateful txs take effect in the next block
//! (blocks every 200 ms, their time from the wall clock), rate limits off so that 400
//! stateful orders can be placed. Each process signs with timestamp nonces in its own lane
//! (`NonceMode::timestamp_lane`) and shares one SQLite file with the others.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dydx::indexer::ClientId;
use dydx::node::{OrderBuilder, OrderSide, Wallet};
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta::dydx::{
    CancelErrorKind, ChainSettings, DydxGateway, NonceMode, OrderDetails, OrderMetaClient,
    RecordingSwitch,
};
use ordermeta::dydx_sim::fixtures::{self, MNEMONIC, market};
use ordermeta::dydx_sim::{
    BlockClock, BlockProduction, MsgKind, OrderStatus as SimStatus, RateLimits, SimConfig, SimNode,
};
use ordermeta::{ListQuery, MetadataStoreExt, OrderStatus, OrderType, Side};
use ordermeta_testkit::child::{self, Child, Gate};

/// Makes this test binary a child of the race; the payload is the node's endpoint, the store
/// URL, the process index and the gate's path, one per line.
const CHILD_ENV: &str = "ORDERMETA_FIDELITY_CHILD";
const TEST_NAME: &str = "four_processes_cancel_one_accounts_stateful_orders";
const PROCESSES: u32 = 4;
const TASKS: usize = 4;
/// Long-term orders, and as many conditional ones.
const PER_KIND: u32 = 200;
const LIMIT: Duration = Duration::from_secs(300);

/// The client's own cancel limiter is not what this test is about.
fn settings() -> ChainSettings {
    ChainSettings {
        cancel_rate_per_second: std::num::NonZeroU32::new(100_000).expect("non-zero"),
        ..ChainSettings::default()
    }
}

async fn client(endpoint: &str, store_url: &str, nonces: NonceMode) -> Arc<OrderMetaClient> {
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    let gateway = DydxGateway::connect(fixtures::node_config(endpoint.to_owned()), &wallet, 0)
        .await
        .expect("connect")
        .with_nonces(nonces);
    let store = ordermeta::open(store_url).await.expect("open the store");
    Arc::new(OrderMetaClient::new(
        Arc::new(gateway),
        store,
        RecordingSwitch::new(true),
        settings(),
    ))
}

/// Long-term limit sells (client ids 1..) and conditional stop-limits (10 001..), good for an
/// hour.
fn orders(block_time: chrono::DateTime<chrono::Utc>) -> Vec<(Order, OrderDetails)> {
    let sub = Wallet::from_mnemonic(MNEMONIC)
        .expect("wallet")
        .account_offline(0)
        .expect("account")
        .subaccount(0)
        .expect("subaccount");
    let until = block_time + chrono::Duration::hours(1);
    let details = |order_type| OrderDetails {
        symbol: "BTC-USD".into(),
        side: Side::Sell,
        quantity: "0.01".into(),
        price: Some("70000".into()),
        order_type,
    };
    let qty = || "0.01".parse::<dydx::indexer::Quantity>().expect("qty");
    let mut out = Vec::new();
    for i in 1..=PER_KIND {
        let (_, long) = OrderBuilder::new(market(), sub.clone())
            .limit(OrderSide::Sell, 70_000, qty())
            .long_term()
            .until(until)
            .build(ClientId(i))
            .expect("long-term");
        out.push((long, details(OrderType::Limit)));
        let (_, stop) = OrderBuilder::new(market(), sub.clone())
            .stop_limit(OrderSide::Sell, 40_000, 41_000, qty())
            .until(until)
            .build(ClientId(10_000 + i))
            .expect("conditional");
        out.push((stop, details(OrderType::StopLimit)));
    }
    out
}

/// The child: 4 tasks cancel every order of the account (task `t` the ids `≡ t mod 4`, each
/// process starting at another point so the processes collide), then confirm their own
/// cancels after the blocks. Prints its counts.
async fn child_run(payload: &str) {
    let mut lines = payload.lines();
    let mut next = || lines.next().expect("payload line").to_owned();
    let (endpoint, store_url, index, gate) = (next(), next(), next(), next());
    let index: u32 = index.parse().expect("index");
    let c = client(
        &endpoint,
        &store_url,
        NonceMode::timestamp_lane(index, PROCESSES),
    )
    .await;
    let query = ListQuery {
        statuses: vec![OrderStatus::Active],
        ..ListQuery::default()
    };
    let mut ids: Vec<String> = c
        .store()
        .list_all(&query)
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|m| m.order_id)
        .collect();
    assert_eq!(ids.len(), 2 * PER_KIND as usize);
    let n = ids.len();
    ids.rotate_left(n * index as usize / PROCESSES as usize);
    println!("READY");
    Gate::wait_async(Path::new(&gate), LIMIT).await;

    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let c = c.clone();
            let mine: Vec<String> = ids.iter().skip(t).step_by(TASKS).cloned().collect();
            tokio::spawn(async move {
                let (mut wins, mut lost, mut errors) = (0u32, 0u32, Vec::new());
                for id in mine {
                    match c.cancel_order(&id).await {
                        Ok(_) => wins += 1,
                        Err(e)
                            if matches!(
                                e.kind(),
                                CancelErrorKind::CancelInProgress
                                    | CancelErrorKind::AlreadyCancelled
                            ) =>
                        {
                            lost += 1
                        }
                        Err(e) => errors.push(format!("{id}: {e}")),
                    }
                }
                (wins, lost, errors)
            })
        })
        .collect();
    let (mut wins, mut lost, mut errors) = (0, 0, Vec::new());
    for t in tasks {
        let (w, l, e) = t.await.expect("task");
        wins += w;
        lost += l;
        errors.extend(e);
    }
    let confirmed = c.confirm_all(Duration::from_secs(30)).await;
    for e in &errors {
        println!("ERR={e}");
    }
    println!("WINS={wins}");
    println!("LOST={lost}");
    println!("ERRORS={}", errors.len());
    println!("CONFIRMED={}", confirmed.confirmed);
    println!(
        "UNSETTLED={}",
        confirmed.failed + confirmed.gave_up + confirmed.waiting
    );
}

/// 4 OS processes × 4 tasks cancel 400 long-term and conditional orders of one account: no
/// errors, exactly one cancel per order accepted (and executed) on the node, every order
/// gone and recorded cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_processes_cancel_one_accounts_stateful_orders() {
    if let Some(p) = child::payload(CHILD_ENV) {
        return child_run(&p).await;
    }
    let sim = SimNode::start(
        SimConfig::default()
            .with_mnemonic(MNEMONIC, 1)
            .with_rate_limits(RateLimits::unlimited())
            .with_block_clock(BlockClock::WallClock)
            .with_blocks(BlockProduction::Interval(Duration::from_millis(200))),
    )
    .await
    .expect("start simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let store_url = format!("sqlite:{}", dir.path().join("orders.db").display());

    // Place them all (one process, 8 tasks), and confirm every placement after its block.
    let placing = Instant::now();
    let placer = client(&sim.endpoint(), &store_url, NonceMode::timestamp()).await;
    let all = orders(sim.block_time());
    let mut tasks = Vec::new();
    for chunk in all.chunks(all.len().div_ceil(8)) {
        let (c, chunk) = (placer.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for (order, details) in chunk {
                c.place_order(order, details).await.expect("placed");
            }
        }));
    }
    for t in tasks {
        t.await.expect("placing task");
    }
    let placed = placer.confirm_all(Duration::from_secs(60)).await;
    assert_eq!(
        (placed.confirmed, placed.failed, placed.waiting),
        (400, 0, 0),
        "{placed:?}"
    );
    assert_eq!(sim.open_orders().len(), 400);
    // The children list `active` records: the placer's background writes land first.
    assert_eq!(placer.flush_active_writes(Duration::from_secs(60)).await, 0);
    let placing = placing.elapsed();

    // The race.
    let gate = Gate::new();
    let mut children: Vec<Child> = (0..PROCESSES)
        .map(|i| {
            let payload = format!(
                "{}\n{store_url}\n{i}\n{}",
                sim.endpoint(),
                gate.path().display()
            );
            Child::spawn(TEST_NAME, CHILD_ENV, &payload)
        })
        .collect();
    for c in &mut children {
        c.wait_for_line("READY", LIMIT);
    }
    let racing = Instant::now();
    gate.open();
    let mut outputs = Vec::new();
    for c in children {
        outputs.push(c.wait_success_async(LIMIT).await);
    }
    let racing = racing.elapsed();
    let sum = |key: &str| outputs.iter().map(|o| o.parsed::<u64>(key)).sum::<u64>();
    let errors: Vec<&str> = outputs.iter().flat_map(|o| o.values("ERR")).collect();
    let (wins, lost, confirmed, unsettled) =
        (sum("WINS"), sum("LOST"), sum("CONFIRMED"), sum("UNSETTLED"));

    // What the node saw: per order, the cancels it accepted and executed.
    let messages = sim.messages();
    let mut executed: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    let (mut cancel_msgs, mut refused) = (0, BTreeMap::<String, u32>::new());
    for m in &messages {
        let MsgKind::CancelOrder {
            order_id: Some(id), ..
        } = &m.kind
        else {
            continue;
        };
        cancel_msgs += 1;
        match m.final_result() {
            Some(Ok(())) => {
                *executed.entry((id.order_flags, id.client_id)).or_default() += 1;
            }
            Some(Err(e)) => {
                *refused
                    .entry(format!("{}/{}", e.codespace, e.code))
                    .or_default() += 1;
            }
            None => *refused.entry("unexecuted".into()).or_default() += 1,
        }
    }
    eprintln!(
        "4 processes x {TASKS} tasks, 400 stateful orders: placed and confirmed in {placing:?}; \
         cancels: {wins} won, {lost} lost to another canceller, {} errors, {confirmed} confirmed \
         after their block, {unsettled} unsettled; node: {cancel_msgs} MsgCancelOrder, \
         {} executed, refused {refused:?}; race {racing:?}",
        errors.len(),
        executed.values().sum::<u32>()
    );
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(wins, 400, "one winner per order");
    assert_eq!(confirmed, 400);
    assert_eq!(unsettled, 0);
    assert_eq!(executed.len(), 400, "every order has its executed cancel");
    assert!(
        executed.values().all(|&n| n == 1),
        "exactly one executed cancel per order: {:?}",
        executed
            .iter()
            .filter(|(_, n)| **n != 1)
            .collect::<Vec<_>>()
    );
    assert!(sim.open_orders().is_empty(), "{:?}", sim.open_orders());
    assert!(sim.orders().iter().all(|o| o.status == SimStatus::Canceled));
    let records = placer
        .store()
        .list_all(&ListQuery::default())
        .await
        .expect("list")
        .items;
    assert_eq!(records.len(), 400);
    for m in records {
        assert_eq!(m.status, OrderStatus::Cancelled, "{}", m.order_id);
        assert!(m.cancel_tx_hash.is_some(), "{}", m.order_id);
    }
}
