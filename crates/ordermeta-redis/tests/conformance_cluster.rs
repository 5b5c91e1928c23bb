//! The whole conformance suite on a real 3-master Redis Cluster that this test binary starts
//! on free loopback ports (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`).
//! Any key of one script call in another slot would fail with CROSSSLOT; none does.

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use ordermeta_core::conformance::{TestStore, short_term};
use ordermeta_core::{ClientIdKey, MetadataStore, MetadataStoreExt, OrderStatus};
use ordermeta_redis::redis;
use ordermeta_testkit::redis::Cluster;

/// One cluster for the whole binary; its servers die with the process (see `RedisServer`).
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

async fn setup() -> TestStore {
    let url = tokio::task::spawn_blocking(|| cluster().url())
        .await
        .expect("start the cluster");
    common::test_store(common::connect_fresh(&url, "cluster").await)
}

ordermeta_core::conformance_tests!(setup);

/// The cluster really has three masters, namespaces land on different ones, and a store works
/// whichever node it was pointed at first (also through an explicit node list).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_spread_over_the_masters() {
    let c = tokio::task::spawn_blocking(cluster).await.expect("cluster");
    let node = format!("redis://127.0.0.1:{}", c.nodes[2].port);
    let client = redis::Client::open(node.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("node");
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .expect("cluster nodes");
    assert_eq!(
        nodes.lines().filter(|l| l.contains("master")).count(),
        3,
        "{nodes}"
    );

    // Slot ranges per master, to see where namespaces land.
    let slots: Vec<(i64, i64, Vec<redis::Value>)> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await
        .expect("cluster slots");
    let owner = |slot: i64| {
        slots
            .iter()
            .position(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
            .expect("every slot is served")
    };
    let mut masters = BTreeSet::new();
    for i in 0..24 {
        let ns = ordermeta_testkit::unique_name("spread");
        let options = ordermeta_redis::RedisStore::options().namespace(ns);
        let store = if i % 2 == 0 {
            options.connect(&c.url()).await
        } else {
            // One seed node is enough; the client discovers the others.
            let seed = format!("redis://127.0.0.1:{}", c.nodes[i % 3].port);
            options.connect_cluster([seed]).await
        }
        .expect("connect to the cluster");
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(store.keys().ids())
            .query_async(&mut conn)
            .await
            .expect("keyslot");
        masters.insert(owner(slot));
        let id = format!("spread-{i}");
        store
            .record(&short_term(&id, OrderStatus::Active, 10))
            .await
            .expect("record");
        store.claim_for_cancel(&id).await.expect("claim");
        assert_eq!(store.get_required(&id).await.expect("get").version, 2);
        store.delete_namespace().await.expect("cleanup");
    }
    assert_eq!(
        masters.len(),
        3,
        "24 namespaces over 3 masters: {masters:?}"
    );
}

/// `lookup.lua` (which only runs when a lookup meets a stale member, so never in the suite)
/// works on the cluster too: a dangling member above the newest is dropped, one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_drop_stale_members_on_the_cluster() {
    let url = tokio::task::spawn_blocking(|| cluster().url())
        .await
        .expect("start the cluster");
    let store = common::connect_fresh(&url, "cluster_stale").await;
    let m = short_term("real", OrderStatus::Active, 10).with_label("l");
    store.record(&m).await.expect("record");
    let key = ClientIdKey::of(&m);
    let mut conn = store.connection();
    for index in [store.keys().client_id(&key), store.keys().label("l")] {
        let _: () = redis::AsyncCommands::zadd(&mut conn, &index, "ghost", i64::MAX)
            .await
            .expect("zadd");
    }
    let by_cid = store.find_by_client_id(&key).await.expect("lookup");
    let by_label = store.find_by_label("l").await.expect("lookup");
    assert_eq!(by_cid.map(|m| m.order_id).as_deref(), Some("real"));
    assert_eq!(by_label.map(|m| m.order_id).as_deref(), Some("real"));
    for index in [store.keys().client_id(&key), store.keys().label("l")] {
        let s: Option<f64> = redis::AsyncCommands::zscore(&mut conn, &index, "ghost")
            .await
            .expect("zscore");
        assert_eq!(s, None, "dropped from {index}");
    }
    store.delete_namespace().await.expect("cleanup");
}
