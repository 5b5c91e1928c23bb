//! The lookup indexes by client id and label as stored (the behaviour every store shares is
//! the conformance suite's `lookup` group): key names and scores, who writes them, how they
//! live with the retention TTL, and an `update` whose reply is lost.

mod common;

use std::time::{Duration, Instant};

use common::raw::score;
use ordermeta_core::conformance::{long_term, short_term, t0};
use ordermeta_core::{
    ClientIdKey, ExpireRequest, MetadataStore, MetadataStoreExt, OrderStatus, TransitionRequest,
    UpdateRequest, to_micros,
};
use ordermeta_redis::RedisStore;
use ordermeta_redis::redis::{self, AsyncCommands as _};
use ordermeta_testkit::redis::RedisServer;

/// `record` writes one entry per record in `{ns}:cid:<owner len>:<owner>:<sub>:<clob>:<cid>`
/// and, with a label, `{ns}:lbl:<label len>:<label>`, scored by `placed_at` in µs; equal
/// scores read back greatest id first. Transitions, updates and expiry leave them alone;
/// purge removes a record's entries with it (and Redis the emptied keys).
#[tokio::test]
async fn lookup_keys_are_written_by_record_and_removed_by_purge() {
    let store = common::connect_fresh(&ordermeta_testkit::redis_url(), "lookup_layout").await;
    let mut conn = store.connection();
    let ns = store.keys().namespace().to_owned();
    let label = "bot Ü:1";
    let a = short_term("a", OrderStatus::Active, 10).with_label(label);
    let b = short_term("b", OrderStatus::Active, 10);
    let mut c = long_term("c", OrderStatus::Pending, 1_000).with_label(label);
    c.dydx_order_id.subaccount_number = 3;
    c.placed_at = t0() + chrono::Duration::microseconds(1);
    c.updated_at = c.placed_at;
    c.history[0].at = c.placed_at;
    store
        .record_many(&[a.clone(), b, c.clone()])
        .await
        .expect("record");

    let owner = a.owner();
    let cid = format!("{{{ns}}}:cid:{}:{owner}:0:0:7", owner.len());
    let cid3 = format!("{{{ns}}}:cid:{}:{owner}:3:0:7", owner.len());
    let lbl = format!("{{{ns}}}:lbl:8:{label}"); // bytes: Ü is two
    assert_eq!(store.keys().client_id(&ClientIdKey::of(&a)), cid);
    assert_eq!(store.keys().label(label), lbl);
    let t = to_micros(t0()) as f64;
    let got: Vec<(String, f64)> = conn.zrange_withscores(&cid, 0, -1).await.expect("zrange");
    assert_eq!(got, [("a".to_owned(), t), ("b".to_owned(), t)]);
    let got: Vec<(String, f64)> = conn.zrange_withscores(&cid3, 0, -1).await.expect("zrange");
    assert_eq!(got, [("c".to_owned(), t + 1.0)], "exact to the µs");
    let got: Vec<String> = conn.zrevrange(&lbl, 0, -1).await.expect("zrevrange");
    assert_eq!(got, ["c", "a"]);
    let top: Vec<String> = conn.zrevrange(&cid, 0, 0).await.expect("zrevrange");
    assert_eq!(top, ["b"], "equal scores: the greatest id first");

    // Writes after placement leave the lookup entries as they are.
    let later = t0() + chrono::Duration::minutes(1);
    store
        .transition(
            &TransitionRequest::new("a", &[OrderStatus::Active], OrderStatus::Cancelled).at(later),
        )
        .await
        .expect("cancel");
    store
        .update(&UpdateRequest::new("c").at(later).indexer_id("ix-c"))
        .await
        .expect("update");
    store
        .expire(&ExpireRequest::new(Some(20), Some(2_000)).at(t0() + chrono::Duration::hours(1)))
        .await
        .expect("expire");
    assert_eq!(score(&store, &cid, b"a").await, Some(t));
    assert_eq!(score(&store, &lbl, b"c").await, Some(t + 1.0));

    // Purge: every record is terminal and old now.
    let purged = store
        .purge(t0() + chrono::Duration::days(1))
        .await
        .expect("purge");
    assert_eq!(purged, 3);
    for key in [&cid, &cid3, &lbl] {
        let left: bool = conn.exists(key).await.expect("exists");
        assert!(!left, "{key} emptied by purge itself");
    }
    store.delete_namespace().await.expect("cleanup");
}

/// With a retention TTL: a lookup drops the entries of records the TTL removed, and never
/// answers a record whose id was recorded again under another client id; an `update` of a
/// terminal record restarts its TTL and moves its `{ns}:terminal` score to the new
/// `updated_at`.
#[tokio::test]
async fn lookups_live_with_the_retention_ttl() {
    let store = RedisStore::options()
        .namespace(ordermeta_testkit::unique_name("lookup_ttl"))
        .terminal_retention(Some(Duration::from_millis(300)))
        .connect(&ordermeta_testkit::redis_url())
        .await
        .unwrap_or_else(|e| {
            ordermeta_testkit::env::redis_missing(&ordermeta_testkit::redis_url(), e)
        });
    let mut conn = store.connection();
    let open = short_term("t-open", OrderStatus::Active, 9);
    let mut done = short_term("t-done", OrderStatus::Filled, 9).with_label("gone");
    done.placed_at = t0() + chrono::Duration::seconds(1);
    store
        .record_many(&[open, done.clone()])
        .await
        .expect("record");
    let key = ClientIdKey::of(&done);
    let newest = store.find_by_client_id(&key).await.expect("lookup");
    assert_eq!(newest.map(|m| m.order_id).as_deref(), Some("t-done"));

    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get("t-done").await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "the TTL never removed the record"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.find_by_label("gone").await.expect("lookup"), None);
    let left: bool = conn
        .exists(store.keys().label("gone"))
        .await
        .expect("exists");
    assert!(!left, "the lookup dropped the TTL's leftover");
    // Recorded again under another client id: its old entry (if any is left) is not it.
    let mut again = short_term("t-done", OrderStatus::Active, 9);
    again.dydx_order_id.client_id = 9;
    again.placed_at = t0() + chrono::Duration::seconds(2);
    store.record(&again).await.expect("re-record");
    let _: () = conn
        .zadd(
            store.keys().client_id(&key),
            "t-done",
            to_micros(again.placed_at),
        )
        .await
        .expect("a leftover entry");
    let newest = store.find_by_client_id(&key).await.expect("lookup");
    assert_eq!(newest.map(|m| m.order_id).as_deref(), Some("t-open"));
    let newest = store
        .find_by_client_id(&ClientIdKey::of(&again))
        .await
        .expect("lookup");
    assert_eq!(newest.map(|m| m.order_id).as_deref(), Some("t-done"));

    // An update of a terminal record: TTL restarted, terminal score = new updated_at.
    let at = t0() + chrono::Duration::minutes(5);
    store
        .transition(&TransitionRequest::new(
            "t-done",
            &[OrderStatus::Active],
            OrderStatus::Cancelled,
        ))
        .await
        .expect("cancel");
    let _: () = conn
        .pexpire(store.keys().order("t-done"), 100_000)
        .await
        .expect("pexpire");
    let got = store
        .update(&UpdateRequest::new("t-done").at(at).cancel_confirmed_at(at))
        .await
        .expect("update");
    assert_eq!(got.cancel_confirmed_at, Some(at));
    let ttl: i64 = conn.pttl(store.keys().order("t-done")).await.expect("pttl");
    assert!((1..=300).contains(&ttl), "restarted: {ttl}");
    assert_eq!(
        score(&store, &store.keys().terminal(), b"t-done").await,
        Some(to_micros(at) as f64)
    );
    store.delete_namespace().await.expect("cleanup");
}

/// An `update` whose reply is lost (the server stalls past the response timeout) is resolved
/// by reading the order back, never by sending it again: applied exactly once.
#[tokio::test]
async fn lost_update_reply_is_resolved_by_reading_back() {
    let server = RedisServer::start_private(&[]);
    let store = RedisStore::options()
        .namespace(ordermeta_testkit::unique_name("lost_update"))
        .response_timeout(Some(Duration::from_millis(150)))
        .connect(&server.url())
        .await
        .expect("connect");
    let m = short_term("u-1", OrderStatus::Active, 9);
    store.record(&m).await.expect("record");
    let admin = redis::Client::open(server.url()).expect("client");
    let mut admin = admin
        .get_multiplexed_async_connection()
        .await
        .expect("admin");
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(400)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .expect("pause");
    let started = Instant::now();
    let got = store
        .update(
            &UpdateRequest::new("u-1")
                .if_version(1)
                .filled_quantity("0.0005"),
        )
        .await
        .expect("update resolves by read-back");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the reply really was late: {:?}",
        started.elapsed()
    );
    assert_eq!(
        (
            got.version,
            got.filled_quantity.as_deref(),
            got.history.len()
        ),
        (2, Some("0.0005"), 1)
    );
    assert_eq!(
        store.get_required("u-1").await.expect("get"),
        got,
        "applied once"
    );
}
