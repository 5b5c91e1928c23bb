//! The claim race across OS processes: several copies of this test binary claim the same
//! orders at once on the shared server; every order is claimed exactly once.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ordermeta_core::conformance::short_term;
use ordermeta_core::{MetadataStore, MetadataStoreExt, OrderStatus};
use ordermeta_redis::RedisStore;
use ordermeta_redis::redis::AsyncCommands as _;

const CHILD_ENV: &str = "ORDERMETA_REDIS_CLAIM_CHILD";
const TEST_NAME: &str = "claim_race_across_processes";
const ORDERS: usize = 200;
const PROCESSES: usize = 4;

fn id(i: usize) -> String {
    format!("xp-{i:04}")
}

fn go_key(store: &RedisStore) -> String {
    format!("{{{}}}:test:go", store.keys().namespace())
}

fn ready_key(store: &RedisStore) -> String {
    format!("{{{}}}:test:ready", store.keys().namespace())
}

/// A child: waits for the start signal, claims every order concurrently, prints what it won.
async fn child(namespace: String) {
    let store = RedisStore::connect(&common::redis_url(), &namespace)
        .await
        .expect("child connects");
    let mut conn = store.connection();
    let _: i64 = conn.incr(ready_key(&store), 1).await.expect("ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !conn.exists::<_, bool>(go_key(&store)).await.expect("go?") {
        assert!(Instant::now() < deadline, "no start signal");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ids: Vec<String> = (0..ORDERS).map(id).collect();
    let results = futures::future::join_all(ids.iter().map(|i| store.claim_for_cancel(i))).await;
    for (i, r) in ids.iter().zip(results) {
        match r {
            Ok(m) => {
                assert_eq!(m.status, OrderStatus::Cancelling);
                println!("WON {i}");
            }
            Err(e) => assert_eq!(
                e.current_status(),
                Some(OrderStatus::Cancelling),
                "a lost claim sees the winner's status: {e}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_race_across_processes() {
    if let Ok(ns) = std::env::var(CHILD_ENV) {
        return child(ns).await;
    }
    let store = common::connect_fresh(&common::redis_url(), "xproc").await;
    // The namespace (and the test's own keys) go away even if an assertion fails.
    let extra = store.clone();
    common::test_store(store.clone())
        .run(|_| async move {
            race(store).await;
        })
        .await;
    let mut conn = extra.connection();
    let _: () = conn
        .del(&[go_key(&extra), ready_key(&extra)])
        .await
        .expect("del");
}

async fn race(store: RedisStore) {
    let recs: Vec<_> = (0..ORDERS)
        .map(|i| short_term(&id(i), OrderStatus::Active, 100))
        .collect();
    store.record_many(&recs).await.expect("record");
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, store.keys().namespace())
                .env("REDIS_URL", common::redis_url())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a child process")
        })
        .collect();
    let mut conn = store.connection();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready: Option<usize> = conn.get(ready_key(&store)).await.expect("ready count");
        if ready == Some(PROCESSES) {
            break;
        }
        assert!(Instant::now() < deadline, "children never got ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _: () = conn.set(go_key(&store), 1).await.expect("go");
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().expect("child output"))
            .collect::<Vec<_>>()
    })
    .await
    .expect("join children");

    let mut wins: BTreeMap<String, usize> = BTreeMap::new();
    let mut winners_per_process = Vec::new();
    for out in &outputs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // libtest prints "test <name> ... " before the first line of output.
        let mine = stdout
            .lines()
            .filter_map(|l| l.split_once("WON ").map(|(_, id)| id))
            .count();
        winners_per_process.push(mine);
        for l in stdout
            .lines()
            .filter_map(|l| l.split_once("WON ").map(|(_, id)| id))
        {
            *wins.entry(l.to_owned()).or_default() += 1;
        }
    }
    let _: () = conn
        .del(&[go_key(&store), ready_key(&store)])
        .await
        .expect("del");
    for i in 0..ORDERS {
        assert_eq!(wins.get(&id(i)), Some(&1), "{} claimed exactly once", id(i));
        let m = store.get_required(&id(i)).await.expect("get");
        assert_eq!(
            (m.status, m.version, m.history.len()),
            (OrderStatus::Cancelling, 2, 2)
        );
    }
    assert_eq!(wins.len(), ORDERS);
    eprintln!("wins per process: {winners_per_process:?}");
}
