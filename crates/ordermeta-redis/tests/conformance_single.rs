//! The whole conformance suite on one Redis server (`REDIS_URL`), plus what only Redis has:
//! corrupt values, the key layout, retention TTL and lost replies.

mod common;

use std::time::{Duration, Instant};

use ordermeta_core::conformance::{TestStore, long_term, short_term};
use ordermeta_core::{
    ErrorKind, ListQuery, MetadataStore, MetadataStoreExt, OrderStatus, TransitionRequest,
};
use ordermeta_redis::RedisStore;
use ordermeta_redis::redis::{self, AsyncCommands as _};
use ordermeta_testkit::redis::RedisServer;

async fn setup() -> TestStore {
    common::test_store(common::connect_fresh(&ordermeta_testkit::redis_url(), "single").await)
}

ordermeta_core::conformance_tests!(setup);

async fn raw_keys(store: &RedisStore) -> Vec<String> {
    let pattern = format!("{{{}}}*", store.keys().namespace());
    let mut conn = store.connection();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys
}

/// Every key the store writes carries the namespace's hash tag, and delete_namespace removes
/// all of them.
#[tokio::test]
async fn keys_carry_the_hash_tag_and_cleanup_removes_them() {
    let store = common::connect_fresh(&ordermeta_testkit::redis_url(), "layout").await;
    let recs = vec![
        short_term("k-1", OrderStatus::Active, 5),
        long_term("k-2 {odd} id", OrderStatus::Pending, 5),
        short_term("k-3", OrderStatus::Filled, 5),
    ];
    store.record_many(&recs).await.expect("record");
    store
        .expire(&ordermeta_core::ExpireRequest::new(Some(10), Some(10)))
        .await
        .expect("expire");
    let tag = format!("{{{}}}:", store.keys().namespace());
    let keys = raw_keys(&store).await;
    assert!(keys.len() >= 6, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with(&tag)), "{keys:?}");
    // One slot for all of them.
    let mut conn = store.connection();
    let mut slots = std::collections::BTreeSet::new();
    for k in &keys {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap_or(-1);
        slots.insert(slot);
    }
    assert_eq!(slots.len(), 1, "{slots:?}");
    store.delete_namespace().await.expect("delete");
    assert_eq!(raw_keys(&store).await, Vec::<String>::new());
}

/// Corrupt values in the HASH are `InvalidMetadata` from `get` and land in `Page::invalid`.
#[tokio::test]
async fn corrupt_values_are_invalid_metadata() {
    let store = common::connect_fresh(&ordermeta_testkit::redis_url(), "corrupt").await;
    let ts = common::test_store(store.clone());
    ts.run(|s| async move {
        let cases: [(&str, &str, &str); 7] = [
            ("c-version", "version", "-3"),
            ("c-client", "client_id", "8"),
            ("c-status", "status", "exploded"),
            ("c-history", "history", "[{"),
            ("c-u32", "subaccount_number", "4294967296"),
            ("c-time", "updated_at", "soon"),
            ("c-b64", "dydx_order_id", "!!!"),
        ];
        let mut conn = store.connection();
        for (id, field, value) in cases {
            s.record(&short_term(id, OrderStatus::Active, 9))
                .await
                .expect("record");
            let _: () = conn
                .hset(store.keys().order(id), field, value)
                .await
                .expect("corrupt it");
            let err = s.get(id).await.expect_err(field);
            assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{field}: {err}");
            assert!(err.to_string().contains(id), "{err}");
        }
        // A key of the wrong type.
        s.record(&short_term("c-type", OrderStatus::Active, 9))
            .await
            .expect("record");
        let key = store.keys().order("c-type");
        let _: () = conn.del(&key).await.expect("del");
        let _: () = conn.set(&key, "not a hash").await.expect("set");
        let err = s.get("c-type").await.expect_err("wrong type");
        assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{err}");
        s.record(&short_term("ok-1", OrderStatus::Active, 9))
            .await
            .expect("record");

        let page = s.list(&ListQuery::default()).await.expect("list");
        assert_eq!(page.items.len(), 1, "{page:?}");
        assert_eq!(page.invalid.len(), 8, "{page:?}");
        // They count toward the page size and the cursor.
        let page = s
            .list(&ListQuery {
                limit: 3,
                ..ListQuery::default()
            })
            .await
            .expect("list");
        assert_eq!(page.items.len() + page.invalid.len(), 3);
        assert_eq!(page.next.as_deref(), Some("c-history"));
        // A transition on a corrupt history or version writes nothing.
        let r = s.claim_for_cancel("c-history").await;
        assert_eq!(r.err().map(|e| e.kind()), Some(ErrorKind::InvalidMetadata));
        let status: String = conn
            .hget(store.keys().order("c-history"), "status")
            .await
            .expect("hget");
        assert_eq!(status, "active");
    })
    .await;
}

/// Versions count exactly at every size: one a Lua number holds exactly and one past 2^53
/// (where a double would round) both get the exact successor, and a version that is no
/// integer stops the transition before it writes anything.
#[tokio::test]
async fn versions_count_exactly_at_every_size() {
    let store = common::connect_fresh(&ordermeta_testkit::redis_url(), "version").await;
    let ts = common::test_store(store.clone());
    ts.run(|s| async move {
        let mut conn = store.connection();
        let key = store.keys().order("v-1");
        s.record(&short_term("v-1", OrderStatus::Active, 9))
            .await
            .expect("record");
        // 14 digits: computed in Lua; 2^53 + 1: not exact as a double, so HINCRBY.
        for (stored, from, to) in [
            (
                "99999999999999",
                OrderStatus::Active,
                OrderStatus::Cancelling,
            ),
            (
                "9007199254740993",
                OrderStatus::Cancelling,
                OrderStatus::Active,
            ),
        ] {
            let _: () = conn.hset(&key, "version", stored).await.expect("hset");
            let got = s
                .transition(&TransitionRequest::new("v-1", &[from], to))
                .await
                .expect("transition");
            let next = stored.parse::<u64>().expect("u64") + 1;
            assert_eq!(got.version, next, "from {stored}");
            assert_eq!(s.get_required("v-1").await.expect("get").version, next);
        }
        let _: () = conn.hset(&key, "version", "1.5").await.expect("hset");
        let err = s
            .transition(&TransitionRequest::new(
                "v-1",
                &[OrderStatus::Active],
                OrderStatus::Cancelling,
            ))
            .await
            .expect_err("corrupt version");
        assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{err}");
        let status: String = conn.hget(&key, "status").await.expect("hget");
        assert_eq!(status, "active", "nothing written");
    })
    .await;
}

/// With a retention TTL, terminal records vanish by themselves; open ones never do; list
/// skips and purge sweeps what the TTL leaves behind in the indexes.
#[tokio::test]
async fn terminal_retention_ttl() {
    let store = RedisStore::options()
        .namespace(ordermeta_testkit::unique_name("ttl"))
        .terminal_retention(Some(Duration::from_millis(300)))
        .connect(&ordermeta_testkit::redis_url())
        .await
        .expect("Redis at REDIS_URL is required");
    let ts = common::test_store(store.clone());
    ts.run(|s| async move {
        s.record_many(&[
            short_term("t-open", OrderStatus::Active, 9),
            short_term("t-done", OrderStatus::Filled, 9),
            short_term("t-later", OrderStatus::Active, 9),
        ])
        .await
        .expect("record");
        s.transition(&TransitionRequest::new(
            "t-later",
            &[OrderStatus::Active],
            OrderStatus::Cancelled,
        ))
        .await
        .expect("cancel");
        let mut conn = store.connection();
        let ttl: i64 = conn
            .pttl(store.keys().order("t-later"))
            .await
            .expect("pttl");
        assert!(ttl > 0, "terminal records get the TTL: {ttl}");
        let ttl: i64 = conn.pttl(store.keys().order("t-open")).await.expect("pttl");
        assert_eq!(ttl, -1, "open records never expire");
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.get("t-done").await.expect("get").is_some()
            || s.get("t-later").await.expect("get").is_some()
        {
            assert!(
                Instant::now() < deadline,
                "the TTL never removed the records"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let page = s.list(&ListQuery::default()).await.expect("list");
        let ids: Vec<_> = page.items.iter().map(|m| m.order_id.as_str()).collect();
        assert_eq!(ids, ["t-open"]);
        assert!(page.invalid.is_empty());
        // Purge counts only what it deletes, and sweeps the leftovers from the indexes.
        assert_eq!(s.purge(ordermeta_core::now()).await.expect("purge"), 0);
        let ids: Vec<String> = conn
            .zrange(store.keys().ids(), 0, -1)
            .await
            .expect("zrange");
        assert_eq!(ids, ["t-open"]);
        // The id can be recorded again.
        s.record(&short_term("t-done", OrderStatus::Pending, 9))
            .await
            .expect("re-record");
        let pending = s
            .list(&ListQuery {
                statuses: vec![OrderStatus::Pending],
                ..ListQuery::default()
            })
            .await
            .expect("list");
        assert_eq!(pending.items.len(), 1);
    })
    .await;
}

/// A transition whose reply is lost (the server stalls past the response timeout) is resolved
/// by reading the order back, never by sending it again: it is applied exactly once.
#[tokio::test]
async fn lost_reply_is_resolved_by_reading_back() {
    // A private server: CLIENT PAUSE stalls every client of the server.
    let server = RedisServer::start_private(&[]);
    let store = RedisStore::options()
        .namespace(ordermeta_testkit::unique_name("lost"))
        .response_timeout(Some(Duration::from_millis(150)))
        .connect(&server.url())
        .await
        .expect("connect");
    store
        .record(&short_term("l-1", OrderStatus::Active, 9))
        .await
        .expect("record");
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
    let got = store
        .claim_for_cancel("l-1")
        .await
        .expect("claim resolves by read-back");
    assert_eq!(
        (got.status, got.version, got.history.len()),
        (OrderStatus::Cancelling, 2, 2)
    );
    let stored = store.get_required("l-1").await.expect("get");
    assert_eq!(stored, got, "applied exactly once");
    // A lost record reply likewise.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(400)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .expect("pause");
    let rec = short_term("l-2", OrderStatus::Pending, 9);
    store
        .record(&rec)
        .await
        .expect("record resolves by read-back");
    assert_eq!(store.get_required("l-2").await.expect("get"), rec);
}
