//! Remembered records (`RedisStoreOptions::known_records`): a store decides on the record it
//! last wrote or read, and its one-call compare-and-set writes only if the HASH is still
//! exactly that record. Here: what another store instance, a hand edit or a vanished key did
//! in between is never written over and gives the same answer as without remembering; and the
//! whole conformance suite with remembering off, and with room for one order only.

mod common;

use ordermeta_core::conformance::{TestStore, short_term};
use ordermeta_core::{
    ErrorKind, MetadataStore, MetadataStoreExt, OrderStatus, StoreError, TransitionRequest,
    UpdateRequest,
};
use ordermeta_redis::RedisStore;
use ordermeta_redis::redis::AsyncCommands as _;
use ordermeta_testkit::{env::redis_missing, redis_url, unique_name};

async fn connect(namespace: &str, known: usize) -> RedisStore {
    let url = redis_url();
    RedisStore::options()
        .namespace(namespace)
        .known_records(known)
        .connect(&url)
        .await
        .unwrap_or_else(|e| redis_missing(&url, e))
}

async fn setup_off() -> TestStore {
    common::test_store(connect(&unique_name("known-off"), 0).await)
}

async fn setup_one() -> TestStore {
    common::test_store(connect(&unique_name("known-one"), 1).await)
}

/// Nothing remembered: every transition reads first, as before remembering existed.
mod off {
    ordermeta_core::conformance_tests!(super::setup_off);
}

/// Room for one order: entries are forgotten all the time while the suite runs.
mod one {
    ordermeta_core::conformance_tests!(super::setup_one);
}

fn activate(id: &str) -> TransitionRequest {
    TransitionRequest::new(id, &[OrderStatus::Pending], OrderStatus::Active)
}

/// Two store instances (two processes, in effect) on one namespace: each remembers its own
/// last write, which the other's writes make stale.
#[tokio::test]
async fn a_stale_record_is_judged_again_on_the_stored_one() {
    let ns = unique_name("known-stale");
    let a = connect(&ns, 16).await;
    let b = connect(&ns, 16).await;
    a.record(&short_term("s-1", OrderStatus::Pending, 10))
        .await
        .expect("record");
    a.record(&short_term("s-2", OrderStatus::Pending, 10))
        .await
        .expect("record");
    // B moves s-1 on; A still remembers it pending.
    b.transition(&activate("s-1")).await.expect("b activates");

    // What A remembers allows this, the stored record does not: a conflict naming the
    // stored status, nothing written.
    let err = a.transition(&activate("s-1")).await.expect_err("stale");
    match err {
        StoreError::StatusConflict { current, .. } => assert_eq!(current, OrderStatus::Active),
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(b.get_required("s-1").await.expect("get").version, 2);

    // B moves s-2 on; what A remembers refuses this, the stored record allows it: done.
    b.transition(&activate("s-2")).await.expect("b activates");
    let claimed = a.claim_for_cancel("s-2").await.expect("a claims");
    assert_eq!(
        (claimed.status, claimed.version),
        (OrderStatus::Cancelling, 3)
    );
    assert_eq!(b.get_required("s-2").await.expect("get"), claimed);

    // A now remembers its own claim of s-2, which B settles; A's update judges the stored
    // record (cancelled, version 4), and its answer holds B's write.
    b.transition(&TransitionRequest::new(
        "s-2",
        &[OrderStatus::Cancelling],
        OrderStatus::Cancelled,
    ))
    .await
    .expect("b cancels");
    let updated = a
        .update(&UpdateRequest::new("s-2").filled_quantity("0"))
        .await
        .expect("a updates");
    assert_eq!(
        (updated.status, updated.version),
        (OrderStatus::Cancelled, 5)
    );
    assert_eq!(b.get_required("s-2").await.expect("get"), updated);
    a.delete_namespace().await.expect("cleanup");
}

/// Both instances remember an order; they claim it at once: exactly one wins, the other gets
/// a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_that_both_remember_an_order_race_fairly() {
    let ns = unique_name("known-race");
    let a = connect(&ns, 16).await;
    let b = connect(&ns, 16).await;
    for i in 0..20 {
        let id = format!("r-{i}");
        a.record(&short_term(&id, OrderStatus::Active, 10))
            .await
            .expect("record");
        b.get_required(&id).await.expect("b reads it");
        let (ra, rb) = tokio::join!(a.claim_for_cancel(&id), b.claim_for_cancel(&id));
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{id}: {ra:?} {rb:?}");
        for r in [ra, rb] {
            if let Err(e) = r {
                assert_eq!(e.kind(), ErrorKind::StatusConflict, "{id}: {e}");
            }
        }
        assert_eq!(a.get_required(&id).await.expect("get").version, 2);
    }
    a.delete_namespace().await.expect("cleanup");
}

/// A field edited by hand after the store's own write (its `op` untouched): the edit is what
/// the answer shows, never written over with the remembered value.
#[tokio::test]
async fn a_hand_edit_is_seen_not_overwritten() {
    let store = connect(&unique_name("known-edit"), 16).await;
    store
        .record(&short_term("e-1", OrderStatus::Active, 10))
        .await
        .expect("record");
    let key = store.keys().order("e-1");
    let mut conn = store.connection();
    let _: () = conn.hset(&key, "symbol", "ETH-USD").await.expect("hset");
    let claimed = store.claim_for_cancel("e-1").await.expect("claim");
    assert_eq!(claimed.symbol, "ETH-USD");
    let stored: String = conn.hget(&key, "symbol").await.expect("hget");
    assert_eq!(stored, "ETH-USD");
    assert_eq!(store.get_required("e-1").await.expect("get"), claimed);
    store.delete_namespace().await.expect("cleanup");
}

/// A remembered order whose key went (a TTL, a delete by hand) is `NotFound`, and nothing is
/// written back.
#[tokio::test]
async fn a_vanished_order_is_not_found() {
    let store = connect(&unique_name("known-gone"), 16).await;
    store
        .record(&short_term("g-1", OrderStatus::Pending, 10))
        .await
        .expect("record");
    let key = store.keys().order("g-1");
    let mut conn = store.connection();
    let _: () = conn.del(&key).await.expect("del");
    let err = store.transition(&activate("g-1")).await.expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let exists: bool = conn.exists(&key).await.expect("exists");
    assert!(!exists);
    store.delete_namespace().await.expect("cleanup");
}
