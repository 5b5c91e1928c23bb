//! The claim race across OS processes: several copies of this test binary claim the same
//! orders at once on the shared server; every order is claimed exactly once.

mod common;

use std::path::Path;
use std::time::Duration;

use ordermeta_core::conformance::short_term;
use ordermeta_core::{MetadataStore, MetadataStoreExt, OrderStatus};
use ordermeta_redis::RedisStore;
use ordermeta_testkit::child::{self, Child, Gate};
use ordermeta_testkit::count::tally;

const CHILD_ENV: &str = "ORDERMETA_REDIS_CLAIM_CHILD";
const TEST_NAME: &str = "claim_race_across_processes";
const ORDERS: usize = 200;
const PROCESSES: usize = 4;
const LIMIT: Duration = Duration::from_secs(60);

fn id(i: usize) -> String {
    format!("xp-{i:04}")
}

/// A child (payload: namespace, then the gate's path, on two lines): gets ready, waits at the
/// gate, claims every order concurrently, prints what it won (`WON=<id>`).
async fn claim_all(payload: String) {
    let (namespace, gate) = payload.split_once('\n').expect("namespace and gate");
    let store = RedisStore::options()
        .namespace(namespace)
        .connect(&ordermeta_testkit::redis_url())
        .await
        .expect("child connects");
    println!("READY");
    Gate::wait_async(Path::new(gate), LIMIT).await;
    let ids: Vec<String> = (0..ORDERS).map(id).collect();
    let results = futures::future::join_all(ids.iter().map(|i| store.claim_for_cancel(i))).await;
    for (i, r) in ids.iter().zip(results) {
        match r {
            Ok(m) => {
                assert_eq!(m.status, OrderStatus::Cancelling);
                println!("WON={i}");
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
    if let Some(payload) = child::payload(CHILD_ENV) {
        return claim_all(payload).await;
    }
    let store = common::connect_fresh(&ordermeta_testkit::redis_url(), "xproc").await;
    // The namespace goes away even if an assertion fails.
    common::test_store(store.clone())
        .run(|_| async move {
            race(store).await;
        })
        .await;
}

async fn race(store: RedisStore) {
    let recs: Vec<_> = (0..ORDERS)
        .map(|i| short_term(&id(i), OrderStatus::Active, 100))
        .collect();
    store.record_many(&recs).await.expect("record");
    let gate = Gate::new();
    let payload = format!("{}\n{}", store.keys().namespace(), gate.path().display());
    let url = ordermeta_testkit::redis_url();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|_| Child::spawn_with(TEST_NAME, CHILD_ENV, &payload, &[("REDIS_URL", &url)]))
        .collect();
    tokio::task::block_in_place(|| {
        for c in &mut children {
            c.wait_for_line("READY", LIMIT);
        }
    });
    gate.open();

    let mut wins = Vec::new();
    let mut winners_per_process = Vec::new();
    for c in children {
        let out = c.wait_success_async(LIMIT).await;
        let mine = out.values("WON");
        winners_per_process.push(mine.len());
        wins.extend(mine.into_iter().map(str::to_owned));
    }
    let wins = tally(wins);
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
