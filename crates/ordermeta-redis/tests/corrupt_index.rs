//! A damaged index is the namespace's problem, not one order's, and is handled without writing
//! half of anything: index members that are not UTF-8, members whose order is gone or lives
//! elsewhere, index keys of another type — for the namespace's eleven indexes and for the
//! lookup indexes by client id and label. On the shared server (`REDIS_URL`), one namespace
//! per test. (Damaged *records* are `corrupt.rs`.)

mod common;

use chrono::Duration;
use common::raw::{
    claimed, connect, expire_at, filled, fixture_key, open_b, order_key, purge_cut, score,
    snapshot, sound,
};
use ordermeta_core::conformance::t0;
use ordermeta_core::{
    ClientIdKey, ErrorKind, ListQuery, MetadataStore, MetadataStoreExt, OrderStatus, UpdateRequest,
    to_micros,
};
use ordermeta_redis::redis::AsyncCommands as _;

/// A version at `i64::MAX` (the largest any store keeps) is a valid record: a transition and
/// `expire` keep it there instead of overflowing.
#[tokio::test]
async fn versions_saturate_at_i64_max() {
    let store = connect("corrupt_version").await;
    let mut conn = store.connection();
    let max = i64::MAX as u64;
    store
        .record_many(&[open_b("v-claim"), open_b("v-expire")])
        .await
        .expect("record");
    for id in ["v-claim", "v-expire"] {
        let _: () = conn
            .hset(store.keys().order(id), "version", max.to_string())
            .await
            .expect("hset");
        assert_eq!(store.get_required(id).await.expect("get").version, max);
    }
    let got = store.claim_for_cancel("v-claim").await.expect("claim");
    assert_eq!((got.status, got.version), (OrderStatus::Cancelling, max));
    assert_eq!(store.get_required("v-claim").await.expect("get"), got);
    assert_eq!(store.expire(&expire_at()).await.expect("expire"), 2);
    for id in ["v-claim", "v-expire"] {
        let m = store.get_required(id).await.expect("get");
        assert_eq!((m.status, m.version), (OrderStatus::Expired, max), "{id}");
    }
    store.delete_namespace().await.expect("cleanup");
}

/// Index members that are not UTF-8 are no order id: `list` reports each once (never as a
/// cursor, so paging still ends), `expire` and `purge` drop them from the index they read and
/// go on, and `delete_namespace` still works. With a HASH at such a key or without.
#[tokio::test]
async fn index_members_that_are_not_utf8_are_reported_and_dropped() {
    let store = connect("corrupt_member").await;
    let mut conn = store.connection();
    let s: &dyn MetadataStore = &store;
    s.record_many(&sound()).await.expect("record");
    let junk: [&[u8]; 2] = [b"ok-d\xff", b"ok-gtb\xfe"];
    let keys = store.keys();
    let active = keys.status(OrderStatus::Active);
    for member in junk {
        for (index, score) in [
            (keys.ids(), 0),
            (active.clone(), 0),
            (keys.open_by_block(), 5),
            (keys.terminal(), 0),
        ] {
            let _: () = conn.zadd(&index, member, score).await.expect("zadd");
        }
    }
    // A HASH behind the first one (a copy of a sound record), none behind the second.
    let copy: Vec<(String, Vec<u8>)> = conn.hgetall(keys.order("ok-gtb")).await.expect("hgetall");
    let _: () = conn
        .hset_multiple(order_key(&store, junk[0]), &copy)
        .await
        .expect("hset");

    for limit in [1, 2, 100] {
        for statuses in [vec![], vec![OrderStatus::Active]] {
            let q = ListQuery {
                limit,
                statuses: statuses.clone(),
                ..ListQuery::default()
            };
            let page = s.list_all(&q).await.expect("list");
            let items: Vec<&str> = page.items.iter().map(|m| m.order_id.as_str()).collect();
            let invalid: Vec<&str> = page.invalid.iter().map(|r| r.order_id.as_str()).collect();
            let want: &[&str] = if statuses.is_empty() {
                &["ok-claim", "ok-gtb", "ok-gtt", "ok-old"]
            } else {
                &["ok-claim", "ok-gtb", "ok-gtt"]
            };
            assert_eq!(items, want, "limit {limit}");
            assert_eq!(
                invalid,
                ["ok-d\u{FFFD}", "ok-gtb\u{FFFD}"],
                "limit {limit}, {statuses:?}: each reported once"
            );
            assert!(page.invalid[0].reason.contains("not UTF-8"), "{page:?}");
        }
    }
    assert_eq!(s.expire(&expire_at()).await.expect("expire"), 2);
    assert_eq!(s.purge(purge_cut()).await.expect("purge"), 3);
    for member in junk {
        for index in [keys.open_by_block(), keys.terminal()] {
            let score: Option<f64> = conn.zscore(&index, member).await.expect("zscore");
            assert_eq!(score, None, "dropped from {index}");
        }
    }
    s.claim_for_cancel("ok-claim").await.expect("claim");
    store.delete_namespace().await.expect("cleanup");
    let left: bool = conn
        .exists(order_key(&store, junk[0]))
        .await
        .expect("exists");
    assert!(!left, "delete_namespace removes what the index points to");
}

/// An index key of another type breaks the whole namespace, not one order: every operation
/// that would write to it fails with `InvalidMetadata` naming the key, and writes nothing
/// (no record half made, no order half moved); once the key is repaired, all works again.
#[tokio::test]
async fn an_index_key_of_the_wrong_type_fails_cleanly() {
    let store = connect("corrupt_index").await;
    let mut conn = store.connection();
    let s: &dyn MetadataStore = &store;
    s.record_many(&sound()).await.expect("record");
    let keys = store.keys();
    // Each broken key, with a record whose writing touches it.
    for (bad, new) in [
        (keys.status(OrderStatus::Active), open_b("new")),
        (keys.status(OrderStatus::Cancelling), claimed("new")),
        (keys.open_by_block(), open_b("new")),
        (keys.terminal(), filled("new")),
        (keys.ids(), filled("new")),
    ] {
        let saved: Vec<(String, f64)> = conn.zrange_withscores(&bad, 0, -1).await.expect("zrange");
        let _: () = conn.del(&bad).await.expect("del");
        let _: () = conn.set(&bad, "oops").await.expect("set");
        let before_claim = snapshot(&store, b"ok-claim").await;
        let before_gtb = snapshot(&store, b"ok-gtb").await;

        let err = s.record(&new).await.expect_err("record");
        assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{bad}: {err}");
        assert!(err.to_string().contains(&bad), "{err}");
        assert_eq!(
            snapshot(&store, b"new").await,
            snapshot(&store, b"none").await
        );
        // A claim (active -> cancelling) writes to both status sets and the open index.
        if bad != keys.ids() && bad != keys.terminal() {
            let err = s.claim_for_cancel("ok-claim").await.expect_err("claim");
            assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{bad}: {err}");
        }
        assert_eq!(snapshot(&store, b"ok-claim").await, before_claim, "{bad}");
        if bad != keys.ids() {
            let err = s.expire(&expire_at()).await.expect_err("expire");
            assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{bad}: {err}");
            assert_eq!(snapshot(&store, b"ok-gtb").await, before_gtb, "{bad}");
        }
        let err = s.purge(purge_cut()).await.expect_err("purge");
        assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{bad}: {err}");
        if bad == keys.ids() || bad == keys.status(OrderStatus::Active) {
            let q = ListQuery {
                statuses: if bad == keys.ids() {
                    vec![]
                } else {
                    vec![OrderStatus::Active]
                },
                ..ListQuery::default()
            };
            let err = s.list(&q).await.expect_err("list");
            assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{bad}: {err}");
        }
        // Repaired: all works again.
        let _: () = conn.del(&bad).await.expect("del");
        for (member, score) in saved {
            let _: () = conn.zadd(&bad, member, score).await.expect("zadd");
        }
        assert_eq!(s.get_required("ok-claim").await.expect("get").version, 1);
    }
    s.claim_for_cancel("ok-claim").await.expect("claim");
    assert_eq!(s.expire(&expire_at()).await.expect("expire"), 2);
    assert_eq!(s.purge(purge_cut()).await.expect("purge"), 3);
    store.delete_namespace().await.expect("cleanup");
}

/// A lookup index of another type fails what needs it, naming the key and writing nothing:
/// `record` of an order indexed there, the lookup itself; purge skips (keeps, reports) the
/// orders it would have to remove from it and goes on. Claims, updates and expiry never touch
/// it. Once the key is repaired, all works again.
#[tokio::test]
async fn a_lookup_index_of_the_wrong_type_fails_cleanly() {
    let store = connect("corrupt_lookup_type").await;
    let mut conn = store.connection();
    let s: &dyn MetadataStore = &store;
    let mut recs = sound();
    recs[3] = recs[3].clone().with_label("old-label");
    s.record_many(&recs).await.expect("record");
    let keys = store.keys();
    for bad in [keys.client_id(&fixture_key()), keys.label("old-label")] {
        let saved: Vec<(String, f64)> = conn.zrange_withscores(&bad, 0, -1).await.expect("zrange");
        let _: () = conn.del(&bad).await.expect("del");
        let _: () = conn.set(&bad, "oops").await.expect("set");
        let new = open_b("new").with_label("old-label");
        let err = s.record(&new).await.expect_err("record");
        assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{bad}: {err}");
        assert!(err.to_string().contains(&bad), "{err}");
        assert_eq!(
            snapshot(&store, b"new").await,
            snapshot(&store, b"none").await
        );
        let lookup = if bad.contains(":cid:") {
            s.find_by_client_id(&fixture_key()).await
        } else {
            s.find_by_label("old-label").await
        };
        let err = lookup.expect_err("lookup");
        assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{bad}: {err}");
        assert!(err.to_string().contains(&bad), "{err}");
        // Purge keeps the one order it would remove from the broken index.
        let old = snapshot(&store, b"ok-old").await;
        assert_eq!(s.purge(purge_cut()).await.expect("purge"), 0, "{bad}");
        assert_eq!(snapshot(&store, b"ok-old").await, old, "{bad}");
        // What never touches a lookup index goes on.
        s.update(&UpdateRequest::new("ok-gtb").indexer_id("ix-1"))
            .await
            .expect("update");
        // Repaired: all works again.
        let _: () = conn.del(&bad).await.expect("del");
        for (member, score) in saved {
            let _: () = conn.zadd(&bad, member, score).await.expect("zadd");
        }
        let by_label = s.find_by_label("old-label").await.expect("lookup");
        assert_eq!(by_label.map(|m| m.order_id).as_deref(), Some("ok-old"));
    }
    s.claim_for_cancel("ok-claim").await.expect("claim");
    assert_eq!(s.expire(&expire_at()).await.expect("expire"), 2);
    assert_eq!(s.purge(purge_cut()).await.expect("purge"), 3);
    assert_eq!(s.find_by_label("old-label").await.expect("lookup"), None);
    let newest = s.find_by_client_id(&fixture_key()).await.expect("lookup");
    assert_eq!(newest.map(|m| m.order_id).as_deref(), Some("ok-claim"));
    store.delete_namespace().await.expect("cleanup");
}

/// A lookup meets members above the real newest that name no sound order of its index: one
/// that is not UTF-8, one whose order is gone, one whose order is indexed under another client
/// id. It drops each (and only it) and answers the real newest. A corrupt newest order is
/// `InvalidMetadata` naming it, and stays indexed.
#[tokio::test]
async fn lookups_drop_stale_members_and_name_a_corrupt_newest() {
    let store = connect("corrupt_lookup_member").await;
    let mut conn = store.connection();
    let s: &dyn MetadataStore = &store;
    let mut elsewhere = open_b("other-client").with_label("lbl");
    elsewhere.dydx_order_id.client_id = 8;
    let other_key = ClientIdKey::of(&elsewhere);
    s.record_many(&[open_b("a"), open_b("b").with_label("lbl"), elsewhere])
        .await
        .expect("record");
    let cid = store.keys().client_id(&fixture_key());
    let label = store.keys().label("lbl");
    let later = to_micros(t0() + Duration::hours(1));
    let stale: [&[u8]; 3] = [b"zz-\xff", b"ghost", b"other-client"];
    for (i, member) in stale.into_iter().enumerate() {
        let _: () = conn
            .zadd(&cid, member, later + i as i64)
            .await
            .expect("zadd");
    }
    let _: () = conn.zadd(&label, b"ghost", later).await.expect("zadd");

    let newest = s.find_by_client_id(&fixture_key()).await.expect("lookup");
    assert_eq!(newest.map(|m| m.order_id).as_deref(), Some("b"));
    for member in stale {
        assert_eq!(
            score(&store, &cid, member).await,
            None,
            "{member:?} dropped"
        );
    }
    assert!(
        score(&store, &cid, b"a").await.is_some(),
        "sound members stay"
    );
    let other = s.find_by_client_id(&other_key).await.expect("lookup");
    assert_eq!(
        other.map(|m| m.order_id).as_deref(),
        Some("other-client"),
        "its own index keeps it"
    );
    // The label index: the dangling member goes, the newest of the two sound ones answers
    // (same placed_at: the greatest id).
    let by_label = s.find_by_label("lbl").await.expect("lookup");
    assert_eq!(
        by_label.map(|m| m.order_id).as_deref(),
        Some("other-client")
    );
    assert_eq!(score(&store, &label, b"ghost").await, None);

    // A corrupt newest record: named, nothing dropped; repaired, it answers again.
    let _: () = conn
        .hset(store.keys().order("b"), "symbol", b"BTC\xff".as_slice())
        .await
        .expect("hset");
    let err = s
        .find_by_client_id(&fixture_key())
        .await
        .expect_err("corrupt newest");
    assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{err}");
    assert!(err.to_string().contains("order b"), "{err}");
    // Not the newest of its label: that lookup does not read it.
    let by_label = s.find_by_label("lbl").await.expect("lookup");
    assert_eq!(
        by_label.map(|m| m.order_id).as_deref(),
        Some("other-client")
    );
    assert!(
        score(&store, &cid, b"b").await.is_some(),
        "a corrupt newest stays"
    );
    let _: () = conn
        .hset(store.keys().order("b"), "symbol", "BTC-USD")
        .await
        .expect("repair");
    let newest = s.find_by_client_id(&fixture_key()).await.expect("lookup");
    assert_eq!(newest.map(|m| m.order_id).as_deref(), Some("b"));

    // An index with nothing but dangling members answers nothing and is gone afterwards.
    let _: () = conn
        .zadd(store.keys().label("ghosts"), "g1", 1)
        .await
        .expect("zadd");
    let _: () = conn
        .zadd(store.keys().label("ghosts"), "g2", 2)
        .await
        .expect("zadd");
    assert_eq!(s.find_by_label("ghosts").await.expect("lookup"), None);
    let left: bool = conn
        .exists(store.keys().label("ghosts"))
        .await
        .expect("exists");
    assert!(!left);
    store.delete_namespace().await.expect("cleanup");
}
