//! End to end on the Redis store: the real `dydx` client against the local node simulator
//! over gRPC, the store on a real server (`REDIS_URL`, else the local default;
//! `./scripts/test.sh` provides one). Each test has its own namespace and deletes it.

#[macro_use]
mod common;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ordermeta::MetadataStore;
use ordermeta::redis::RedisStore;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A namespace no other test or test process uses.
fn unique_namespace() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "e2e-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn connect(namespace: &str) -> RedisStore {
    let url = redis_url();
    RedisStore::connect(&url, namespace)
        .await
        .unwrap_or_else(|e| {
            panic!("Redis at {url} is required (run ./scripts/test.sh or set REDIS_URL): {e}")
        })
}

/// A new connection on `namespace`: what a restarted process opens.
async fn open(namespace: String) -> Arc<dyn MetadataStore> {
    Arc::new(connect(&namespace).await)
}

/// Runs `flow` in a fresh namespace, then deletes it.
async fn fresh<F, Fut>(flow: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let ns = unique_namespace();
    flow(ns.clone()).await;
    delete_namespace(&ns).await;
}

async fn delete_namespace(ns: &str) {
    if let Err(e) = connect(ns).await.delete_namespace().await {
        eprintln!("cleanup of namespace {ns} failed: {e}");
    }
}

e2e_flows!();

/// A private redis-server on a free port, killed after the store connected to it: the
/// database is down at placement, and nothing is placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_at_placement() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    let mut server = tokio::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server on PATH (./scripts/test.sh installs it)");
    let url = format!("redis://127.0.0.1:{port}");
    let mut store = None;
    for _ in 0..100 {
        match RedisStore::builder(&url)
            .response_timeout(Some(Duration::from_secs(2)))
            .connection_timeout(Duration::from_secs(1))
            .connect()
            .await
        {
            Ok(s) => {
                store = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let store = store.expect("the private redis-server came up");
    server.kill().await.expect("kill the private redis-server");
    common::store_down_places_nothing(Arc::new(store)).await;
}
