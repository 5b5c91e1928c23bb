//! `ordermeta::open` on every real backend: the store a URL names is the one that opens, it
//! works, and what it writes lands where the URL said (schema, namespace, file).

use ordermeta::postgres::{PgStore, sqlx};
use ordermeta::redis::RedisStore;
use ordermeta::{MetadataStore, MetadataStoreExt, OpenError, OrderStatus, StoreError};
use ordermeta_core::conformance::short_term;
use ordermeta_testkit::env::{postgres_missing, redis_missing};
use ordermeta_testkit::{database_url, net::free_port, redis_url, unique_name};

/// `url` followed by `?name=value`, or `&name=value` when it already has a query.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{name}={value}")
}

/// Records one order through `store` and reads it back.
async fn round_trip(store: &dyn MetadataStore, id: &str) {
    store
        .record(&short_term(id, OrderStatus::Pending, 100))
        .await
        .expect("record");
    let got = store.get_required(id).await.expect("get");
    assert_eq!(got.status, OrderStatus::Pending);
}

#[tokio::test]
async fn sqlite_by_url_and_by_plain_path_is_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    let by_url = ordermeta::open(&format!("sqlite:{}", path.display()))
        .await
        .expect("open sqlite: URL");
    round_trip(&*by_url, "o-1").await;
    drop(by_url);
    let by_path = ordermeta::open(&path.display().to_string())
        .await
        .expect("open plain path");
    assert!(by_path.get("o-1").await.expect("get").is_some());
    // Opened, not created: the description is the file's absolute path alone.
    assert_eq!(
        by_path.description(),
        Some(format!("sqlite {}", path.display()))
    );
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_is_a_store_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite:{}",
        dir.path().join("no/such/dir/orders.db").display()
    );
    match ordermeta::open(&url).await {
        Err(OpenError::Store(StoreError::Backend { .. })) => {}
        other => panic!("{:?}", other.map(|_| "a store")),
    }
}

#[tokio::test]
async fn postgres_in_the_schema_the_url_names() {
    let schema = unique_name("open");
    let url = database_url();
    let store = ordermeta::open(&with_param(&url, "schema", &schema))
        .await
        .unwrap_or_else(|e| postgres_missing(&url, e));
    round_trip(&*store, "o-1").await;
    // It says where it is: host, database and schema, and never the user or password.
    let description = store.description().expect("described");
    assert!(description.starts_with("postgres "), "{description}");
    assert!(
        description.ends_with(&format!("schema {schema}")),
        "{description}"
    );
    assert!(!description.contains('@'), "{description}");
    drop(store);
    // The record is in that schema's table, read with a store opened the usual way.
    let check = PgStore::options()
        .schema(&schema)
        .connect(&database_url())
        .await
        .expect("connect");
    assert!(check.get("o-1").await.expect("get").is_some());
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(check.pool())
        .await
        .expect("drop schema");
    check.close().await;
}

#[tokio::test]
async fn redis_in_the_namespace_the_url_names() {
    let ns = unique_name("open");
    let url = redis_url();
    let store = ordermeta::open(&with_param(&url, "namespace", &ns))
        .await
        .unwrap_or_else(|e| redis_missing(&url, e));
    round_trip(&*store, "o-1").await;
    assert_eq!(
        store.description().as_deref(),
        Some(format!("redis, namespace {ns}").as_str())
    );
    let check = RedisStore::options()
        .namespace(&ns)
        .connect(&redis_url())
        .await
        .expect("connect");
    assert!(check.get("o-1").await.expect("get").is_some());
    check.delete_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn unreachable_servers_are_store_errors() {
    // A port nobody listens on: bound, then released.
    let port = free_port();
    for url in [
        format!("postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=2"),
        format!("redis://127.0.0.1:{port}"),
    ] {
        match ordermeta::open(&url).await {
            Err(OpenError::Store(StoreError::Backend { .. })) => {}
            other => panic!("{url}: {:?}", other.map(|_| "a store")),
        }
    }
}

#[tokio::test]
async fn a_parameter_of_the_other_store_is_refused() {
    for url in [
        with_param(&database_url(), "namespace", "x"),
        with_param(&redis_url(), "schema", "x"),
    ] {
        assert!(
            matches!(
                ordermeta::open(&url).await,
                Err(OpenError::InvalidUrl { .. })
            ),
            "{url}"
        );
    }
}
