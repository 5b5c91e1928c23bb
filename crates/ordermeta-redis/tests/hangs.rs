//! Hung servers, for real: a listener that accepts and never answers, and a private
//! redis-server frozen with SIGSTOP. Every call returns within its deadline (the elapsed time
//! is asserted, with a generous margin for a loaded machine) with a typed error — for a
//! frozen server [`ErrorKind::Timeout`], the outcome unknown — and once the server answers
//! again the next call succeeds and reading back tells the truth: each write happened exactly
//! once or not at all.

use std::future::Future;
use std::time::{Duration, Instant};

use ordermeta_core::backend::DEFAULT_OPERATION_TIMEOUT;
use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    ANONYMOUS_CLAIM, ClientIdKey, ErrorKind, MetadataStore, MetadataStoreExt, OrderMetadata,
    OrderStatus, StoreError, UpdateRequest,
};
use ordermeta_redis::RedisStore;
use ordermeta_testkit::net::SilentListener;
use ordermeta_testkit::redis::RedisServer;

/// Slack on top of a deadline: scheduling on a busy 2-core machine, process spawns.
const MARGIN: Duration = Duration::from_secs(2);

/// `fut`'s output and how long it took.
async fn timed<T>(fut: impl Future<Output = T>) -> (Duration, T) {
    let start = Instant::now();
    let out = fut.await;
    (start.elapsed(), out)
}

/// Asserts `r` failed with `kind` within `deadline` (+ [`MARGIN`]); prints the measurement.
fn failed_in_time<T: std::fmt::Debug>(
    what: &str,
    (elapsed, r): (Duration, Result<T, StoreError>),
    deadline: Duration,
    kind: ErrorKind,
) {
    eprintln!("{what}: {elapsed:?} (deadline {deadline:?}): {r:?}");
    let err = r.expect_err(what);
    assert_eq!(err.kind(), kind, "{what}: {err}");
    assert!(
        elapsed < deadline + MARGIN,
        "{what} took {elapsed:?}, deadline {deadline:?}"
    );
}

async fn connect(url: &str, deadline: Option<Duration>) -> RedisStore {
    let mut options = RedisStore::options().namespace(ordermeta_testkit::unique_name("hang"));
    if let Some(d) = deadline {
        options = options.operation_timeout(d);
    }
    options.connect(url).await.expect("connect")
}

/// Whether `got` is `rec` written exactly once, or nothing: what a write of unknown outcome
/// may have left.
fn once_or_never(got: Option<OrderMetadata>, rec: &OrderMetadata) -> &'static str {
    match got {
        None => "not written",
        Some(m) => {
            assert_eq!(&m, rec, "written exactly as sent, once");
            "written once"
        }
    }
}

/// Whether the claim of an active order happened exactly once, or not at all.
fn claimed_once_or_never(m: &OrderMetadata) -> &'static str {
    match m.status {
        OrderStatus::Active => {
            assert_eq!((m.version, m.history.len(), &m.lease), (1, 1, &None));
            "not claimed"
        }
        OrderStatus::Cancelling => {
            assert_eq!((m.version, m.history.len()), (2, 2), "claimed once: {m:?}");
            assert_eq!(
                m.lease.as_ref().map(|l| l.token.as_str()),
                Some(ANONYMOUS_CLAIM)
            );
            "claimed once"
        }
        other => panic!("the claim left the order {other}"),
    }
}

/// A listener that completes the TCP handshake and never answers: `connect` (one server or a
/// cluster) fails with `Timeout` within its operation timeout — the short one of the test and
/// the default one — instead of waiting for redis-rs' own timeouts and reconnect attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_silent_listener_fails_within_the_deadline() {
    let silent = SilentListener::start().await;
    let single = format!("redis://{}", silent.addr());
    let cluster = format!("redis+cluster://{}", silent.addr());
    let short = Duration::from_millis(800);
    let attempt = |url: String, deadline: Option<Duration>| async move {
        let mut options = RedisStore::options();
        if let Some(d) = deadline {
            options = options.operation_timeout(d);
        }
        timed(options.connect(&url)).await
    };
    let (a, b, c) = tokio::join!(
        attempt(single.clone(), Some(short)),
        attempt(cluster, Some(short)),
        attempt(single, None),
    );
    failed_in_time("connect (single, 800 ms)", a, short, ErrorKind::Timeout);
    failed_in_time("connect (cluster, 800 ms)", b, short, ErrorKind::Timeout);
    failed_in_time(
        "connect (single, default deadline)",
        c,
        DEFAULT_OPERATION_TIMEOUT,
        ErrorKind::Timeout,
    );
    assert!(silent.accepted() >= 3, "the TCP connections were accepted");
}

/// A server frozen with SIGSTOP (connections open, nothing answered): `record`, `transition`,
/// `update`, `get`, both lookups and `health` each fail with `Timeout` within the operation
/// timeout, read-backs included. After SIGCONT the next call succeeds, and the writes sent to the frozen server
/// happened exactly once or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_costs_each_call_one_deadline() {
    // A private server, never the shared one: it gets frozen.
    let server = RedisServer::start_private(&[]);
    let deadline = Duration::from_secs(1);
    let store = connect(&server.url(), Some(deadline)).await;
    store
        .record_many(&[
            short_term("fz-claim", OrderStatus::Active, 9),
            short_term("fz-upd", OrderStatus::Active, 9).with_label("fz"),
        ])
        .await
        .expect("record");
    let rec = short_term("fz-new", OrderStatus::Pending, 9);
    let key = ClientIdKey::of(&rec);

    let pid = server.pause();
    let t = ErrorKind::Timeout;
    failed_in_time("record", timed(store.record(&rec)).await, deadline, t);
    failed_in_time(
        "transition",
        timed(store.claim_for_cancel("fz-claim")).await,
        deadline,
        t,
    );
    let update = UpdateRequest::new("fz-upd").filled_quantity("0.5");
    failed_in_time("update", timed(store.update(&update)).await, deadline, t);
    failed_in_time("get", timed(store.get("fz-claim")).await, deadline, t);
    failed_in_time(
        "find_by_client_id",
        timed(store.find_by_client_id(&key)).await,
        deadline,
        t,
    );
    failed_in_time(
        "find_by_label",
        timed(store.find_by_label("fz")).await,
        deadline,
        t,
    );
    failed_in_time("health", timed(store.health()).await, deadline, t);
    server.resume(pid);

    let (elapsed, next) =
        timed(store.record(&short_term("fz-after", OrderStatus::Pending, 9))).await;
    eprintln!("first call after SIGCONT: {elapsed:?}");
    next.expect("the next call succeeds");
    let new = once_or_never(store.get("fz-new").await.expect("get"), &rec);
    let claim = claimed_once_or_never(&store.get_required("fz-claim").await.expect("get"));
    let upd = store.get_required("fz-upd").await.expect("get");
    let upd = match (upd.version, upd.filled_quantity.as_deref()) {
        (1, None) => "not updated",
        (2, Some("0.5")) => "updated once",
        other => panic!("the update left {other:?}"),
    };
    eprintln!("read back after the thaw: record {new}, transition {claim}, update {upd}");
    store.delete_namespace().await.expect("cleanup");
}

/// With the default options a write to a frozen server returns within
/// [`DEFAULT_OPERATION_TIMEOUT`] (it used to take ~20 s: a 5 s reply timeout, then three
/// read-backs of 5 s each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_deadline_bounds_writes_to_a_frozen_server() {
    // A private server, never the shared one: it gets frozen.
    let server = RedisServer::start_private(&[]);
    let store = connect(&server.url(), None).await;
    store
        .record(&short_term("fd-claim", OrderStatus::Active, 9))
        .await
        .expect("record");
    let rec = short_term("fd-new", OrderStatus::Pending, 9);
    let pid = server.pause();
    let (record, claim) = tokio::join!(
        timed(store.record(&rec)),
        timed(store.claim_for_cancel("fd-claim")),
    );
    server.resume(pid);
    let d = DEFAULT_OPERATION_TIMEOUT;
    failed_in_time("record (default deadline)", record, d, ErrorKind::Timeout);
    failed_in_time(
        "transition (default deadline)",
        claim,
        d,
        ErrorKind::Timeout,
    );
    once_or_never(store.get("fd-new").await.expect("get"), &rec);
    claimed_once_or_never(&store.get_required("fd-claim").await.expect("get"));
    store.delete_namespace().await.expect("cleanup");
}

/// A server that wakes after the write's share of the deadline (three quarters) but before
/// the deadline: the writes' replies are given up on, and reading the orders back in the last
/// quarter finds them applied — `record` and `transition` succeed, each applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_lost_to_a_brief_freeze_is_read_back_within_the_deadline() {
    // A private server, never the shared one: it gets frozen.
    let server = RedisServer::start_private(&[]);
    let deadline = Duration::from_secs(6);
    let store = connect(&server.url(), Some(deadline)).await;
    store
        .record(&short_term("fb-claim", OrderStatus::Active, 9))
        .await
        .expect("record");
    let rec = short_term("fb-new", OrderStatus::Pending, 9);
    let pid = server.pause();
    // Wake it 4.9 s in: after the replies are given up on (4.5 s), 1.1 s before the deadline.
    let thaw = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(4_900));
        server.resume(pid);
        server
    });
    let ((t_rec, recorded), (t_claim, claimed)) = tokio::join!(
        timed(store.record(&rec)),
        timed(store.claim_for_cancel("fb-claim")),
    );
    let _server = thaw.join().expect("thaw");
    eprintln!("record: {t_rec:?}, transition: {t_claim:?} (deadline {deadline:?})");
    recorded.expect("the record is read back as written");
    let claimed = claimed.expect("the claim is read back as applied");
    assert!(t_rec < deadline + MARGIN && t_claim < deadline + MARGIN);
    assert_eq!(store.get_required("fb-new").await.expect("get"), rec);
    assert_eq!(claimed_once_or_never(&claimed), "claimed once");
    assert_eq!(store.get_required("fb-claim").await.expect("get"), claimed);
    store.delete_namespace().await.expect("cleanup");
}
