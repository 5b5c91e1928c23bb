//! What the Redis tests share beyond `ordermeta_testkit`: stores in fresh namespaces, and
//! conformance stores that delete their namespace afterwards; [`raw`] for the tests that
//! damage data by hand.
#![allow(dead_code)] // each test binary uses a different subset

pub mod raw;

use std::sync::Arc;

use ordermeta_core::conformance::TestStore;
use ordermeta_redis::RedisStore;
use ordermeta_testkit::{env::redis_missing, unique_name};

/// Connects to `url` in a fresh namespace; a missing server fails the test (never skips).
pub async fn connect_fresh(url: &str, prefix: &str) -> RedisStore {
    RedisStore::options()
        .namespace(unique_name(prefix))
        .connect(url)
        .await
        .unwrap_or_else(|e| redis_missing(url, e))
}

/// A conformance `TestStore` whose namespace is deleted afterwards.
pub fn test_store(store: RedisStore) -> TestStore {
    let cleanup = store.clone();
    TestStore::with_cleanup(Arc::new(store), async move {
        cleanup
            .delete_namespace()
            .await
            .expect("delete the test namespace");
    })
}
