//! The corrupt-data table of `corrupt.rs`, generalised: a record damaged at random (any fields
//! deleted or overwritten with any bytes, or its key replaced by another type) on the shared
//! server (`REDIS_URL`). Whatever the damage:
//!
//! - `get` answers the record or `InvalidMetadata` naming it, never another error; `list`
//!   shows it once, as an item exactly when `get` decodes it;
//! - every call that fails on it wrote nothing (`record` over it, an update, a claim, a
//!   cancel);
//! - a claim or an update that succeeds stored exactly what it answered;
//! - the lookups by client id and label answer it as `get` does, or `InvalidMetadata` naming
//!   it, and never change it;
//! - `expire` and `purge` succeed, and either leave it exactly as it was or do their job on it;
//! - the sound orders beside it are claimed, expired and purged as usual.
//!
//! Cases: 48, or `ORDERMETA_FUZZ_CASES`.

use chrono::Duration;
use ordermeta_core::backend::STORED_FIELDS;
use ordermeta_core::conformance::{long_term, short_term, t0};
use ordermeta_core::{
    ClientIdKey, ErrorKind, ExpireRequest, Lease, ListQuery, MetadataStore, MetadataStoreExt,
    OrderMetadata, OrderStatus, TransitionRequest, UpdateRequest,
};
use ordermeta_redis::RedisStore;
use ordermeta_redis::redis::{self, AsyncCommands as _};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const V: &str = "victim";

/// Every field a record hash may hold: the stored fields and the write token.
fn fields() -> Vec<&'static str> {
    STORED_FIELDS.iter().copied().chain(["op"]).collect()
}

const EDGES: &[&[u8]] = &[
    b"",
    b"0",
    b"-0",
    b"+1",
    b"1",
    b"01",
    b"nan",
    b"inf",
    b"-inf",
    b"1e3",
    b"0x10",
    b"1.5",
    b"-5",
    b"4294967295",
    b"4294967296",
    b"9007199254740993",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"99999999999999999999",
    b"8210298412799999999",
    b"-8334632851200000001",
    b"\xff",
    b"[]",
    b"[",
    b"{}",
    b"[1]",
    b"active",
    b"cancelling",
    b"expired",
    b"filled",
    b"EXPLODED",
    b"!!!",
    b"0.0",
    b"-0.1",
    b"a\nb",
    b"fuzz-label",
    b"other label",
    b"5f2ba7a4-7dc6-5f6e-8d8a-2a5e3f5d1c42",
];

#[derive(Clone, Debug)]
enum Damage {
    /// HDEL the field.
    Delete(&'static str),
    /// HSET the field to these bytes.
    Set(&'static str, Vec<u8>),
    /// Replace the whole key by a value of another type.
    Retype(&'static str),
}

fn arb_damage() -> impl Strategy<Value = Damage> {
    let field = proptest::sample::select(fields());
    let value = prop_oneof![
        proptest::sample::select(EDGES).prop_map(<[u8]>::to_vec),
        proptest::collection::vec(any::<u8>(), 0..24),
        "-?[0-9]{1,22}".prop_map(String::into_bytes),
    ];
    prop_oneof![
        3 => field.clone().prop_map(Damage::Delete),
        12 => (field, value).prop_map(|(f, v)| Damage::Set(f, v)),
        1 => proptest::sample::select(&["string", "list", "set", "zset"][..]).prop_map(Damage::Retype),
    ]
}

/// The victim's label: it is the newest (greatest id at the same `placed_at`) of the
/// fixtures' client-id index and the only one of this label's.
const LABEL: &str = "fuzz-label";

fn victim(kind: u8) -> OrderMetadata {
    let m = match kind % 4 {
        0 => short_term(V, OrderStatus::Active, 10),
        1 => {
            let mut m = short_term(V, OrderStatus::Cancelling, 10);
            m.lease = Some(Lease::new("holder", t0() + Duration::seconds(30)));
            m
        }
        2 => short_term(V, OrderStatus::Filled, 10),
        _ => long_term(V, OrderStatus::Pending, 1_000),
    };
    m.with_label(LABEL)
}

fn cases() -> u32 {
    std::env::var("ORDERMETA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

async fn snapshot(store: &RedisStore) -> String {
    let mut conn = store.connection();
    let key = store.keys().order(V);
    let t: String = redis::cmd("TYPE")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("type");
    let value = match t.as_str() {
        "hash" => {
            let mut h: Vec<(Vec<u8>, Vec<u8>)> = conn.hgetall(&key).await.expect("hgetall");
            h.sort();
            format!("{h:?}")
        }
        "none" => String::new(),
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
        let s: Option<String> = conn.zscore(&index, V).await.expect("zscore");
        scores.push(s);
    }
    format!("{t} {value} {scores:?}")
}

/// A snapshot without its index scores: the key's type and value.
fn record_part(snapshot: &str) -> &str {
    snapshot.rsplit_once(" [").map_or(snapshot, |(r, _)| r)
}

async fn damage(store: &RedisStore, d: &[Damage]) {
    let mut conn = store.connection();
    let key = store.keys().order(V);
    for d in d {
        let cmds = match d {
            Damage::Delete(f) => vec![redis::cmd("HDEL").arg(&key).arg(*f).to_owned()],
            Damage::Set(f, v) => vec![redis::cmd("HSET").arg(&key).arg(*f).arg(v).to_owned()],
            Damage::Retype(t) => {
                let put = match *t {
                    "string" => redis::cmd("SET").arg(&key).arg("x").to_owned(),
                    "list" => redis::cmd("RPUSH").arg(&key).arg("x").to_owned(),
                    "set" => redis::cmd("SADD").arg(&key).arg("x").to_owned(),
                    _ => redis::cmd("ZADD").arg(&key).arg(1).arg("x").to_owned(),
                };
                vec![redis::cmd("DEL").arg(&key).to_owned(), put]
            }
        };
        for c in cmds {
            // A field set on a retyped key fails: that damage simply does not apply.
            let _: redis::RedisResult<()> = c.query_async(&mut conn).await;
        }
    }
}

async fn one_case(store: &RedisStore, kind: u8, d: &[Damage]) -> Result<(), TestCaseError> {
    let s: &dyn MetadataStore = store;
    let sound = [
        short_term("ok-claim", OrderStatus::Active, 1_000),
        short_term("ok-gtb", OrderStatus::Active, 10),
        short_term("ok-old", OrderStatus::Filled, 10),
    ];
    s.record_many(&sound).await.expect("record");
    s.record(&victim(kind)).await.expect("record the victim");
    damage(store, d).await;
    let damaged = snapshot(store).await;

    let got = s.get(V).await;
    let decodes = match &got {
        Ok(Some(_)) => true,
        Ok(None) => false,
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidMetadata, "get: {}", e);
            prop_assert!(e.to_string().contains(V), "get names it: {}", e);
            false
        }
    };
    let page = s
        .list_all(&ListQuery {
            limit: 2,
            ..ListQuery::default()
        })
        .await;
    let page = page.map_err(|e| TestCaseError::fail(format!("list: {e}")))?;
    let as_item = page.items.iter().filter(|m| m.order_id == V).count();
    let as_invalid = page.invalid.iter().filter(|r| r.order_id == V).count();
    prop_assert_eq!(
        (as_item, as_invalid),
        (usize::from(decodes), usize::from(!decodes))
    );

    // Lookups answer the victim exactly as `get` does, another order, or `InvalidMetadata`
    // naming it (a damaged label or identity may move it out of an index: then it is dropped
    // from there, which is no damage to the record).
    let key = ClientIdKey::of(&victim(kind));
    for found in [
        s.find_by_client_id(&key).await,
        s.find_by_label(LABEL).await,
    ] {
        match found {
            Ok(Some(m)) if m.order_id == V => {
                prop_assert_eq!(Some(m), got.as_ref().ok().cloned().flatten())
            }
            Ok(_) => {}
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidMetadata, "lookup: {}", e);
                prop_assert!(e.to_string().contains(V), "lookup names it: {}", e);
                prop_assert!(!decodes, "a lookup refused what get decodes: {}", e);
            }
        }
    }
    let looked_up = snapshot(store).await;
    prop_assert_eq!(
        record_part(&looked_up),
        record_part(&damaged),
        "a lookup changed the record"
    );
    // An update applies to what decodes, and stores what it answers; otherwise it writes
    // nothing.
    let before = snapshot(store).await;
    match s
        .update(&UpdateRequest::new(V).filled_quantity("0.25"))
        .await
    {
        Ok(m) => {
            prop_assert!(decodes, "updated a record get refused");
            prop_assert_eq!(
                s.get(V).await.ok().flatten(),
                Some(m),
                "stored what it answered"
            );
        }
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidMetadata, "update: {}", e);
            prop_assert!(!decodes, "update refused what get decodes: {}", e);
            prop_assert_eq!(&snapshot(store).await, &before, "a failed update wrote");
        }
    }
    let damaged = snapshot(store).await;

    // Failing writes write nothing.
    let r = s.record(&victim(kind)).await;
    prop_assert!(
        matches!(
            r.as_ref().map_err(|e| e.kind()),
            Err(ErrorKind::AlreadyExists | ErrorKind::InvalidMetadata)
        ),
        "record over it: {:?}",
        r
    );
    prop_assert_eq!(&snapshot(store).await, &damaged, "record over it wrote");
    let claim = s
        .claim(
            V,
            &[
                OrderStatus::Pending,
                OrderStatus::Active,
                OrderStatus::Cancelling,
            ],
            Lease::new("me", t0() + Duration::days(400)),
            t0() + Duration::days(365),
        )
        .await;
    match claim {
        Ok(m) => {
            prop_assert!(decodes, "claimed a record get refused");
            prop_assert_eq!(
                s.get(V).await.ok().flatten(),
                Some(m),
                "stored what it answered"
            );
        }
        Err(e) => {
            prop_assert!(
                matches!(
                    e.kind(),
                    ErrorKind::InvalidMetadata | ErrorKind::StatusConflict
                ),
                "claim: {}",
                e
            );
            prop_assert_eq!(
                &snapshot(store).await,
                &damaged,
                "a failed claim wrote: {}",
                e
            );
            if !decodes {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidMetadata);
            }
        }
    }
    let cancel = s
        .transition(&TransitionRequest::new(
            V,
            &[OrderStatus::Active, OrderStatus::Cancelling],
            OrderStatus::Cancelled,
        ))
        .await;
    if let Err(e) = &cancel {
        prop_assert!(
            matches!(
                e.kind(),
                ErrorKind::InvalidMetadata | ErrorKind::StatusConflict
            ),
            "cancel: {}",
            e
        );
    }

    // Bulk work succeeds, and on the victim either does its job or nothing.
    let before = snapshot(store).await;
    let req = ExpireRequest::new(Some(20), Some(2_000)).at(t0() + Duration::hours(1));
    let n = s.expire(&req).await;
    let n = n.map_err(|e| TestCaseError::fail(format!("expire: {e}")))?;
    prop_assert!(n >= 1);
    prop_assert_eq!(
        s.get_required("ok-gtb").await.expect("get").status,
        OrderStatus::Expired
    );
    let after = snapshot(store).await;
    // Index entries may be put back in line with the record (a good-til changed by hand);
    // the record itself only by expiring it.
    if record_part(&after) != record_part(&before) {
        let mut conn = store.connection();
        let status: Option<Vec<u8>> = conn
            .hget(store.keys().order(V), "status")
            .await
            .expect("hget");
        prop_assert_eq!(
            status.as_deref(),
            Some(&b"expired"[..]),
            "expire changed it: {}",
            after
        );
    }
    prop_assert_eq!(s.expire(&req).await.ok(), Some(0));
    let n = s.purge(t0() + Duration::days(1)).await;
    let n = n.map_err(|e| TestCaseError::fail(format!("purge: {e}")))?;
    prop_assert!(n >= 2);
    prop_assert_eq!(s.get("ok-old").await.ok(), Some(None));
    prop_assert_eq!(s.get("ok-gtb").await.ok(), Some(None));
    let gone = snapshot(store).await;
    prop_assert!(
        record_part(&gone) == record_part(&after) || gone.starts_with("none "),
        "purge changed it without deleting it: {}",
        gone
    );
    prop_assert_eq!(s.purge(t0() + Duration::days(1)).await.ok(), Some(0));
    let m = s.claim_for_cancel("ok-claim").await;
    prop_assert_eq!(m.map(|m| m.status).ok(), Some(OrderStatus::Cancelling));
    Ok(())
}

#[test]
fn any_damage_to_one_record_stays_that_records_problem() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = ordermeta_testkit::redis_url();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (any::<u8>(), proptest::collection::vec(arb_damage(), 1..4));
    let result = runner.run(&strategy, |(kind, d)| {
        rt.block_on(async {
            let store = RedisStore::options()
                .namespace(ordermeta_testkit::unique_name("fuzz"))
                .connect(&url)
                .await
                .unwrap_or_else(|e| ordermeta_testkit::env::redis_missing(&url, e));
            let r = one_case(&store, kind, &d).await;
            store.delete_namespace().await.expect("cleanup");
            r
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
