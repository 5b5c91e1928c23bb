//! One bad record is that record's problem: data that ordermeta did not write (an operator's
//! command, a restore, another tool), written straight into the shared server (`REDIS_URL`)
//! with raw commands, one case per namespace.
//!
//! Each case asserts a typed error for the damaged order (`get`) (`InvalidMetadata` naming it, or a
//! skip of it that leaves it exactly as it was), that no failing call wrote anything, and that
//! every other order in the namespace is still readable, claimable, expirable and purgeable.

use chrono::{DateTime, Duration, Utc};
use ordermeta_core::conformance::{long_term, short_term, t0};
use ordermeta_core::{
    ErrorKind, ExpireRequest, Lease, ListQuery, MetadataStore, MetadataStoreExt, OrderMetadata,
    OrderStatus, StoreError,
};
use ordermeta_redis::RedisStore;
use ordermeta_redis::redis::{self, AsyncCommands as _, Cmd};

/// A store on the shared server in a namespace of its own; a missing server fails the test.
async fn connect(prefix: &str) -> RedisStore {
    let url = ordermeta_testkit::redis_url();
    RedisStore::options()
        .namespace(ordermeta_testkit::unique_name(prefix))
        .connect(&url)
        .await
        .unwrap_or_else(|e| ordermeta_testkit::env::redis_missing(&url, e))
}

/// The key of the order (or index member) `member`, as bytes.
fn order_key(store: &RedisStore, member: &[u8]) -> Vec<u8> {
    let mut k = store.keys().order("").into_bytes();
    k.extend_from_slice(member);
    k
}

/// Everything the store keeps about `member`: its key's type and value, and its score in every
/// index. Equal snapshots before and after a call mean the call wrote nothing about it.
async fn snapshot(store: &RedisStore, member: &[u8]) -> String {
    let mut conn = store.connection();
    let key = order_key(store, member);
    let t: String = redis::cmd("TYPE")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("type");
    let value = match t.as_str() {
        "none" => String::new(),
        "hash" => {
            let mut h: Vec<(Vec<u8>, Vec<u8>)> = conn.hgetall(&key).await.expect("hgetall");
            h.sort();
            format!("{h:?}")
        }
        _ => {
            let d: Vec<u8> = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("dump");
            format!("{d:?}")
        }
    };
    let mut scores = Vec::new();
    for index in store.keys().index_keys() {
        // An index of the wrong type (a test below makes one) has no score to show.
        let s: redis::RedisResult<Option<String>> = conn.zscore(&index, member).await;
        scores.push(s.unwrap_or_else(|e| Some(format!("{:?}", e.code()))));
    }
    format!("{t} {value} {scores:?}")
}

/// What a call on the damaged order must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// `InvalidMetadata` naming the order, and nothing written.
    Refused,
    /// A bulk call leaves the order exactly as it was (skipped and reported, or not its
    /// business).
    Untouched,
    /// A bulk call does its job on it (expires it; deletes it): the fields it relies on are
    /// sound, so the damage elsewhere does not stop it.
    Done,
    /// Not tried (no claim of a terminal order).
    Skip,
}
use Then::*;

struct Case {
    name: &'static str,
    victim: fn(&str) -> OrderMetadata,
    /// Raw commands on the victim's key.
    damage: fn(&[u8]) -> Vec<Cmd>,
    claim: Then,
    expire: Then,
    purge: Then,
}

const V: &str = "victim";

fn open_b(id: &str) -> OrderMetadata {
    short_term(id, OrderStatus::Active, 10)
}

fn claimed(id: &str) -> OrderMetadata {
    let mut m = short_term(id, OrderStatus::Cancelling, 10);
    m.lease = Some(Lease::new("holder", t0() + Duration::seconds(30)));
    m
}

fn filled(id: &str) -> OrderMetadata {
    short_term(id, OrderStatus::Filled, 10)
}

fn hset(k: &[u8], field: &str, value: &[u8]) -> Vec<Cmd> {
    vec![redis::cmd("HSET").arg(k).arg(field).arg(value).to_owned()]
}

fn hdel(k: &[u8], field: &str) -> Vec<Cmd> {
    vec![redis::cmd("HDEL").arg(k).arg(field).to_owned()]
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "order key holds a string",
            victim: open_b,
            damage: |k| {
                vec![
                    redis::cmd("DEL").arg(k).to_owned(),
                    redis::cmd("SET").arg(k).arg("not a hash").to_owned(),
                ]
            },
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "terminal order key holds a list",
            victim: filled,
            damage: |k| {
                vec![
                    redis::cmd("DEL").arg(k).to_owned(),
                    redis::cmd("RPUSH").arg(k).arg("x").to_owned(),
                ]
            },
            claim: Skip,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "good_until_block = nan",
            victim: open_b,
            damage: |k| hset(k, "good_until_block", b"nan"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "good_until_block beyond u32",
            victim: open_b,
            damage: |k| hset(k, "good_until_block", b"4294967296"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "good_until_block negative",
            victim: open_b,
            damage: |k| hset(k, "good_until_block", b"-5"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "both good-tils",
            victim: open_b,
            damage: |k| hset(k, "good_til_block_time", b"5"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "no good-til",
            victim: open_b,
            damage: |k| hdel(k, "good_until_block"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "lease_until not an integer",
            victim: claimed,
            damage: |k| hset(k, "lease_until", b"soon"),
            claim: Refused,
            // Expiring drops the lease whatever it holds.
            expire: Done,
            purge: Done,
        },
        Case {
            name: "lease_token without lease_until",
            victim: claimed,
            damage: |k| hdel(k, "lease_until"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "lease on an active order",
            victim: open_b,
            damage: |k| {
                vec![
                    redis::cmd("HSET")
                        .arg(k)
                        .arg("lease_token")
                        .arg("t")
                        .arg("lease_until")
                        .arg("1")
                        .to_owned(),
                ]
            },
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "version beyond i64",
            victim: open_b,
            damage: |k| hset(k, "version", b"9223372036854775808"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "version 1.5",
            victim: open_b,
            damage: |k| hset(k, "version", b"1.5"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "version 0",
            victim: open_b,
            damage: |k| hset(k, "version", b"0"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "status missing",
            victim: open_b,
            damage: |k| hdel(k, "status"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "status garbage",
            victim: open_b,
            damage: |k| hset(k, "status", b"exploded"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "status garbage on a terminal order",
            victim: filled,
            damage: |k| hset(k, "status", b"FILLED"),
            claim: Skip,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "symbol missing",
            victim: open_b,
            damage: |k| hdel(k, "symbol"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "symbol not UTF-8",
            victim: open_b,
            damage: |k| hset(k, "symbol", b"BTC\xff"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "dydx_order_id not base64",
            victim: open_b,
            damage: |k| hset(k, "dydx_order_id", b"!!!"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "client_id disagrees with dydx_order_id",
            victim: open_b,
            damage: |k| hset(k, "client_id", b"8"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "order_id field disagrees with its key",
            victim: open_b,
            damage: |k| hset(k, "order_id", b"someone-else"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "history not a JSON array",
            victim: open_b,
            damage: |k| hset(k, "history", b"{}"),
            claim: Refused,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "history entries garbage",
            victim: open_b,
            damage: |k| hset(k, "history", b"[1]"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "placed_at not an integer",
            victim: open_b,
            damage: |k| hset(k, "placed_at", b"yesterday"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "updated_at garbage on a terminal order",
            victim: filled,
            damage: |k| hset(k, "updated_at", b"soon"),
            claim: Skip,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "updated_at before chrono's range",
            victim: filled,
            damage: |k| hset(k, "updated_at", b"-9000000000000000000"),
            claim: Skip,
            expire: Untouched,
            purge: Untouched,
        },
        Case {
            name: "updated_at beyond i64",
            victim: filled,
            damage: |k| hset(k, "updated_at", b"99999999999999999999"),
            claim: Skip,
            expire: Untouched,
            purge: Untouched,
        },
    ]
}

fn refused<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    let err = r.expect_err(what);
    assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{what}: {err}");
    assert!(
        err.to_string().contains(V),
        "{what}: names the order: {err}"
    );
}

/// The sound orders of every case: one to claim, one short-term and one stateful to expire,
/// one old terminal one to purge.
fn sound() -> Vec<OrderMetadata> {
    vec![
        short_term("ok-claim", OrderStatus::Active, 1_000),
        short_term("ok-gtb", OrderStatus::Active, 10),
        long_term("ok-gtt", OrderStatus::Active, 1_000),
        short_term("ok-old", OrderStatus::Filled, 10),
    ]
}

fn expire_at() -> ExpireRequest {
    ExpireRequest::new(Some(20), Some(2_000)).at(t0() + Duration::hours(1))
}

fn purge_cut() -> DateTime<Utc> {
    t0() + Duration::days(1)
}

async fn run_case(c: &Case) {
    let store = connect("corrupt").await;
    let s: &dyn MetadataStore = &store;
    let mut conn = store.connection();
    let name = c.name;
    s.record_many(&sound())
        .await
        .expect("record the sound orders");
    s.record(&(c.victim)(V)).await.expect("record the victim");
    let key = order_key(&store, V.as_bytes());
    for cmd in (c.damage)(&key) {
        let _: () = cmd.query_async(&mut conn).await.expect("damage");
    }
    let damaged = snapshot(&store, V.as_bytes()).await;

    // Read.
    refused(s.get(V).await, &format!("{name}: get"));
    let page = s
        .list_all(&ListQuery {
            limit: 2,
            ..ListQuery::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: list: {e}"));
    let items: Vec<&str> = page.items.iter().map(|m| m.order_id.as_str()).collect();
    let invalid: Vec<&str> = page.invalid.iter().map(|r| r.order_id.as_str()).collect();
    assert_eq!(items, ["ok-claim", "ok-gtb", "ok-gtt", "ok-old"], "{name}");
    assert_eq!(invalid, [V], "{name}: list reports it once");

    // Write: a record over it, alone or in a batch, writes nothing.
    let r = s.record(&(c.victim)(V)).await;
    let kind = r.expect_err("record over it").kind();
    assert!(
        matches!(kind, ErrorKind::AlreadyExists | ErrorKind::InvalidMetadata),
        "{name}: {kind:?}"
    );
    let batch = [
        short_term("ok-batch", OrderStatus::Pending, 10),
        (c.victim)(V),
    ];
    s.record_many(&batch).await.expect_err("a batch over it");
    assert_eq!(
        s.get("ok-batch").await.expect("get"),
        None,
        "{name}: all or nothing"
    );
    assert_eq!(
        snapshot(&store, V.as_bytes()).await,
        damaged,
        "{name}: record"
    );

    // Claim.
    if c.claim == Refused {
        let reclaim = s
            .claim(
                V,
                &[OrderStatus::Active, OrderStatus::Cancelling],
                Lease::new("me", t0() + Duration::days(400)),
                t0() + Duration::days(365),
            )
            .await;
        refused(reclaim, &format!("{name}: claim"));
        refused(
            s.transition(&ordermeta_core::TransitionRequest::new(
                V,
                &[OrderStatus::Active, OrderStatus::Cancelling],
                OrderStatus::Cancelled,
            ))
            .await,
            &format!("{name}: cancel"),
        );
        assert_eq!(
            snapshot(&store, V.as_bytes()).await,
            damaged,
            "{name}: claim"
        );
    }
    let got = s
        .claim_for_cancel("ok-claim")
        .await
        .expect("claim a sound order");
    assert_eq!((got.status, got.version), (OrderStatus::Cancelling, 2));

    // Expire: the sound ones expire, every sweep succeeds.
    let before = snapshot(&store, V.as_bytes()).await;
    let n = s
        .expire(&expire_at())
        .await
        .unwrap_or_else(|e| panic!("{name}: expire: {e}"));
    for id in ["ok-gtb", "ok-gtt"] {
        let m = s.get_required(id).await.expect("get");
        assert_eq!(m.status, OrderStatus::Expired, "{name}: {id}");
    }
    match c.expire {
        Done => {
            assert_eq!(n, 3, "{name}");
            let status: String = conn.hget(&key, "status").await.expect("hget");
            assert_eq!(status, "expired", "{name}");
        }
        _ => {
            assert_eq!(n, 2, "{name}");
            assert_eq!(
                snapshot(&store, V.as_bytes()).await,
                before,
                "{name}: expire"
            );
        }
    }
    assert_eq!(s.expire(&expire_at()).await.expect("again"), 0, "{name}");

    // Purge: the sound terminal ones go, every sweep succeeds.
    let before = snapshot(&store, V.as_bytes()).await;
    let n = s
        .purge(purge_cut())
        .await
        .unwrap_or_else(|e| panic!("{name}: purge: {e}"));
    for id in ["ok-gtb", "ok-gtt", "ok-old"] {
        assert_eq!(s.get(id).await.expect("get"), None, "{name}: {id} purged");
    }
    match c.purge {
        Done => {
            assert_eq!(n, 4, "{name}");
            let exists: bool = conn.exists(&key).await.expect("exists");
            assert!(!exists, "{name}: purged");
        }
        _ => {
            assert_eq!(n, 3, "{name}");
            assert_eq!(
                snapshot(&store, V.as_bytes()).await,
                before,
                "{name}: purge"
            );
        }
    }
    assert_eq!(s.purge(purge_cut()).await.expect("again"), 0, "{name}");

    // The rest of the namespace goes on.
    let m = s.get_required("ok-claim").await.expect("get");
    assert_eq!(m.status, OrderStatus::Cancelling);
    s.record(&short_term("ok-new", OrderStatus::Active, 10))
        .await
        .expect("record after it");
    s.transition(&ordermeta_core::TransitionRequest::new(
        "ok-claim",
        &[OrderStatus::Cancelling],
        OrderStatus::Cancelled,
    ))
    .await
    .expect("settle a sound order");
    store.delete_namespace().await.expect("cleanup");
}

/// Every case of the table, each in a namespace of its own.
#[tokio::test]
async fn one_corrupt_record_is_that_records_problem() {
    for c in cases() {
        run_case(&c).await;
        eprintln!("ok: {}", c.name);
    }
}

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
