//! Raw access for the damaged-data tests (`corrupt.rs`, `corrupt_index.rs`, `lookup.rs`):
//! stores on the shared server, key names as bytes, snapshots of everything the store keeps
//! about one order, and the records every case starts from.

use chrono::{DateTime, Duration, Utc};
use ordermeta_core::conformance::{long_term, short_term, t0};
use ordermeta_core::{ClientIdKey, ExpireRequest, Lease, OrderMetadata, OrderStatus};
use ordermeta_redis::RedisStore;
use ordermeta_redis::redis::{self, AsyncCommands as _};

/// The label every victim carries (unicode, so that its key's length prefix counts bytes).
pub const LABEL: &str = "victim label Ü";

/// A store on the shared server (`REDIS_URL`) in a namespace of its own; a missing server
/// fails the test.
pub async fn connect(prefix: &str) -> RedisStore {
    super::connect_fresh(&ordermeta_testkit::redis_url(), prefix).await
}

/// The chain identity of every fixture record (`short_term`, `long_term`): they all share
/// one client-id lookup index.
pub fn fixture_key() -> ClientIdKey {
    ClientIdKey::of(&short_term("x", OrderStatus::Active, 1))
}

/// The key of the order (or index member) `member`, as bytes.
pub fn order_key(store: &RedisStore, member: &[u8]) -> Vec<u8> {
    let mut k = store.keys().order("").into_bytes();
    k.extend_from_slice(member);
    k
}

/// Every index key a fixture order can be in: the namespace's eleven, the fixtures'
/// client-id index and the victims' label index.
pub fn all_indexes(store: &RedisStore) -> Vec<String> {
    let mut keys = store.keys().index_keys();
    keys.push(store.keys().client_id(&fixture_key()));
    keys.push(store.keys().label(LABEL));
    keys
}

/// Everything the store keeps about `member`: its key's type and value, and its score in every
/// index ([`all_indexes`]). Equal snapshots before and after a call mean the call wrote
/// nothing about it.
pub async fn snapshot(store: &RedisStore, member: &[u8]) -> String {
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
    for index in all_indexes(store) {
        // An index of the wrong type (a test makes one) has no score to show.
        let s: redis::RedisResult<Option<String>> = conn.zscore(&index, member).await;
        scores.push(s.unwrap_or_else(|e| Some(format!("{:?}", e.code()))));
    }
    format!("{t} {value} {scores:?}")
}

/// The score of `member` in `index`, `None` when it is not there.
pub async fn score(store: &RedisStore, index: &str, member: &[u8]) -> Option<f64> {
    store
        .connection()
        .zscore(index, member)
        .await
        .expect("zscore")
}

/// An active short-term order.
pub fn open_b(id: &str) -> OrderMetadata {
    short_term(id, OrderStatus::Active, 10)
}

/// A cancelling order holding a live lease.
pub fn claimed(id: &str) -> OrderMetadata {
    let mut m = short_term(id, OrderStatus::Cancelling, 10);
    m.lease = Some(Lease::new("holder", t0() + Duration::seconds(30)));
    m
}

/// A filled (terminal) order.
pub fn filled(id: &str) -> OrderMetadata {
    short_term(id, OrderStatus::Filled, 10)
}

/// The sound orders of every case: one to claim, one short-term and one stateful to expire,
/// one old terminal one to purge.
pub fn sound() -> Vec<OrderMetadata> {
    vec![
        short_term("ok-claim", OrderStatus::Active, 1_000),
        short_term("ok-gtb", OrderStatus::Active, 10),
        long_term("ok-gtt", OrderStatus::Active, 1_000),
        short_term("ok-old", OrderStatus::Filled, 10),
    ]
}

/// An expiry that expires `ok-gtb` and `ok-gtt` (and any victim with their good-tils).
pub fn expire_at() -> ExpireRequest {
    ExpireRequest::new(Some(20), Some(2_000)).at(t0() + Duration::hours(1))
}

/// A purge cut-off after every fixture's `updated_at`.
pub fn purge_cut() -> DateTime<Utc> {
    t0() + Duration::days(1)
}
