//! End to end on the Redis store: the real `dydx` client against the local node simulator
//! over gRPC, the store on a real server (`REDIS_URL`, else the local default;
//! `./scripts/test.sh` provides one). Each test has its own namespace and deletes it.

#[macro_use]
mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ordermeta::MetadataStore;
use ordermeta::redis::RedisStore;
use ordermeta_testkit::redis::RedisServer;
use ordermeta_testkit::{env::redis_missing, redis_url, unique_name};

async fn connect(namespace: &str) -> RedisStore {
    let url = redis_url();
    RedisStore::options()
        .namespace(namespace)
        .connect(&url)
        .await
        .unwrap_or_else(|e| redis_missing(&url, e))
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
    common::run_then_clean(unique_name("e2e"), flow, delete_namespace).await;
}

async fn delete_namespace(ns: String) {
    if let Err(e) = connect(&ns).await.delete_namespace().await {
        eprintln!("cleanup of namespace {ns} failed: {e}");
    }
}

e2e_flows!();

/// A private redis-server on a free port, killed after the store connected to it: the
/// database is down at placement, and nothing is placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_at_placement() {
    let server = RedisServer::start_private(&["--appendonly", "no"]);
    let store = RedisStore::options()
        .response_timeout(Some(Duration::from_secs(2)))
        .connection_timeout(Duration::from_secs(1))
        .connect(&server.url())
        .await
        .expect("the private redis-server came up");
    tokio::task::block_in_place(|| server.kill());
    common::store_down_places_nothing(Arc::new(store)).await;
}
