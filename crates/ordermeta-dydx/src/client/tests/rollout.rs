//! Issue 17, placement side: the rollout scope decides per order (and is counted), the
//! failure policy decides what a store outage does, and a fail-open record is written after
//! the broadcast — or reported as live without metadata.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::{
    Backfill, CancelError, FailurePolicy, NotRecorded, RecordOutcome, RolloutScope, Share,
    SubaccountRef, Supervisor, SupervisorConfig,
};

/// A short-term order of `ME` on `clob`/`sub` with `client`, good until block 120.
fn order_on(clob: u32, sub: u32, client: u32) -> (OrderId, Order) {
    let id = OrderId {
        clob_pair_id: clob,
        subaccount_number: sub,
        ..oid(client, 0)
    };
    let order = built_order(&id, Some(GoodTil::Block(120)));
    (id, order)
}

/// A gateway accepting every placement, counting them.
fn placing_gateway(placed: Arc<std::sync::atomic::AtomicUsize>) -> MockOrderGateway {
    let mut gw = gateway();
    gw.expect_place().returning(move |_| {
        placed.fetch_add(1, Ordering::SeqCst);
        Ok("PLACED".into())
    });
    gw
}

fn scoped(gw: MockOrderGateway, store: Arc<FlakyStore>, scope: RolloutScope) -> OrderMetaClient {
    OrderMetaClient::new(
        Arc::new(gw),
        store,
        RecordingSwitch::with_scope(scope),
        settings(),
    )
}

/// Short delays and a budget the test controls.
fn fail_open(budget: Duration) -> ChainSettings {
    ChainSettings {
        failure_policy: FailurePolicy::FailOpen(Backfill {
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            budget,
            capacity: 100,
        }),
        ..settings()
    }
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what}: not within 10 s");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn out_of_scope_orders_are_placed_as_without_ordermeta_and_counted() {
    let store = Arc::new(FlakyStore::default());
    let placed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = scoped(
        placing_gateway(placed.clone()),
        store.clone(),
        RolloutScope::clob_pairs([2]).with_subaccounts([SubaccountRef::number(0)]),
    );
    for (clob, sub, client, recorded) in [
        (1, 0, 1, false),
        (2, 0, 2, true),
        (2, 1, 3, false),
        (3, 1, 4, false),
    ] {
        let (_, order) = order_on(clob, sub, client);
        let p = c.place_order(order, details()).await.expect("placed");
        assert_eq!(p.recorded, recorded, "{}", p.order_id);
        let want = if recorded {
            RecordOutcome::Recorded
        } else {
            RecordOutcome::OutOfScope
        };
        assert_eq!(p.record, want);
        assert_eq!(
            store.get(&p.order_id).await.expect("get").is_some(),
            recorded,
            "{}",
            p.order_id
        );
    }
    assert_eq!(
        placed.load(Ordering::SeqCst),
        4,
        "every order was broadcast"
    );
    let stats = c.rollout_stats();
    assert_eq!((stats.recorded, stats.out_of_scope), (1, 3));
    assert_eq!(stats.recording_failed, 0);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn a_share_records_exactly_the_orders_its_rule_selects() {
    let store = Arc::new(FlakyStore::default());
    let placed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let share = Share::percent(30).expect("30%");
    let c = scoped(
        placing_gateway(placed),
        store.clone(),
        RolloutScope::share(share),
    );
    let mut recorded = 0;
    for client in 0..300 {
        let (id, order) = order_on(client % 4, 0, client);
        let p = c.place_order(order, details()).await.expect("placed");
        let selected = Share::bucket(&id) < 3_000;
        assert_eq!(p.recorded, selected, "{}", p.order_id);
        assert_eq!(
            store.get(&p.order_id).await.expect("get").is_some(),
            selected
        );
        recorded += usize::from(selected);
    }
    assert!(
        (45..=135).contains(&recorded),
        "about 30% of 300: {recorded}"
    );
    assert_eq!(c.rollout_stats().recorded, recorded as u64);
    assert_eq!(c.rollout_stats().out_of_scope, 300 - recorded as u64);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn a_scope_change_from_another_thread_applies_to_the_next_placement() {
    let store = Arc::new(FlakyStore::default());
    let placed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = scoped(
        placing_gateway(placed),
        store.clone(),
        RolloutScope::clob_pairs([0]),
    );
    let (_, order) = order_on(1, 0, 1);
    assert!(
        !c.place_order(order, details())
            .await
            .expect("placed")
            .recorded
    );
    // An operator widens the rollout from another thread, through a clone.
    let switch = c.recording().clone();
    std::thread::spawn(move || switch.set_scope(RolloutScope::all()))
        .join()
        .expect("thread");
    let (_, order) = order_on(1, 0, 2);
    assert!(
        c.place_order(order, details())
            .await
            .expect("placed")
            .recorded
    );
    // And rolls back.
    c.recording().set(false);
    let (_, order) = order_on(0, 0, 3);
    let p = c.place_order(order, details()).await.expect("placed");
    assert_eq!(p.record, RecordOutcome::OutOfScope);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn fail_closed_outage_broadcasts_nothing_and_is_counted() {
    let store = Arc::new(FlakyStore::default());
    store.down.store(true, Ordering::SeqCst);
    let mut gw = gateway();
    gw.expect_place().times(0);
    let c = client(gw, store);
    let (_, order) = order_on(0, 0, 1);
    let err = c.place_order(order, details()).await.expect_err("refused");
    assert!(matches!(err, PlaceError::Storage { .. }), "{err}");
    let stats = c.rollout_stats();
    assert_eq!((stats.recording_failed, stats.fail_open), (1, 0));
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn fail_open_broadcasts_and_writes_the_record_once_the_store_returns() {
    let store = Arc::new(FlakyStore::default());
    store.down.store(true, Ordering::SeqCst);
    let mut gw = gateway();
    gw.expect_place().times(1).returning(|_| Ok("LIVE".into()));
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(1).returning(|_, _| Ok("C".into()));
    let c = client_settings(gw, store.clone(), fail_open(Duration::from_secs(60)));
    let (_, order) = order_on(0, 0, 1);
    let p = c
        .place_order(order, details())
        .await
        .expect("placed fail-open");
    assert_eq!(p.record, RecordOutcome::Deferred);
    assert!(!p.recorded);
    let stats = c.rollout_stats();
    assert_eq!((stats.recording_failed, stats.fail_open), (1, 1));
    assert!(store.inner.get(&p.order_id).await.expect("get").is_none());

    tokio::time::sleep(Duration::from_millis(30)).await;
    store.down.store(false, Ordering::SeqCst);
    wait_for("the late write", || c.rollout_stats().written_late == 1).await;
    let m = store.get_required(&p.order_id).await.expect("written");
    assert_eq!(m.status, OrderStatus::Active);
    assert_eq!(m.tx_hash.as_deref(), Some("LIVE"));
    assert!(
        m.history[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("after the broadcast")),
        "{:?}",
        m.history
    );
    assert_eq!(c.rollout_stats().write_pending, 0);
    // Cancellable by id from its record now.
    let done = c.cancel_order(&p.order_id).await.expect("cancelled");
    assert_eq!(done.path, CancelPath::Record);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn fail_open_covers_outages_only() {
    let store = Arc::new(FlakyStore::default());
    let (id, order) = order_on(0, 0, 1);
    // The same order id is already recorded: a refusal, not an outage.
    seed(&store, &id, GoodTil::Block(120), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_place().times(0);
    let c = client_settings(gw, store, fail_open(Duration::from_secs(60)));
    let err = c.place_order(order, details()).await.expect_err("refused");
    assert!(matches!(err, PlaceError::Storage { .. }), "{err}");
    assert_eq!(c.rollout_stats().fail_open, 0);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn fail_open_unknown_outcome_is_written_pending_and_refusal_not_at_all() {
    let store = Arc::new(FlakyStore::default());
    store.down.store(true, Ordering::SeqCst);
    let mut gw = gateway();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    gw.expect_place().times(2).returning(move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(GatewayError::Timeout {
                operation: "place",
                after: Duration::from_secs(5),
            })
        } else {
            Err(rejected(codes::CODESPACE_CLOB, 11))
        }
    });
    let c = client_settings(gw, store.clone(), fail_open(Duration::from_secs(60)));
    let (_, unknown) = order_on(0, 0, 1);
    let unknown = match c.place_order(unknown, details()).await {
        Err(PlaceError::Network { order_id, .. }) => order_id,
        other => panic!("{other:?}"),
    };
    let (_, refused) = order_on(0, 0, 2);
    let refused = match c.place_order(refused, details()).await {
        Err(PlaceError::Rejected { order_id, .. }) => order_id,
        other => panic!("{other:?}"),
    };
    store.down.store(false, Ordering::SeqCst);
    wait_for("the late write", || c.rollout_stats().written_late == 1).await;
    assert_eq!(status(&store, &unknown).await, OrderStatus::Pending);
    assert!(
        store.get(&refused).await.expect("get").is_none(),
        "not live"
    );
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn unwritten_records_are_reported_and_written_by_the_supervisor() {
    let store = Arc::new(FlakyStore::default());
    store.down.store(true, Ordering::SeqCst);
    let mut gw = gateway();
    gw.expect_place().returning(|_| Ok("LIVE".into()));
    gw.expect_clock().returning(|| Ok(CLOCK));
    let c = client_settings(
        gw,
        store.clone(),
        ChainSettings {
            cancel_from_id: false,
            ..fail_open(Duration::from_millis(20))
        },
    );
    let (_, order) = order_on(0, 0, 1);
    let p = c.place_order(order, details()).await.expect("placed");
    wait_for("given up", || c.rollout_stats().live_without_metadata == 1).await;
    // Without cancel-from-id, the error says why there is no record.
    match c.cancel_order(&p.order_id).await {
        Err(CancelError::Storage { .. }) => {}
        other => panic!("the store is still down: {other:?}"),
    }
    store.down.store(false, Ordering::SeqCst);
    match c.cancel_order(&p.order_id).await {
        Err(CancelError::MetadataNotFound { not_recorded, .. }) => {
            assert_eq!(not_recorded, Some(NotRecorded::RecordingFailed));
        }
        other => panic!("{other:?}"),
    }
    let config = SupervisorConfig {
        pending_after: Duration::from_secs(3600),
        ..SupervisorConfig::default()
    };
    let report = Supervisor::run_once(&c, &config).await;
    assert_eq!(report.late_written, 1, "{report:?}");
    assert_eq!(report.live_without_metadata, 0);
    assert_eq!(c.rollout_stats().live_without_metadata, 0);
    assert_eq!(status(&store, &p.order_id).await, OrderStatus::Active);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn unwritten_records_past_their_good_til_are_no_longer_live() {
    let store = Arc::new(FlakyStore::default());
    store.down.store(true, Ordering::SeqCst);
    let mut gw = gateway();
    gw.expect_place().returning(|_| Ok("LIVE".into()));
    // The chain has moved past the order's good-til block (120).
    gw.expect_clock().returning(|| {
        Ok(ChainClock {
            height: 500,
            ..CLOCK
        })
    });
    let c = client_settings(gw, store.clone(), fail_open(Duration::from_millis(10)));
    let (_, order) = order_on(0, 0, 1);
    let p = c.place_order(order, details()).await.expect("placed");
    wait_for("given up", || c.rollout_stats().live_without_metadata == 1).await;
    let config = SupervisorConfig {
        pending_after: Duration::from_secs(3600),
        ..SupervisorConfig::default()
    };
    let report = Supervisor::run_once(&c, &config).await;
    assert_eq!((report.late_written, report.live_without_metadata), (0, 0));
    store.down.store(false, Ordering::SeqCst);
    assert!(store.get(&p.order_id).await.expect("get").is_none());
}

#[test]
fn failure_policy_reads_from_text_and_serde() {
    assert_eq!("fail-closed".parse(), Ok(FailurePolicy::FailClosed));
    assert_eq!("FAIL_OPEN".parse(), Ok(FailurePolicy::fail_open()));
    assert!("maybe".parse::<FailurePolicy>().is_err());
    assert_eq!(FailurePolicy::default(), FailurePolicy::FailClosed);
    let open: FailurePolicy = serde_json::from_str(r#"{"fail_open":{}}"#).expect("serde");
    assert!(open.is_fail_open());
    assert_eq!(open, FailurePolicy::fail_open());
    let closed: FailurePolicy = serde_json::from_str(r#""fail_closed""#).expect("serde");
    assert_eq!(closed, FailurePolicy::FailClosed);
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn a_full_write_behind_queue_gives_up_at_once() {
    let store = Arc::new(FlakyStore::default());
    store.down.store(true, Ordering::SeqCst);
    let mut gw = gateway();
    gw.expect_place().returning(|_| Ok("LIVE".into()));
    let settings = ChainSettings {
        failure_policy: FailurePolicy::FailOpen(Backfill {
            capacity: 1,
            ..Backfill::default()
        }),
        ..settings()
    };
    let c = client_settings(gw, store, settings);
    for client in 1..=3 {
        let (_, order) = order_on(0, 0, client);
        let p = c.place_order(order, details()).await.expect("placed");
        assert_eq!(p.record, RecordOutcome::Deferred);
    }
    // One waits for the store; the others are reported at once, not queued without bound.
    let stats = c.rollout_stats();
    assert_eq!(stats.fail_open, 3);
    assert_eq!(
        stats.write_pending + stats.live_without_metadata,
        3,
        "{stats:?}"
    );
    assert!(stats.live_without_metadata >= 2, "{stats:?}");
}

/// Counters and gauges by `name{label=value,…}`, for the metrics test.
#[derive(Default)]
struct Recorded(std::sync::Mutex<BTreeMap<String, Arc<Value>>>);

#[derive(Default)]
struct Value(std::sync::atomic::AtomicU64);

impl metrics::CounterFn for Value {
    fn increment(&self, n: u64) {
        self.0.fetch_add(n, Ordering::SeqCst);
    }
    fn absolute(&self, n: u64) {
        self.0.store(n, Ordering::SeqCst);
    }
}

impl metrics::GaugeFn for Value {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, v: f64) {
        self.0.store(v as u64, Ordering::SeqCst);
    }
}

impl Recorded {
    fn value(&self, key: &metrics::Key) -> Arc<Value> {
        let mut name = key.name().to_owned();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        if !labels.is_empty() {
            name = format!("{name}{{{}}}", labels.join(","));
        }
        let mut map = self.0.lock().expect("lock");
        map.entry(name).or_default().clone()
    }

    fn get(&self, name: &str) -> u64 {
        let map = self.0.lock().expect("lock");
        map.get(name).map_or(0, |v| v.0.load(Ordering::SeqCst))
    }
}

impl metrics::Recorder for Recorded {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.value(key))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.value(key))
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// Every scope decision is a metric an operator can watch during the rollout.
#[cfg(feature = "recording")]
#[test]
fn each_scope_decision_is_counted_in_metrics() {
    let recorded = Recorded::default();
    metrics::with_local_recorder(&recorded, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let store = Arc::new(FlakyStore::default());
            let mut gw = gateway();
            gw.expect_place().returning(|_| Ok("P".into()));
            gw.expect_cancel().returning(|_, _| Ok("C".into()));
            let c = OrderMetaClient::new(
                Arc::new(gw),
                store.clone(),
                RecordingSwitch::with_scope(RolloutScope::clob_pairs([0])),
                fail_open(Duration::from_secs(60)),
            );
            let (_, in_scope) = order_on(0, 0, 1);
            c.place_order(in_scope, details()).await.expect("recorded");
            let (_, outside) = order_on(1, 0, 2);
            let outside = c
                .place_order(outside, details())
                .await
                .expect("out of scope");
            store.down.store(true, Ordering::SeqCst);
            let (_, failing) = order_on(0, 0, 3);
            c.place_order(failing, details()).await.expect("fail-open");
            store.down.store(false, Ordering::SeqCst);
            wait_for("the late write", || c.rollout_stats().written_late == 1).await;
            c.cancel_order(&outside.order_id)
                .await
                .expect("from the id");
        });
    });
    let decisions = "ordermeta_recording_decisions_total";
    assert_eq!(
        recorded.get(&format!("{decisions}{{decision=recorded}}")),
        1
    );
    assert_eq!(
        recorded.get(&format!("{decisions}{{decision=out_of_scope}}")),
        1
    );
    assert_eq!(
        recorded.get(&format!("{decisions}{{decision=recording_failed}}")),
        1
    );
    assert_eq!(recorded.get("ordermeta_fail_open_placements_total"), 1);
    assert_eq!(
        recorded.get("ordermeta_late_records_total{outcome=written}"),
        1
    );
    assert_eq!(recorded.get("ordermeta_late_records_pending"), 0);
    assert_eq!(recorded.get("ordermeta_live_without_metadata"), 0);
    assert_eq!(
        recorded.get("ordermeta_cancel_without_record_total{path=order_id}"),
        1
    );
}
