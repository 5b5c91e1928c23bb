//! A store says what it opened: `mode=rw` refuses to create a missing file (naming its absolute
//! path), `mode=rwc` and the default create it and report it (a warning naming the absolute
//! path, `SqliteStore::created`, the store's description), and a reopened file is not "created".

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ordermeta_core::conformance::short_term;
use ordermeta_core::{MetadataStore, OrderStatus, StoreError};
use ordermeta_sqlite::{SqliteError, SqliteStore};

fn sqlite_error(e: &StoreError) -> &SqliteError {
    match e {
        StoreError::Backend { source } => source
            .downcast_ref::<SqliteError>()
            .unwrap_or_else(|| panic!("source is not a SqliteError: {e:?}")),
        other => panic!("expected Backend, got {other:?}"),
    }
}

/// The log lines written while `f` runs (a subscriber for this thread only: `#[tokio::test]`
/// runs the test on one thread).
async fn logged<T>(f: impl std::future::Future<Output = T>) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = {
        let _guard = tracing::subscriber::set_default(subscriber);
        f.await
    };
    let text = String::from_utf8_lossy(&buf.0.lock().expect("log buffer")).into_owned();
    (out, text)
}

/// A file name in the working directory that does not exist, for relative paths.
fn unused_relative_name(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let name = PathBuf::from(format!("om-{tag}-{}-{nanos}.db", std::process::id()));
    assert!(!name.exists());
    name
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

#[tokio::test]
async fn mode_rw_refuses_a_missing_file_and_names_its_absolute_path() {
    let name = unused_relative_name("rw");
    let absolute = std::env::current_dir().expect("cwd").join(&name);
    let url = format!("sqlite:{}?mode=rw", name.display());
    let err = SqliteStore::connect(&url).await.expect_err("no such file");
    match sqlite_error(&err) {
        SqliteError::DatabaseMissing { path } => assert_eq!(path, &absolute),
        other => panic!("expected DatabaseMissing, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&absolute.display().to_string()), "{msg}");
    assert!(msg.contains("mode=rw"), "{msg}");
    assert!(!name.exists(), "mode=rw created the file");
}

#[tokio::test]
async fn mode_rw_opens_an_existing_store_and_sees_its_orders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    let first = SqliteStore::open(&path).await.expect("create");
    let order = short_term("kept", OrderStatus::Active, 9);
    first.record(&order).await.expect("record");
    first.close().await;

    let url = format!("sqlite:{}?mode=rw", path.display());
    let (store, log) = logged(SqliteStore::connect(&url)).await;
    let store = store.expect("existing file");
    assert!(!store.created());
    assert!(!log.contains("created a new"), "{log}");
    assert_eq!(store.get("kept").await.expect("get"), Some(order));
    assert_eq!(
        store.description().as_deref(),
        Some(format!("sqlite {}", path.display()).as_str())
    );
}

#[tokio::test]
async fn a_created_store_is_reported_with_its_absolute_path() {
    for mode in ["?mode=rwc", ""] {
        let name = unused_relative_name("rwc");
        let absolute = std::env::current_dir().expect("cwd").join(&name);
        let url = format!("sqlite:{}{mode}", name.display());
        let (store, log) = logged(SqliteStore::connect(&url)).await;
        let store = store.expect("created");
        let created = store.created();
        let path = store.path().map(Path::to_path_buf);
        let description = store.description().unwrap_or_default();
        store.close().await;
        remove_db(&absolute);

        assert!(created, "{url}: not reported as created");
        assert_eq!(path.as_deref(), Some(absolute.as_path()), "{url}");
        assert!(log.contains("WARN"), "{url}: {log}");
        assert!(log.contains("created a new, empty store"), "{url}: {log}");
        assert!(
            log.contains(&absolute.display().to_string()),
            "{url}: {log}"
        );
        assert!(
            description.contains(&absolute.display().to_string())
                && description.contains("created empty"),
            "{url}: {description}"
        );
    }
}

#[tokio::test]
async fn a_reopened_store_is_not_created_and_plain_paths_create_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    let (first, log) = logged(SqliteStore::connect(&path.display().to_string())).await;
    let first = first.expect("plain path creates");
    assert!(first.created());
    assert!(log.contains(&path.display().to_string()), "{log}");
    first.close().await;

    let (again, log) = logged(SqliteStore::open(&path)).await;
    let again = again.expect("reopen");
    assert!(!again.created());
    assert!(
        !log.contains("created a new"),
        "nothing to report on a reopen: {log}"
    );
}

#[tokio::test]
async fn in_memory_stores_say_so() {
    let store = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("memory");
    assert!(!store.created());
    assert_eq!(store.path(), None);
    assert!(
        store.description().is_some_and(|d| d.contains("in-memory")),
        "{:?}",
        store.description()
    );
}
