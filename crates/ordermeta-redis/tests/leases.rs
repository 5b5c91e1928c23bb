//! What only Redis has about claim leases (the conformance suite covers their semantics): the
//! raw HASH fields, their strict reading, a transition that meets a malformed lease writing
//! nothing, and the exact comparison of `lease_until` past 2^53 µs, where a double (a Lua
//! number) cannot tell one microsecond from the next.

mod common;

use chrono::{Duration, TimeZone as _, Utc};
use ordermeta_core::conformance::{long_term, short_term, t0};
use ordermeta_core::{
    ErrorKind, ExpireRequest, Lease, ListQuery, MetadataStore, MetadataStoreExt, OrderStatus,
    StoreError, TransitionRequest, to_micros,
};
use ordermeta_redis::RedisStore;
use ordermeta_redis::redis::AsyncCommands as _;

/// A store on the shared server in a namespace of its own.
async fn connect(prefix: &str) -> RedisStore {
    common::connect_fresh(&ordermeta_testkit::redis_url(), prefix).await
}

/// A cancelling record holding `lease`.
fn claimed(id: &str, lease: Lease) -> ordermeta_core::OrderMetadata {
    let mut m = long_term(id, OrderStatus::Cancelling, 2_000_000_000);
    m.lease = Some(lease);
    m
}

fn invalid_for(r: Result<impl std::fmt::Debug, StoreError>, id: &str) {
    let err = r.expect_err("malformed lease");
    assert_eq!(err.kind(), ErrorKind::InvalidMetadata, "{err}");
    assert!(err.to_string().contains(id), "names the order: {err}");
}

/// `lease_token` / `lease_until` (µs) are written by a claim and deleted on leaving
/// `cancelling` and by `expire`.
#[tokio::test]
async fn lease_fields_are_written_and_deleted() {
    let store = connect("lease_fields").await;
    let raw = store.clone();
    common::test_store(store.clone())
        .run(|s| async move {
            let mut conn = raw.connection();
            let until = t0() + Duration::seconds(60);
            for id in ["lf-settle", "lf-expire"] {
                s.record(&short_term(id, OrderStatus::Active, 50))
                    .await
                    .expect("record");
                s.claim(id, &[OrderStatus::Active], Lease::new("tok-1", until), t0())
                    .await
                    .expect("claim");
                let (token, micros): (String, String) = conn
                    .hmget(raw.keys().order(id), &["lease_token", "lease_until"])
                    .await
                    .expect("hget");
                assert_eq!(
                    (token.as_str(), micros),
                    ("tok-1", to_micros(until).to_string())
                );
            }
            let got = s
                .transition(
                    &TransitionRequest::new(
                        "lf-settle",
                        &[OrderStatus::Cancelling],
                        OrderStatus::Cancelled,
                    )
                    .require_lease("tok-1"),
                )
                .await
                .expect("settle");
            assert_eq!(got.lease, None);
            assert_eq!(
                s.expire(&ExpireRequest::new(Some(60), None))
                    .await
                    .expect("expire"),
                1
            );
            for id in ["lf-settle", "lf-expire"] {
                for field in ["lease_token", "lease_until"] {
                    let there: bool = conn
                        .hexists(raw.keys().order(id), field)
                        .await
                        .expect("hexists");
                    assert!(!there, "{id} keeps no {field}");
                }
            }
        })
        .await;
}

/// A malformed lease written behind the store's back is `InvalidMetadata` for that order
/// only: `get` names it, `list` reports it beside the sound records, and a transition on it
/// writes nothing.
#[tokio::test]
async fn a_malformed_lease_is_invalid_metadata_for_that_order_only() {
    let store = connect("lease_bad").await;
    let raw = store.clone();
    common::test_store(store.clone())
        .run(|s| async move {
            let mut conn = raw.connection();
            let lease = Lease::new("tok", t0() + Duration::seconds(30));
            s.record_many(&[
                short_term("mb-ok", OrderStatus::Active, 9),
                claimed("mb-nan", lease.clone()),
                claimed("mb-half", lease.clone()),
                short_term("mb-active", OrderStatus::Active, 9),
            ])
            .await
            .expect("record");
            let _: () = conn
                .hset(raw.keys().order("mb-nan"), "lease_until", "soon")
                .await
                .expect("hset");
            let _: () = conn
                .hdel(raw.keys().order("mb-half"), "lease_until")
                .await
                .expect("hdel");
            // A lease on an order that is not cancelling.
            let _: () = conn
                .hset_multiple(
                    raw.keys().order("mb-active"),
                    &[("lease_token", "tok"), ("lease_until", "1")],
                )
                .await
                .expect("hset");

            for id in ["mb-nan", "mb-half", "mb-active"] {
                invalid_for(s.get(id).await, id);
            }
            assert_eq!(s.get_required("mb-ok").await.expect("sound").version, 1);
            let page = s.list(&ListQuery::default()).await.expect("list");
            let ok: Vec<_> = page.items.iter().map(|m| m.order_id.as_str()).collect();
            let bad: Vec<_> = page.invalid.iter().map(|r| r.order_id.as_str()).collect();
            assert_eq!(ok, ["mb-ok"]);
            assert_eq!(bad, ["mb-active", "mb-half", "mb-nan"]);

            // The transition script refuses before its first write, whatever the condition.
            let settle = |id: &str| {
                TransitionRequest::new(id, &[OrderStatus::Cancelling], OrderStatus::Cancelled)
            };
            invalid_for(s.transition(&settle("mb-nan")).await, "mb-nan");
            invalid_for(
                s.transition(&settle("mb-half").require_lease("tok")).await,
                "mb-half",
            );
            let reclaim = s
                .claim(
                    "mb-nan",
                    &[OrderStatus::Active, OrderStatus::Cancelling],
                    Lease::new("other", t0() + Duration::seconds(90)),
                    t0() + Duration::seconds(60),
                )
                .await;
            invalid_for(reclaim, "mb-nan");
            for id in ["mb-nan", "mb-half"] {
                let (status, version): (String, String) = conn
                    .hmget(raw.keys().order(id), &["status", "version"])
                    .await
                    .expect("hget");
                assert_eq!(
                    (status.as_str(), version.as_str()),
                    ("cancelling", "1"),
                    "{id}"
                );
            }
        })
        .await;
}

/// In the year 3000 a lease's end is some 3.2e16 µs, past 2^53: as Lua doubles `until - 1µs`
/// and `until` are the same number. The lease is compared exactly (decoded, before the
/// script writes), so the boundary holds to the microsecond there too, also with leading
/// zeros written by hand.
#[tokio::test]
async fn lease_ends_are_compared_exactly_past_2_pow_53() {
    let store = connect("lease_exact").await;
    let raw = store.clone();
    common::test_store(store.clone())
        .run(|s| async move {
            let until = Utc
                .with_ymd_and_hms(3000, 1, 1, 0, 0, 0)
                .single()
                .expect("a valid instant")
                + Duration::microseconds(1);
            assert!(to_micros(until) > 1 << 53);
            let reclaim = |id: &str, at| {
                TransitionRequest::new(id, &[OrderStatus::Cancelling], OrderStatus::Cancelling)
                    .at(at)
                    .lease(Lease::new("new", until + Duration::seconds(30)))
                    .require_expired_lease()
            };
            for (id, padded) in [("ex-plain", false), ("ex-padded", true)] {
                s.record(&claimed(id, Lease::new("old", until)))
                    .await
                    .expect("record");
                if padded {
                    let mut conn = raw.connection();
                    let _: () = conn
                        .hset(
                            raw.keys().order(id),
                            "lease_until",
                            format!("000{}", to_micros(until)),
                        )
                        .await
                        .expect("hset");
                    assert_eq!(
                        s.get_required(id).await.expect("get").lease,
                        Some(Lease::new("old", until))
                    );
                }
                let early = s
                    .transition(&reclaim(id, until - Duration::microseconds(1)))
                    .await;
                assert_eq!(
                    early.as_ref().err().and_then(StoreError::current_status),
                    Some(OrderStatus::Cancelling),
                    "{id}: live one microsecond before its end: {early:?}"
                );
                let got = s
                    .transition(&reclaim(id, until))
                    .await
                    .unwrap_or_else(|e| panic!("{id}: expired at its end: {e}"));
                assert_eq!(got.lease.map(|l| l.token).as_deref(), Some("new"));
            }
        })
        .await;
}
