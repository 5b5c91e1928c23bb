//! The feed loop against a scripted indexer: backfill, live updates, gaps, the supervisor.

use super::*;

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
