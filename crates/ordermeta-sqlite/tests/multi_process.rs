//! Two OS processes (this test binary, re-invoked) race to claim the same 1,000 orders in one
//! database file: every order is claimed exactly once and no SQLITE_BUSY surfaces.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt as _;
use ordermeta_core::conformance::short_term;
use ordermeta_core::{ListQuery, MetadataStore, MetadataStoreExt, OrderStatus, StoreError};
use ordermeta_sqlite::SqliteStore;
use ordermeta_testkit::child::{self, Child, Gate};
use ordermeta_testkit::count::assert_each_once;

const TEST_NAME: &str = "two_processes_claim_each_order_once";
/// A child's role ("a" or "b"), database file and gate, on three lines.
const ROLE: &str = "ORDERMETA_SQLITE_CHILD";
const ORDERS: usize = 1_000;
/// Claims each child keeps in flight (its writer connection serialises them in-process;
/// the other process is what contends for the file lock).
const IN_FLIGHT: usize = 8;
const DEADLINE: Duration = Duration::from_secs(120);

fn order_id(i: usize) -> String {
    format!("mp-{i:04}")
}

/// A child's role, database file and gate, from its payload.
fn child_spec(payload: &str) -> (String, PathBuf, PathBuf) {
    let mut lines = payload.lines();
    let mut next = |what| lines.next().unwrap_or_else(|| panic!("{ROLE}: no {what}"));
    let role = next("role").to_owned();
    let db = PathBuf::from(next("db"));
    let gate = PathBuf::from(next("gate"));
    (role, db, gate)
}

#[test]
fn two_processes_claim_each_order_once() {
    match child::payload(ROLE) {
        Some(payload) => claim_child(&payload),
        None => parent(),
    }
}

/// Two processes open a database file that does not exist yet at the same moment: one
/// creates it, switches it to WAL and migrates; the other waits and finds it ready. Both
/// then write.
#[test]
fn two_processes_create_one_file_at_once() {
    if let Some(payload) = child::payload(ROLE) {
        return create_child(&payload);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("fresh.db");
    race(CREATE_TEST_NAME, &db);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = SqliteStore::open(&db).await.expect("open");
        let page = store.list_all(&ListQuery::default()).await.expect("list");
        assert!(page.invalid.is_empty());
        assert_eq!(page.items.len(), 2 * CREATE_ORDERS);
        let applied: i64 =
            ordermeta_sqlite::sqlx::query_scalar("SELECT count(*) FROM ordermeta_migrations")
                .fetch_one(store.pool())
                .await
                .expect("migrations");
        assert_eq!(applied, 3, "each migration ran exactly once");
        store.close().await;
    });
}

const CREATE_TEST_NAME: &str = "two_processes_create_one_file_at_once";
const CREATE_ORDERS: usize = 100;

fn create_child(payload: &str) {
    let (role, db, gate) = child_spec(payload);
    println!("READY");
    Gate::wait(&gate, DEADLINE);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = SqliteStore::open(&db)
            .await
            .unwrap_or_else(|e| panic!("child {role} open: {e} ({e:?})"));
        for i in 0..CREATE_ORDERS {
            let id = format!("create-{role}-{i:03}");
            store
                .record(&short_term(&id, OrderStatus::Pending, 10))
                .await
                .unwrap_or_else(|e| panic!("child {role} record: {e} ({e:?})"));
        }
        store.close().await;
    });
}

/// Children "a" and "b" run `test` on `db`: both get ready, start at once, and must succeed.
/// Returns the ids each printed as won (`WON=<id>`).
fn race(test: &str, db: &Path) -> [Vec<String>; 2] {
    let gate = Gate::new();
    let mut children = ["a", "b"].map(|role| {
        let payload = format!("{role}\n{}\n{}", db.display(), gate.path().display());
        Child::spawn(test, ROLE, &payload)
    });
    for c in &mut children {
        c.wait_for_line("READY", DEADLINE);
    }
    gate.open();
    children.map(|c| {
        let out = c.wait_success(DEADLINE);
        out.values("WON").into_iter().map(str::to_owned).collect()
    })
}

fn parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("shared.db");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = SqliteStore::open(&db).await.expect("open");
        let orders: Vec<_> = (0..ORDERS)
            .map(|i| short_term(&order_id(i), OrderStatus::Active, 1_000))
            .collect();
        store.record_many(&orders).await.expect("record_many");
        store.close().await;
    });

    // Start both at once: each child opens the store, says it is ready, and waits at the gate.
    let [a, b] = race(TEST_NAME, &db);
    eprintln!(
        "process a claimed {}, process b claimed {}",
        a.len(),
        b.len()
    );
    // Every order claimed by one of the processes, none by both.
    assert_each_once(a.into_iter().chain(b), ORDERS);

    rt.block_on(async {
        let store = SqliteStore::open(&db).await.expect("reopen");
        let page = store
            .list_all(&ListQuery {
                limit: 1000,
                ..ListQuery::default()
            })
            .await
            .expect("list");
        assert!(page.invalid.is_empty());
        assert_eq!(page.items.len(), ORDERS);
        for m in &page.items {
            assert_eq!(
                (m.status, m.version, m.history.len()),
                (OrderStatus::Cancelling, 2, 2),
                "{}",
                m.order_id
            );
        }
        store.close().await;
    });
}

/// The order ids in a shuffled order of its own per child (xorshift + Fisher-Yates), so the
/// two processes meet on the same orders all the way through instead of one running ahead.
fn shuffled(seed: u64) -> Vec<String> {
    let mut ids: Vec<String> = (0..ORDERS).map(order_id).collect();
    let mut x = seed;
    for i in (1..ids.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids.swap(i, (x % (i as u64 + 1)) as usize);
    }
    ids
}

/// Claims every order, in its own shuffled order; prints what it won. Any error
/// other than losing the race (StatusConflict, current = cancelling) fails the child.
fn claim_child(payload: &str) {
    let (role, db, gate) = child_spec(payload);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (won, errors) = rt.block_on(async {
        let store = SqliteStore::open(&db).await.expect("child open");
        println!("READY");
        Gate::wait(&gate, DEADLINE);
        let results: Vec<(String, Result<(), StoreError>)> =
            futures::stream::iter(shuffled(if role == "a" {
                0x9E37_79B9
            } else {
                0x85EB_CA6B
            }))
            .map(|id| {
                let store = &store;
                async move {
                    let r = store.claim_for_cancel(&id).await.map(drop);
                    (id, r)
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        store.close().await;
        let mut won = Vec::new();
        let mut errors = Vec::new();
        let mut lost = 0;
        for (id, r) in results {
            match r {
                Ok(()) => won.push(id),
                Err(e) if e.current_status() == Some(OrderStatus::Cancelling) => lost += 1,
                Err(e) => errors.push(format!("{id}: {e} ({e:?})")),
            }
        }
        eprintln!("child {role}: won {}, lost {lost}", won.len());
        (won, errors)
    });
    assert!(errors.is_empty(), "child {role} errors: {errors:#?}");
    for id in won {
        println!("WON={id}");
    }
}
