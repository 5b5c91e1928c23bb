//! Unit tests of the indexer sync's logic: the rules (`apply.rs`) on the reference store,
//! and the feed loop (`sync.rs`) against a mocked indexer — duplicates, reordering,
//! monotonic fills, the backfill and the re-snapshot after a gap.
#![cfg(feature = "recording")]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use ordermeta_core::{
    GoodTil, MemoryStore, MetadataStore, MetadataStoreExt, NewOrder, OrderId, OrderMetadata,
    OrderStatus, OrderType, Side, TransitionRequest, now,
};

use super::apply::{Applied, raised_fill};
use super::*;
use crate::convert::order_key;
use crate::gateway::MockOrderGateway;
use crate::{ChainSettings, OrderMetaClient, RecordingSwitch, RolloutScope};

const ME: &str = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn20l73w";
const GTB: GoodTil = GoodTil::Block(500);

fn id(client_id: u32) -> OrderId {
    OrderId {
        owner: ME.into(),
        subaccount_number: 0,
        client_id,
        order_flags: 0,
        clob_pair_id: 0,
    }
}

fn report(client_id: u32, status: IndexerOrderStatus, filled: &str) -> IndexerOrder {
    let id = id(client_id);
    IndexerOrder {
        indexer_id: indexer_order_id(&id),
        order_id: id,
        good_til: Some(GTB),
        status,
        total_filled: Some(filled.into()),
        size: Some("1".into()),
        price: Some("50000".into()),
        side: Some(Side::Buy),
        ticker: Some("BTC-USD".into()),
        order_type: Some(OrderType::Limit),
        removal_reason: None,
        height: Some(10),
    }
}

fn client(store: Arc<MemoryStore>) -> Arc<OrderMetaClient> {
    let mut gw = MockOrderGateway::new();
    gw.expect_signer().return_const(ME.to_owned());
    Arc::new(OrderMetaClient::new(
        Arc::new(gw),
        store,
        RecordingSwitch::new(true),
        ChainSettings::default(),
    ))
}

/// Records client id `n` in `status` under the id `place_order` gives it, a minute ago
/// (so a `pending` one is not a placement in flight).
async fn seed(store: &MemoryStore, n: u32, status: OrderStatus) -> String {
    seed_at(store, n, status, now() - chrono::Duration::minutes(1)).await
}

async fn seed_at(
    store: &MemoryStore,
    n: u32,
    status: OrderStatus,
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    let meta = OrderMetadata::new(
        NewOrder {
            order_id: order_key(&id(n), GTB),
            dydx_order_id: id(n),
            good_til: GTB,
            symbol: "BTC-USD".into(),
            side: Side::Buy,
            quantity: "1".into(),
            price: Some("50000".into()),
            order_type: OrderType::Limit,
        },
        status,
        at,
    );
    store.record(&meta).await.expect("seed");
    meta.order_id
}

async fn get(store: &MemoryStore, key: &str) -> OrderMetadata {
    store.get_required(key).await.expect("get")
}

#[test]
fn the_indexer_id_is_the_indexers_uuid() {
    // The same identity always gives the same v5 UUID; any field changes it.
    let a = indexer_order_id(&id(1));
    assert_eq!(a, indexer_order_id(&id(1)));
    assert_eq!(a.len(), 36);
    assert_eq!(a.as_bytes()[14], b'5', "version 5: {a}");
    for other in [
        OrderId {
            client_id: 2,
            ..id(1)
        },
        OrderId {
            order_flags: 64,
            ..id(1)
        },
        OrderId {
            clob_pair_id: 1,
            ..id(1)
        },
        OrderId {
            subaccount_number: 1,
            ..id(1)
        },
    ] {
        assert_ne!(indexer_order_id(&other), a);
    }
    assert_eq!(
        indexer_subaccount_id(ME, 0),
        uuid::Uuid::new_v5(&INDEXER_UUID_NAMESPACE, format!("{ME}-0").as_bytes()).to_string()
    );
}

#[test]
fn fills_only_ever_rise() {
    assert_eq!(raised_fill(None, Some("0.5")), Some("0.5".into()));
    assert_eq!(raised_fill(None, Some("0")), None);
    assert_eq!(
        raised_fill(Some("0.5"), Some("0.50")),
        None,
        "equal as decimals"
    );
    assert_eq!(raised_fill(Some("0.5"), Some("0.4")), None);
    assert_eq!(raised_fill(Some("0.5"), Some("0.75")), Some("0.75".into()));
    assert_eq!(
        raised_fill(Some("9"), Some("10")),
        Some("10".into()),
        "not as text"
    );
    assert_eq!(raised_fill(Some("0.5"), Some("garbage")), None);
    assert_eq!(raised_fill(Some("garbage"), Some("1")), Some("1".into()));
    assert_eq!(raised_fill(Some("1"), None), None);
}

#[tokio::test]
async fn each_report_moves_the_record_through_the_state_machine() {
    use IndexerOrderStatus as I;
    use OrderStatus as S;
    let cases: &[(S, I, S)] = &[
        (S::Pending, I::Open, S::Active),
        (S::Pending, I::Untriggered, S::Active),
        (S::Active, I::Open, S::Active),
        (S::Active, I::Filled, S::Filled),
        (S::Cancelling, I::Filled, S::Filled),
        (S::Cancelled, I::Filled, S::Filled),
        (S::Expired, I::Filled, S::Filled),
        (S::Failed, I::Filled, S::Failed),
        (S::Active, I::Canceled, S::Cancelled),
        (S::Pending, I::Canceled, S::Cancelled),
        (S::Cancelling, I::Canceled, S::Cancelled),
        (S::Filled, I::Canceled, S::Filled),
        (S::Expired, I::Canceled, S::Expired),
        (S::Active, I::BestEffortCanceled, S::Cancelled),
        (S::Pending, I::BestEffortCanceled, S::Cancelled),
        (S::Cancelling, I::BestEffortCanceled, S::Cancelling),
        (S::Cancelled, I::Open, S::Cancelled),
        (S::Filled, I::Open, S::Filled),
    ];
    for (n, &(from, said, want)) in cases.iter().enumerate() {
        let store = Arc::new(MemoryStore::new());
        let c = client(store.clone());
        let key = seed(&store, n as u32, from).await;
        c.apply_indexer_order(&report(n as u32, said, "0"), None, true)
            .await
            .expect("apply");
        let m = get(&store, &key).await;
        assert_eq!(m.status, want, "{from} + {said}");
        let confirmed =
            said == I::Canceled && matches!(from, S::Pending | S::Active | S::Cancelling);
        assert_eq!(
            m.cancel_confirmed_at.is_some(),
            confirmed,
            "{from} + {said}"
        );
        if from != S::Failed {
            assert_eq!(
                m.indexer_id,
                Some(indexer_order_id(&id(n as u32))),
                "{from} + {said}"
            );
        }
    }
}

#[tokio::test]
async fn a_placement_in_flight_activates_its_own_record() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    let key = seed_at(&store, 1, OrderStatus::Pending, now()).await;
    let open = report(1, IndexerOrderStatus::BestEffortOpened, "0");
    c.apply_indexer_order(&open, None, true)
        .await
        .expect("apply");
    let m = get(&store, &key).await;
    assert_eq!(m.status, OrderStatus::Pending, "left to the placement");
    assert_eq!(m.indexer_id, Some(indexer_order_id(&id(1))));
    // A fill is a fact the placement cannot know: recorded at once.
    c.apply_indexer_order(&report(1, IndexerOrderStatus::Filled, "1"), None, true)
        .await
        .expect("apply");
    assert_eq!(get(&store, &key).await.status, OrderStatus::Filled);
}

#[tokio::test]
async fn a_cancel_that_lost_the_race_ends_filled() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    let key = seed(&store, 1, OrderStatus::Active).await;
    // Our cancel was accepted by the node (best effort) …
    store
        .transition(
            &TransitionRequest::new(&key, &[OrderStatus::Active], OrderStatus::Cancelled)
                .reason("cancel accepted"),
        )
        .await
        .expect("cancel");
    // … but the order filled first.
    let applied = c
        .apply_indexer_order(&report(1, IndexerOrderStatus::Filled, "1"), None, true)
        .await
        .expect("apply");
    assert_eq!(applied, Applied::Filled);
    let m = get(&store, &key).await;
    assert_eq!(m.status, OrderStatus::Filled);
    assert_eq!(m.filled_quantity.as_deref(), Some("1"));
    assert!(m.cancel_confirmed_at.is_none());
}

#[tokio::test]
async fn expiry_is_told_from_a_cancel() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    // The feed says why.
    let key = seed(&store, 1, OrderStatus::Active).await;
    let mut r = report(1, IndexerOrderStatus::Canceled, "0");
    r.removal_reason = Some("ORDER_REMOVAL_REASON_EXPIRED".into());
    c.apply_indexer_order(&r, None, true).await.expect("apply");
    assert_eq!(get(&store, &key).await.status, OrderStatus::Expired);
    // REST does not: the indexer's clock past the good-til does.
    let key = seed(&store, 2, OrderStatus::Active).await;
    let clock = IndexerClock {
        height: 500,
        time: now(),
    };
    c.apply_indexer_order(
        &report(2, IndexerOrderStatus::Canceled, "0"),
        Some(clock),
        true,
    )
    .await
    .expect("apply");
    assert_eq!(get(&store, &key).await.status, OrderStatus::Expired);
    // Before the good-til it was a cancel.
    let key = seed(&store, 3, OrderStatus::Active).await;
    let clock = IndexerClock {
        height: 499,
        ..clock
    };
    c.apply_indexer_order(
        &report(3, IndexerOrderStatus::Canceled, "0"),
        Some(clock),
        true,
    )
    .await
    .expect("apply");
    assert_eq!(get(&store, &key).await.status, OrderStatus::Cancelled);
}

/// Every order of the messages of one order's life — partial fills, then the fill; or a
/// partial fill, then the cancel — ends in the same record, and a second delivery of the
/// whole sequence changes nothing.
#[tokio::test]
async fn duplicated_and_reordered_messages_change_nothing_wrongly() {
    use IndexerOrderStatus as I;
    // (the reports of one life, the final status, the final filled quantity)
    type Life = (Vec<(I, &'static str)>, OrderStatus, &'static str);
    let lives: [Life; 2] = [
        (
            vec![
                (I::Open, "0"),
                (I::Open, "0.2"),
                (I::Open, "0.6"),
                (I::Filled, "1"),
            ],
            OrderStatus::Filled,
            "1",
        ),
        (
            vec![(I::Open, "0"), (I::Open, "0.3"), (I::Canceled, "0.3")],
            OrderStatus::Cancelled,
            "0.3",
        ),
    ];
    for (life, want, filled) in lives {
        for perm in permutations(life.len()) {
            let store = Arc::new(MemoryStore::new());
            let c = client(store.clone());
            let key = seed(&store, 7, OrderStatus::Active).await;
            for round in 0..2 {
                for &i in &perm {
                    let (status, f) = life[i];
                    c.apply_indexer_order(&report(7, status, f), None, true)
                        .await
                        .expect("apply");
                }
                let m = get(&store, &key).await;
                assert_eq!(m.status, want, "order {perm:?}, round {round}");
                assert_eq!(m.filled_quantity.as_deref(), Some(filled), "order {perm:?}");
            }
            // The second round wrote nothing.
            let before = get(&store, &key).await.version;
            for &i in &perm {
                let (status, f) = life[i];
                let applied = c
                    .apply_indexer_order(&report(7, status, f), None, true)
                    .await
                    .expect("apply");
                assert_eq!(applied, Applied::Unchanged, "order {perm:?}");
            }
            assert_eq!(get(&store, &key).await.version, before);
        }
    }
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn go(prefix: &mut Vec<usize>, n: usize, out: &mut Vec<Vec<usize>>) {
        if prefix.len() == n {
            out.push(prefix.clone());
            return;
        }
        for i in 0..n {
            if !prefix.contains(&i) {
                prefix.push(i);
                go(prefix, n, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(&mut Vec::new(), n, &mut out);
    out
}

#[tokio::test]
async fn open_orders_without_a_record_are_imported_once() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    let r = report(11, IndexerOrderStatus::Open, "0.25");
    assert_eq!(
        c.apply_indexer_order(&r, None, true).await.expect("apply"),
        Applied::Imported
    );
    let key = order_key(&id(11), GTB);
    let m = get(&store, &key).await;
    assert_eq!(m.status, OrderStatus::Active);
    assert_eq!(m.dydx_order_id, id(11));
    assert_eq!(m.good_til, GTB);
    assert_eq!(m.filled_quantity.as_deref(), Some("0.25"));
    assert_eq!(
        m.history[0].reason.as_deref(),
        Some("imported from the indexer (OPEN)")
    );
    assert_eq!(
        c.apply_indexer_order(&r, None, true).await.expect("apply"),
        Applied::Unchanged
    );
    // Not without import, not when ended, not out of the rollout scope, not another owner's.
    let none = [
        (report(12, IndexerOrderStatus::Open, "0"), false),
        (report(13, IndexerOrderStatus::Filled, "1"), true),
    ];
    for (r, import) in none {
        assert_eq!(
            c.apply_indexer_order(&r, None, import)
                .await
                .expect("apply"),
            Applied::Unknown
        );
    }
    let mut theirs = report(14, IndexerOrderStatus::Open, "0");
    theirs.order_id.owner = "dydx1zg69v7ys40x77y352eufp27daufrg4nc6twx7h".into();
    assert_eq!(
        c.apply_indexer_order(&theirs, None, true)
            .await
            .expect("apply"),
        Applied::Unknown
    );
    c.recording().set_scope(RolloutScope::clob_pairs([5]));
    assert_eq!(
        c.apply_indexer_order(&report(15, IndexerOrderStatus::Open, "0"), None, true)
            .await
            .expect("apply"),
        Applied::Unknown
    );
    assert_eq!(
        store
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
}

/// A scripted indexer: subscriptions hand out the queued streams (an error once they run
/// out); REST answers from shared state the test changes.
#[derive(Default)]
struct Script {
    streams: Mutex<VecDeque<mpsc::UnboundedReceiver<FeedEvent>>>,
    open: Mutex<Vec<IndexerOrder>>,
    /// What the latest-orders listing answers.
    latest: Mutex<Vec<IndexerOrder>>,
    /// What lookups by id answer.
    orders: Mutex<Vec<IndexerOrder>>,
    fills: Mutex<Vec<IndexerFill>>,
    fills_after: Mutex<Vec<u32>>,
}

fn scripted(script: Arc<Script>) -> MockIndexerApi {
    let mut m = MockIndexerApi::new();
    let s = script.clone();
    m.expect_subscribe()
        .returning(move |_| match s.streams.lock().expect("lock").pop_front() {
            Some(rx) => Ok(rx.boxed()),
            None => Err(IndexerError::Invalid {
                operation: "subscribe",
                reason: "no more connections in the script".into(),
            }),
        });
    let s = script.clone();
    m.expect_open_orders()
        .returning(move |_| Ok(s.open.lock().expect("lock").clone()));
    let s = script.clone();
    m.expect_latest_orders()
        .returning(move |_, _| Ok(s.latest.lock().expect("lock").clone()));
    let s = script.clone();
    m.expect_order().returning(move |_, wanted| {
        Ok(s.orders
            .lock()
            .expect("lock")
            .iter()
            .find(|o| o.indexer_id == wanted)
            .cloned())
    });
    let s = script.clone();
    m.expect_fills_since().returning(move |_, after, _| {
        s.fills_after.lock().expect("lock").push(after);
        Ok(s.fills
            .lock()
            .expect("lock")
            .iter()
            .filter(|f| f.height > after)
            .cloned()
            .collect())
    });
    m.expect_clock().returning(|| {
        Ok(IndexerClock {
            height: 20,
            time: now(),
        })
    });
    m
}

fn sub() -> IndexerSubaccount {
    IndexerSubaccount::new(ME, 0)
}

fn config() -> SyncConfig {
    SyncConfig {
        reconnect_delay: Duration::from_millis(5),
        max_reconnect_delay: Duration::from_millis(20),
        resync_interval: Duration::from_secs(3600),
        ..SyncConfig::default()
    }
}

/// Polls `check` until it holds, for at most 5 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn backfill_then_live_updates() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    let mine = seed(&store, 1, OrderStatus::Active).await;
    let script = Arc::new(Script::default());
    let (tx, rx) = mpsc::unbounded();
    script.streams.lock().expect("lock").push_back(rx);
    // Placed by another tool before the sync started: on the indexer only.
    *script.open.lock().expect("lock") = vec![report(2, IndexerOrderStatus::Open, "0")];
    let sync = IndexerSync::spawn(c.clone(), Arc::new(scripted(script.clone())), config());
    let imported = order_key(&id(2), GTB);
    eventually("the backfill imports the foreign order", async || {
        store.get(&imported).await.expect("get").is_some()
    })
    .await;
    let send = |ev| tx.unbounded_send(ev).expect("send");
    send(FeedEvent::Snapshot {
        subaccount: sub(),
        orders: vec![report(2, IndexerOrderStatus::Open, "0")],
        height: 11,
    });
    send(FeedEvent::Update {
        subaccount: sub(),
        orders: vec![report(1, IndexerOrderStatus::Open, "0.4")],
        fills: vec![],
        height: Some(12),
    });
    send(FeedEvent::Update {
        subaccount: sub(),
        orders: vec![report(1, IndexerOrderStatus::Filled, "1")],
        fills: vec![],
        height: Some(13),
    });
    // A duplicate of an older message, late.
    send(FeedEvent::Update {
        subaccount: sub(),
        orders: vec![report(1, IndexerOrderStatus::Open, "0.4")],
        fills: vec![],
        height: Some(12),
    });
    send(FeedEvent::Update {
        subaccount: sub(),
        orders: vec![report(2, IndexerOrderStatus::Canceled, "0")],
        fills: vec![],
        height: Some(14),
    });
    eventually("the updates arrive", async || {
        get(&store, &imported).await.status == OrderStatus::Cancelled
    })
    .await;
    let m = get(&store, &mine).await;
    assert_eq!(m.status, OrderStatus::Filled);
    assert_eq!(m.filled_quantity.as_deref(), Some("1"));
    let report = sync.stop().await;
    assert_eq!(report.imported, 1);
    assert_eq!(report.filled, 1);
    assert_eq!(report.partial_fills, 1);
    assert_eq!(report.cancelled, 1);
    assert_eq!(report.connections, 1);
    assert_eq!(report.gaps, 0);
}

#[tokio::test]
async fn a_dropped_feed_is_re_snapshotted_and_nothing_is_lost() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    let a = seed(&store, 1, OrderStatus::Active).await;
    let b = seed(&store, 2, OrderStatus::Active).await;
    let script = Arc::new(Script::default());
    let (tx1, rx1) = mpsc::unbounded();
    let (tx2, rx2) = mpsc::unbounded();
    script.streams.lock().expect("lock").push_back(rx1);
    script.streams.lock().expect("lock").push_back(rx2);
    let sync = IndexerSync::spawn(c.clone(), Arc::new(scripted(script.clone())), config());
    tx1.unbounded_send(FeedEvent::Snapshot {
        subaccount: sub(),
        orders: vec![],
        height: 10,
    })
    .expect("send");
    tx1.unbounded_send(FeedEvent::Update {
        subaccount: sub(),
        orders: vec![report(1, IndexerOrderStatus::Open, "0.5")],
        fills: vec![],
        height: Some(12),
    })
    .expect("send");
    eventually("the first update", async || {
        get(&store, &a).await.filled_quantity.as_deref() == Some("0.5")
    })
    .await;
    // In the gap: order 1 fills, order 2 fills fully. Only REST knows.
    {
        let mut filled_a = report(1, IndexerOrderStatus::Filled, "1");
        filled_a.height = Some(15);
        // Beyond the latest-orders listing (empty here): found through its fill.
        *script.orders.lock().expect("lock") = vec![filled_a];
        *script.fills.lock().expect("lock") = vec![IndexerFill {
            id: "f1".into(),
            order_indexer_id: Some(indexer_order_id(&id(1))),
            size: "0.5".into(),
            height: 15,
        }];
    }
    // Order 2 (no fill listed) is found through the lookup of open records by id.
    script
        .orders
        .lock()
        .expect("lock")
        .push(report(2, IndexerOrderStatus::Filled, "1"));
    drop(tx1);
    eventually("the gap is closed over REST", async || {
        get(&store, &a).await.status == OrderStatus::Filled
            && get(&store, &b).await.status == OrderStatus::Filled
    })
    .await;
    assert!(
        script.fills_after.lock().expect("lock").contains(&12),
        "fills asked for after the last block seen: {:?}",
        script.fills_after.lock().expect("lock")
    );
    // The new connection's own snapshot starts a second stream; updates go on.
    tx2.unbounded_send(FeedEvent::Snapshot {
        subaccount: sub(),
        orders: vec![],
        height: 16,
    })
    .expect("send");
    let report = sync.stop().await;
    assert_eq!(report.gaps, 1);
    assert_eq!(report.connections, 2);
    assert_eq!(report.filled, 2);
}

#[tokio::test]
async fn a_second_snapshot_on_a_stream_is_a_gap() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    let a = seed(&store, 1, OrderStatus::Active).await;
    let script = Arc::new(Script::default());
    let (tx, rx) = mpsc::unbounded();
    script.streams.lock().expect("lock").push_back(rx);
    let sync = IndexerSync::spawn(c.clone(), Arc::new(scripted(script.clone())), config());
    tx.unbounded_send(FeedEvent::Snapshot {
        subaccount: sub(),
        orders: vec![],
        height: 10,
    })
    .expect("send");
    eventually("subscribed", async || sync.report().snapshots >= 1).await;
    // The connector re-connected underneath; meanwhile the order was cancelled.
    *script.latest.lock().expect("lock") = vec![report(1, IndexerOrderStatus::Canceled, "0")];
    tx.unbounded_send(FeedEvent::Snapshot {
        subaccount: sub(),
        orders: vec![],
        height: 14,
    })
    .expect("send");
    eventually("the gap is closed", async || {
        get(&store, &a).await.status == OrderStatus::Cancelled
    })
    .await;
    let report = sync.stop().await;
    assert_eq!(report.gaps, 1);
    assert_eq!(report.connections, 1);
}

#[tokio::test]
async fn run_once_backfills_without_the_feed() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    let script = Arc::new(Script::default());
    *script.open.lock().expect("lock") = (0..50)
        .map(|n| report(100 + n, IndexerOrderStatus::Open, "0"))
        .collect();
    let indexer: Arc<dyn IndexerApi> = Arc::new(scripted(script));
    let report = IndexerSync::run_once(c.clone(), indexer.clone(), &SyncConfig::default()).await;
    assert_eq!(report.imported, 50);
    assert_eq!(report.errors, 0);
    let again = IndexerSync::run_once(c, indexer, &SyncConfig::default()).await;
    assert_eq!(again.imported, 0, "idempotent");
    let all = store.list(&Default::default()).await.expect("list").items;
    assert_eq!(all.len(), 50);
    assert!(all.iter().all(|m| m.status == OrderStatus::Active));
}

#[tokio::test]
async fn the_supervisor_runs_the_sync_under_one_handle() {
    let store = Arc::new(MemoryStore::new());
    let mut gw = MockOrderGateway::new();
    gw.expect_signer().return_const(ME.to_owned());
    gw.expect_clock().returning(|| {
        Ok(crate::ChainClock {
            height: 20,
            block_time: 1_800_000_000,
        })
    });
    let c = Arc::new(OrderMetaClient::new(
        Arc::new(gw),
        store.clone(),
        RecordingSwitch::new(true),
        ChainSettings::default(),
    ));
    let script = Arc::new(Script::default());
    let (_tx, rx) = mpsc::unbounded();
    script.streams.lock().expect("lock").push_back(rx);
    *script.open.lock().expect("lock") = vec![report(3, IndexerOrderStatus::Open, "0")];
    let sup = crate::Supervisor::spawn_with_indexer(
        c,
        crate::SupervisorConfig {
            interval: Duration::from_secs(3600),
            ..crate::SupervisorConfig::default()
        },
        Arc::new(scripted(script)),
        config(),
    );
    eventually("imported", async || {
        sup.indexer_report().is_some_and(|r| r.imported == 1)
    })
    .await;
    let report = sup.stop().await;
    assert_eq!(report.ticks, 1);
    assert_eq!(report.indexer.imported, 1);
    assert_eq!(report.indexer.connections, 1);
    assert!(
        store
            .get(&order_key(&id(3), GTB))
            .await
            .expect("get")
            .is_some()
    );
}
