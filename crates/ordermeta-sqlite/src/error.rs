//! [`SqliteError`]: what went wrong on the SQLite side, converted into
//! [`StoreError`](ordermeta_core::StoreError) at the trait boundary.
//!
//! Every [`StoreError::Backend`](ordermeta_core::StoreError::Backend) this crate returns
//! carries a [`SqliteError`] as its source; downcast it to tell a missing directory from a
//! failed migration from a busy database:
//!
//! ```
//! # use ordermeta_core::StoreError;
//! # use ordermeta_sqlite::SqliteError;
//! fn is_setup_problem(e: &StoreError) -> bool {
//!     matches!(
//!         e,
//!         StoreError::Backend { source } if matches!(
//!             source.downcast_ref::<SqliteError>(),
//!             Some(SqliteError::MissingDirectory { .. } | SqliteError::NotADirectory { .. })
//!         )
//!     )
//! }
//! ```

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use ordermeta_core::StoreError;
use sqlx::error::ErrorKind as DbErrorKind;

/// Primary result code `SQLITE_BUSY` (extended codes keep it in the low byte).
const SQLITE_BUSY: i64 = 5;
/// Primary result code `SQLITE_LOCKED`.
const SQLITE_LOCKED: i64 = 6;

/// An error of the SQLite store. Reaches callers as the source of
/// [`StoreError::Backend`](ordermeta_core::StoreError::Backend).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The connection URL (or an option in it) could not be parsed.
    #[error("invalid SQLite URL {url:?}: {source}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// sqlx's parse error.
        #[source]
        source: sqlx::Error,
    },
    /// The database's directory does not exist. ordermeta creates the database file, never
    /// directories: a typo in a path must not scatter databases around the disk.
    #[error(
        "cannot open SQLite database {}: directory {} does not exist (create it first)",
        path.display(),
        dir.display()
    )]
    MissingDirectory {
        /// The database path.
        path: PathBuf,
        /// Its missing directory.
        dir: PathBuf,
    },
    /// Something on the database's path is not a directory (e.g. a regular file where the
    /// directory should be).
    #[error(
        "cannot open SQLite database {}: {} is not a directory",
        path.display(),
        parent.display()
    )]
    NotADirectory {
        /// The database path.
        path: PathBuf,
        /// The path component that should be a directory.
        parent: PathBuf,
    },
    /// The database path names a directory.
    #[error("cannot open SQLite database {}: it is a directory", path.display())]
    IsADirectory {
        /// The database path.
        path: PathBuf,
    },
    /// The database file does not exist and creating it is off (`mode=rw` in the URL, or
    /// `create_if_missing(false)`). The path is absolute: a relative one was resolved from the
    /// working directory, which is often the mistake.
    #[error(
        "SQLite database {} does not exist, and creating it is off (`mode=rw` or \
         create_if_missing(false)); check the path (a relative path is resolved from the \
         working directory), or use `mode=rwc` to create it",
        path.display()
    )]
    DatabaseMissing {
        /// The database path, absolute.
        path: PathBuf,
    },
    /// The database file could not be created (a read-only or foreign directory, a full disk).
    #[error(
        "cannot create SQLite database {}: {source} (the directory must be writable: SQLite \
         also creates the -wal and -shm files beside the database)",
        path.display()
    )]
    Create {
        /// The database path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The database file exists but this process cannot write it. (SQLite itself would open
    /// it read-only without a word and fail at the first write.)
    #[error("SQLite database {} is not writable by this process: {source}", path.display())]
    NotWritable {
        /// The database path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// SQLite could not open or set up the database (not a database file, corrupt header,
    /// unwritable directory for the -wal / -shm files, locked for too long…).
    #[error("cannot open SQLite database {path}: {source}")]
    Open {
        /// The database path (or URL) as given.
        path: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The embedded migrations could not be applied, or the database was migrated by a
    /// different (newer, or modified) ordermeta.
    #[error("SQLite store migration failed: {reason}")]
    Migration {
        /// What went wrong.
        reason: String,
        /// The driver's error, when the database failed.
        #[source]
        source: Option<sqlx::Error>,
    },
    /// A statement failed (I/O error, disk full, database busy beyond `busy_timeout`,
    /// pool timeout…). The operation may not have happened.
    #[error("SQLite error: {source}")]
    Query {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The transaction of a group commit (the writes of several concurrent calls, see
    /// [`SqliteStoreOptions::group_commit`](crate::SqliteStoreOptions::group_commit)) failed
    /// as a whole: every call in it gets this error, sharing the driver's error. Before the
    /// `COMMIT` (`at_commit` false) nothing was written; a failed `COMMIT` leaves the outcome
    /// unknown, so the store has read each record back first and answers this only for a
    /// write it did not find applied.
    #[error("SQLite error in a group commit{}: {source}", if *at_commit { " (at COMMIT)" } else { "" })]
    GroupCommit {
        /// The driver's error, shared by every call of the transaction.
        #[source]
        source: Arc<sqlx::Error>,
        /// Whether the `COMMIT` itself failed.
        at_commit: bool,
    },
}

impl SqliteError {
    /// True when SQLite answered `SQLITE_BUSY` / `SQLITE_LOCKED`: another connection held the
    /// lock for longer than `busy_timeout`. Retrying later can succeed.
    pub fn is_busy(&self) -> bool {
        match self {
            SqliteError::Open { source, .. } | SqliteError::Query { source } => is_busy(source),
            SqliteError::GroupCommit { source, .. } => is_busy(source),
            SqliteError::Migration {
                source: Some(source),
                ..
            } => is_busy(source),
            _ => false,
        }
    }
}

/// Whether a driver error is `SQLITE_BUSY` or `SQLITE_LOCKED` (any extended code).
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    matches!(primary_code(e), Some(SQLITE_BUSY | SQLITE_LOCKED))
}

impl From<SqliteError> for StoreError {
    fn from(e: SqliteError) -> Self {
        StoreError::backend(e)
    }
}

/// The primary result code of a driver error from SQLite (extended codes keep it in the low
/// byte).
fn primary_code(e: &sqlx::Error) -> Option<i64> {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i64>().ok())
        .map(|c| c & 0xff)
}

/// Whether SQLite undid only the failing statement, leaving its transaction open: a
/// constraint, type, size or SQL error (`SQLITE_ERROR`, `TOOBIG`, `CONSTRAINT`, `MISMATCH`,
/// `RANGE`). After the others (`BUSY`, `IOERR`, `FULL`, `NOMEM`…) SQLite may have rolled the
/// whole transaction back, so nothing more may run in it.
pub(crate) fn statement_only(e: &sqlx::Error) -> bool {
    matches!(primary_code(e), Some(1 | 18 | 19 | 20 | 25))
}

/// A failed statement, as [`StoreError::Backend`].
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    SqliteError::Query { source: e }.into()
}

/// A failed insert of `order_id`: a primary-key clash is `AlreadyExists`, anything else
/// `Backend`. Classified by SQLite's extended result code, never by message text.
pub(crate) fn insert_error(order_id: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.kind() == DbErrorKind::UniqueViolation => {
            StoreError::AlreadyExists {
                order_id: order_id.to_owned(),
            }
        }
        _ => backend(e),
    }
}
