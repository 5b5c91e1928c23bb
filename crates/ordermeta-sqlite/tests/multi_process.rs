//! Two OS processes (this test binary, re-invoked) race to claim the same 1,000 orders in one
//! database file: every order is claimed exactly once and no SQLITE_BUSY surfaces.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use ordermeta_core::conformance::short_term;
use ordermeta_core::{ListQuery, MetadataStore, MetadataStoreExt, OrderStatus, StoreError};
use ordermeta_sqlite::SqliteStore;

const TEST_NAME: &str = "two_processes_claim_each_order_once";
const ROLE: &str = "ORDERMETA_SQLITE_CHILD";
const DB: &str = "ORDERMETA_SQLITE_CHILD_DB";
const DIR: &str = "ORDERMETA_SQLITE_CHILD_DIR";
const ORDERS: usize = 1_000;
/// Claims each child keeps in flight (its writer connection serialises them in-process;
/// the other process is what contends for the file lock).
const IN_FLIGHT: usize = 8;
const DEADLINE: Duration = Duration::from_secs(120);

fn order_id(i: usize) -> String {
    format!("mp-{i:04}")
}

/// Polls for `path` to exist, up to the deadline.
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn two_processes_claim_each_order_once() {
    match std::env::var(ROLE) {
        Ok(role) => child(&role),
        Err(_) => parent(),
    }
}

/// Two processes open a database file that does not exist yet at the same moment: one
/// creates it, switches it to WAL and migrates; the other waits and finds it ready. Both
/// then write.
#[test]
fn two_processes_create_one_file_at_once() {
    if let Ok(role) = std::env::var(ROLE) {
        return create_child(&role);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("fresh.db");
    let children = spawn_children(CREATE_TEST_NAME, &db, dir.path());
    std::fs::write(dir.path().join("go"), b"").expect("go");
    wait_children(children);
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
        assert_eq!(applied, 1, "migrated exactly once");
        store.close().await;
    });
}

const CREATE_TEST_NAME: &str = "two_processes_create_one_file_at_once";
const CREATE_ORDERS: usize = 100;

fn create_child(role: &str) {
    let db = PathBuf::from(std::env::var_os(DB).expect("db path"));
    let dir = PathBuf::from(std::env::var_os(DIR).expect("dir"));
    std::fs::write(dir.join(format!("ready-{role}")), b"").expect("ready");
    wait_for(&dir.join("go"));
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
    std::fs::write(dir.join(format!("won-{role}")), b"").expect("done");
}

/// Starts children "a" and "b" running `test`, waits until both are ready.
fn spawn_children(test: &str, db: &Path, dir: &Path) -> Vec<(&'static str, Child)> {
    let exe = std::env::current_exe().expect("current exe");
    let children: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|role| {
            let child = Command::new(&exe)
                .args(["--exact", test, "--nocapture", "--test-threads=1"])
                .env(ROLE, role)
                .env(DB, db)
                .env(DIR, dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn child");
            (role, child)
        })
        .collect();
    for (role, _) in &children {
        wait_for(&dir.join(format!("ready-{role}")));
    }
    children
}

/// Waits for the children; each must exit successfully.
fn wait_children(children: Vec<(&'static str, Child)>) {
    for (role, child) in children {
        let out: Output = child.wait_with_output().expect("wait for child");
        assert!(
            out.status.success(),
            "child {role} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
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

    // Start both at once: each child opens the store, says it is ready, and waits for "go".
    let children = spawn_children(TEST_NAME, &db, dir.path());
    std::fs::write(dir.path().join("go"), b"").expect("go");
    wait_children(children);
    let won: Vec<BTreeSet<String>> = ["a", "b"]
        .into_iter()
        .map(|role| {
            std::fs::read_to_string(dir.path().join(format!("won-{role}")))
                .expect("child's result file")
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    let (a, b) = (&won[0], &won[1]);
    let both: Vec<_> = a.intersection(b).collect();
    assert!(both.is_empty(), "claimed by both processes: {both:?}");
    let all: BTreeSet<String> = (0..ORDERS).map(order_id).collect();
    let union: BTreeSet<String> = a.union(b).cloned().collect();
    assert_eq!(union, all, "every order claimed by one of the processes");
    eprintln!(
        "process a claimed {}, process b claimed {}",
        a.len(),
        b.len()
    );

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

/// Claims every order, in its own shuffled order; records what it won. Any error
/// other than losing the race (StatusConflict, current = cancelling) fails the child.
fn child(role: &str) {
    let db = PathBuf::from(std::env::var_os(DB).expect("db path"));
    let dir = PathBuf::from(std::env::var_os(DIR).expect("dir"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (won, errors) = rt.block_on(async {
        let store = SqliteStore::open(&db).await.expect("child open");
        std::fs::write(dir.join(format!("ready-{role}")), b"").expect("ready");
        wait_for(&dir.join("go"));
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
    std::fs::write(dir.join(format!("won-{role}")), won.join("\n")).expect("write result");
}
