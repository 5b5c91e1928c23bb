//! One bad record is that record's problem: data that ordermeta did not write (an operator's
//! command, a restore, another tool), written straight into the shared server (`REDIS_URL`)
//! with raw commands, one case per namespace. (Damaged *indexes* are `corrupt_index.rs`.)
//!
//! Each case asserts a typed error for the damaged order (`get`, `update`, the lookups by
//! client id and label — the victim is the newest of both indexes) (`InvalidMetadata` naming
//! it, or a skip of it that leaves it exactly as it was), that no failing call wrote anything,
//! and that every other order in the namespace is still readable, claimable, expirable,
//! purgeable and found by its client id.

mod common;

use chrono::Duration;
use common::raw::{
    LABEL, all_indexes, claimed, connect, expire_at, filled, fixture_key, open_b, order_key,
    purge_cut, score, snapshot, sound,
};
use ordermeta_core::conformance::{short_term, t0};
use ordermeta_core::{
    ErrorKind, Lease, ListQuery, MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus,
    StoreError, UpdateRequest,
};
use ordermeta_redis::redis::{self, AsyncCommands as _, Cmd};

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
        Case {
            name: "label with a control character",
            victim: open_b,
            damage: |k| hset(k, "label", b"a\nb"),
            claim: Refused,
            // Neither sweep relies on the label; purge's cleanup of the label index misses
            // (the damaged label names another key) and a lookup drops the dangling entry.
            expire: Done,
            purge: Done,
        },
        Case {
            name: "label not UTF-8",
            victim: open_b,
            damage: |k| hset(k, "label", b"bot-\xff"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "label empty",
            victim: filled,
            damage: |k| hset(k, "label", b""),
            claim: Skip,
            expire: Untouched,
            purge: Done,
        },
        Case {
            name: "indexer_id with a space",
            victim: open_b,
            damage: |k| hset(k, "indexer_id", b"not an id"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "filled_quantity negative",
            victim: open_b,
            damage: |k| hset(k, "filled_quantity", b"-0.5"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "filled_quantity with an exponent",
            victim: filled,
            damage: |k| hset(k, "filled_quantity", b"1e3"),
            claim: Skip,
            expire: Untouched,
            purge: Done,
        },
        Case {
            name: "cancel_confirmed_at not an integer",
            victim: open_b,
            damage: |k| hset(k, "cancel_confirmed_at", b"later"),
            claim: Refused,
            expire: Done,
            purge: Done,
        },
        Case {
            name: "owner disagrees with dydx_order_id",
            victim: open_b,
            damage: |k| hset(k, "owner", b"dydx1someoneelse"),
            claim: Refused,
            // Purge derives the client-id index from the damaged owner: the real entry is
            // left behind, and the lookup at the end of the case drops it.
            expire: Done,
            purge: Done,
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

async fn run_case(c: &Case) {
    let store = connect("corrupt").await;
    let victim = (c.victim)(V).with_label(LABEL);
    let s: &dyn MetadataStore = &store;
    let mut conn = store.connection();
    let name = c.name;
    s.record_many(&sound())
        .await
        .expect("record the sound orders");
    s.record(&victim).await.expect("record the victim");
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

    // Lookups: it is the newest of its client id (greatest id at the same placed_at) and the
    // only one with its label, so both answer the damage; neither writes.
    refused(
        s.find_by_client_id(&fixture_key()).await,
        &format!("{name}: find_by_client_id"),
    );
    refused(
        s.find_by_label(LABEL).await,
        &format!("{name}: find_by_label"),
    );
    // An update decodes the whole record first.
    refused(
        s.update(&UpdateRequest::new(V).filled_quantity("0.5"))
            .await,
        &format!("{name}: update"),
    );
    assert_eq!(
        snapshot(&store, V.as_bytes()).await,
        damaged,
        "{name}: lookups and update"
    );

    // Write: a record over it, alone or in a batch, writes nothing.
    let r = s.record(&victim).await;
    let kind = r.expect_err("record over it").kind();
    assert!(
        matches!(kind, ErrorKind::AlreadyExists | ErrorKind::InvalidMetadata),
        "{name}: {kind:?}"
    );
    let batch = [
        short_term("ok-batch", OrderStatus::Pending, 10),
        victim.clone(),
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

    // Lookups: once the victim is purged, its client id answers the next newest and its
    // label nothing; entries a damaged field hid from purge are dropped on the way.
    let by_cid = s.find_by_client_id(&fixture_key()).await;
    let by_label = s.find_by_label(LABEL).await;
    if c.purge == Done {
        let got = by_cid.unwrap_or_else(|e| panic!("{name}: find_by_client_id: {e}"));
        assert_eq!(got.map(|m| m.order_id).as_deref(), Some("ok-new"), "{name}");
        let got = by_label.unwrap_or_else(|e| panic!("{name}: find_by_label: {e}"));
        assert_eq!(got, None, "{name}");
        for index in &all_indexes(&store)[11..] {
            assert_eq!(
                score(&store, index, V.as_bytes()).await,
                None,
                "{name}: {index}"
            );
        }
    } else {
        refused(by_cid, &format!("{name}: find_by_client_id after purge"));
        refused(by_label, &format!("{name}: find_by_label after purge"));
    }
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
