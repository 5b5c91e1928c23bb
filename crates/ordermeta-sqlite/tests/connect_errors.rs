//! A database that cannot be opened fails at connect, with an error that says why.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use ordermeta_core::OrderStatus;
use ordermeta_core::conformance::short_term;
use ordermeta_core::{ErrorKind, MetadataStore, StoreError};
use ordermeta_sqlite::{SqliteError, SqliteStore};
use ordermeta_testkit::child::Child;

fn source(e: &StoreError) -> &SqliteError {
    match e {
        StoreError::Backend { source } => source
            .downcast_ref::<SqliteError>()
            .unwrap_or_else(|| panic!("source is not a SqliteError: {e:?}")),
        other => panic!("expected Backend, got {other:?}"),
    }
}

/// Whether this process runs as root: root's CAP_DAC_OVERRIDE ignores file permissions, so
/// permission errors cannot be provoked. (The owner of a file we create is our uid.)
fn running_as_root(dir: &Path) -> bool {
    let probe = dir.join("uid-probe");
    std::fs::write(&probe, b"").expect("probe file");
    let uid = std::fs::metadata(&probe).expect("probe metadata").uid();
    std::fs::remove_file(&probe).expect("remove probe");
    uid == 0
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test]
async fn missing_directory_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-dir");
    let path = missing.join("orders.db");
    let err = SqliteStore::open(&path).await.expect_err("missing dir");
    match source(&err) {
        SqliteError::MissingDirectory { dir: d, .. } => assert_eq!(d, &missing),
        other => panic!("expected MissingDirectory, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(!missing.exists(), "directories are never created");
}

#[tokio::test]
async fn parent_that_is_a_regular_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").expect("write");
    for path in [
        file.join("orders.db"),
        file.join("deeper").join("orders.db"),
    ] {
        let err = SqliteStore::open(&path).await.expect_err("file as dir");
        match source(&err) {
            SqliteError::NotADirectory { parent, .. } => assert_eq!(parent, &file),
            other => panic!("{}: expected NotADirectory, got {other:?}", path.display()),
        }
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }
}

#[tokio::test]
async fn directory_as_database_and_missing_file_without_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = SqliteStore::open(dir.path())
        .await
        .expect_err("a directory");
    assert!(
        matches!(source(&err), SqliteError::IsADirectory { .. }),
        "{err:?}"
    );
    let path = dir.path().join("absent.db");
    let err = SqliteStore::options()
        .create_if_missing(false)
        .open(&path)
        .await
        .expect_err("no create");
    assert!(
        matches!(source(&err), SqliteError::DatabaseMissing { .. }),
        "{err:?}"
    );
    assert!(!path.exists());
}

#[tokio::test]
async fn not_a_database_file_fails_at_connect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x42u8; 8192]).expect("write garbage");
    let err = SqliteStore::open(&path).await.expect_err("garbage");
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert!(matches!(source(&err), SqliteError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage.db"), "{err}");
}

/// As root, also runs this test as user `nobody` (via `runuser`), so the refusals are
/// asserted too; its exit status is checked.
fn rerun_as_nobody() {
    if std::env::var_os(AS_NOBODY).is_some() {
        panic!("running as root although started as nobody");
    }
    let Some(child) = Child::spawn_as("nobody", "read_only_directory_and_file", AS_NOBODY, "1")
    else {
        eprintln!("runuser not found: the non-root assertions were not run in this environment");
        return;
    };
    let out = child.wait_success(Duration::from_secs(120));
    assert!(
        out.stdout.iter().any(|l| l.contains("1 passed")),
        "as nobody: {:?}",
        out.stdout
    );
    eprintln!("and as nobody: the read-only directory and file were refused");
}

const AS_NOBODY: &str = "ORDERMETA_SQLITE_TEST_AS_NOBODY";

/// Read-only directory and read-only file. Root ignores permissions, so as root the test
/// asserts exactly that (the store opens and works) instead of the refusal; it never passes
/// without asserting one or the other.
#[tokio::test]
async fn read_only_directory_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = running_as_root(dir.path());

    let ro_dir = dir.path().join("read-only");
    std::fs::create_dir(&ro_dir).expect("mkdir");
    set_mode(&ro_dir, 0o555);
    let result = SqliteStore::open(ro_dir.join("orders.db")).await;
    if root {
        let store = result.expect("root (CAP_DAC_OVERRIDE) can create files in a 0555 directory");
        store
            .record(&short_term("ro-1", OrderStatus::Pending, 1))
            .await
            .expect("and write them");
        store.close().await;
        eprintln!("running as root: asserted that permissions do not apply to root");
        rerun_as_nobody();
    } else {
        let err = result.expect_err("read-only directory");
        match source(&err) {
            SqliteError::Create { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
            }
            other => panic!("expected Create, got {other:?}"),
        }
        assert!(err.to_string().contains("must be writable"), "{err}");
    }
    set_mode(&ro_dir, 0o755);

    let ro_file = dir.path().join("ro-file.db");
    SqliteStore::open(&ro_file)
        .await
        .expect("create")
        .close()
        .await;
    set_mode(&ro_file, 0o400);
    let result = SqliteStore::open(&ro_file).await;
    if root {
        let store = result.expect("root can write a 0400 file");
        store.close().await;
    } else {
        let err = result.expect_err("read-only file");
        assert!(
            matches!(source(&err), SqliteError::NotWritable { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("not writable"), "{err}");
    }
    set_mode(&ro_file, 0o600);
}
