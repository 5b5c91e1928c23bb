//! [`PgError`]: what went wrong on the PostgreSQL side, converted into
//! [`StoreError`](ordermeta_core::StoreError) at the trait boundary.
//!
//! Every [`StoreError::Backend`](ordermeta_core::StoreError::Backend) this crate returns
//! carries a [`PgError`] as its source; downcast to tell a refused password from a missing
//! privilege from an outage:
//!
//! ```
//! # use ordermeta_core::StoreError;
//! # use ordermeta_postgres::PgError;
//! fn is_permission_problem(e: &StoreError) -> bool {
//!     matches!(
//!         e,
//!         StoreError::Backend { source } if matches!(
//!             source.downcast_ref::<PgError>(),
//!             Some(PgError::PermissionDenied { .. })
//!         )
//!     )
//! }
//! ```

use ordermeta_core::StoreError;

/// SQLSTATE of a refused password (`invalid_password`).
const INVALID_PASSWORD: &str = "28P01";
/// SQLSTATE class 28, `invalid_authorization_specification` (no pg_hba entry, unknown role…).
const INVALID_AUTHORIZATION: &str = "28000";
/// SQLSTATE of a missing privilege (`insufficient_privilege`).
const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// SQLSTATE class of data exceptions (a NUL byte in text, a value out of range…).
const DATA_EXCEPTION_CLASS: &str = "22";
/// SQLSTATE `lock_not_available`: `lock_timeout` ran out.
const LOCK_NOT_AVAILABLE: &str = "55P03";
/// SQLSTATE `query_canceled`: `statement_timeout` ran out (or someone cancelled the statement).
const QUERY_CANCELED: &str = "57014";

/// An error of the PostgreSQL store. Reaches callers as the source of
/// [`StoreError::Backend`](ordermeta_core::StoreError::Backend).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The configured schema name is not a plain SQL identifier.
    #[error("invalid schema name {name:?}: {reason}")]
    InvalidSchemaName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The connection URL (or an option in it) could not be parsed.
    #[error("invalid PostgreSQL connection URL: {source}")]
    InvalidUrl {
        /// sqlx's parse error.
        #[source]
        source: sqlx::Error,
    },
    /// The server could not be reached, or refused the connection for a reason other than
    /// credentials (unknown database, TLS required or unavailable, timeout…).
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect {
        /// `host:port/database` as configured.
        target: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The server refused the credentials (wrong password, unknown role, no `pg_hba.conf`
    /// entry for this role/host).
    #[error(
        "PostgreSQL at {target} refused to authenticate role {role:?} (check the user and \
         password in the URL, and pg_hba.conf): {source}"
    )]
    Authentication {
        /// `host:port/database` as configured.
        target: String,
        /// The role (user) that tried to log in.
        role: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The role lacks a privilege on the store's schema or table.
    #[error(
        "role {role:?} lacks privileges on schema {schema:?}: grant it USAGE on the schema and \
         SELECT, INSERT, UPDATE, DELETE on its tables (and CREATE, or run the migrations as the \
         schema's owner): {source}"
    )]
    PermissionDenied {
        /// The role the store is connected as.
        role: String,
        /// The store's schema.
        schema: String,
        /// The driver's error (SQLSTATE 42501).
        #[source]
        source: sqlx::Error,
    },
    /// A migration script failed; the migration transaction was rolled back.
    #[error("migration {version} ({description}) in schema {schema:?} failed: {source}")]
    Migration {
        /// The store's schema.
        schema: String,
        /// The migration's version.
        version: i64,
        /// What the migration does.
        description: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// An applied migration differs from the script embedded in this build.
    #[error(
        "migration {version} in schema {schema:?} was applied from a different script than the \
         one in this build (checksum mismatch); refusing to use the schema"
    )]
    MigrationChanged {
        /// The store's schema.
        schema: String,
        /// The migration's version.
        version: i64,
    },
    /// The schema has a migration this build does not know: a newer ordermeta migrated it.
    #[error(
        "schema {schema:?} has migration {version}, which this build does not know (it was \
         migrated by a newer ordermeta-postgres); upgrade this program"
    )]
    UnknownMigration {
        /// The store's schema.
        schema: String,
        /// The unknown version.
        version: i64,
    },
    /// The store was built with migrations off and the schema is not (fully) migrated.
    #[error(
        "schema {schema:?} lacks migration {version}: run the migrations (PgStoreOptions::migrate) \
         as a role allowed to create tables in it"
    )]
    NotMigrated {
        /// The store's schema.
        schema: String,
        /// The first missing version.
        version: i64,
    },
    /// A statement waited longer than the connection's `lock_timeout` for a lock another
    /// session holds (typically a row another transaction is changing), and the server
    /// cancelled it. Nothing was written; retrying later can succeed.
    #[error(
        "PostgreSQL gave up waiting for a lock another session holds (lock_timeout); nothing \
         was written: {source}"
    )]
    LockTimeout {
        /// The driver's error (SQLSTATE 55P03).
        #[source]
        source: sqlx::Error,
    },
    /// A statement ran longer than the connection's `statement_timeout` (or an administrator
    /// cancelled it), and the server cancelled it. Nothing was written.
    #[error(
        "PostgreSQL cancelled the statement (statement_timeout, or a cancel request); nothing \
         was written: {source}"
    )]
    StatementTimeout {
        /// The driver's error (SQLSTATE 57014).
        #[source]
        source: sqlx::Error,
    },
    /// Any other driver or server error (I/O, pool timeout, server shutting down…). The
    /// operation may or may not have happened.
    #[error("PostgreSQL error: {source}")]
    Database {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        StoreError::backend(e)
    }
}

/// The SQLSTATE of a server error, if `e` is one.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Whether `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

pub(crate) fn is_insufficient_privilege(e: &sqlx::Error) -> bool {
    sqlstate(e).as_deref() == Some(INSUFFICIENT_PRIVILEGE)
}

/// Classifies an error met while opening a connection.
pub(crate) fn connect_error(e: sqlx::Error, target: String, role: &str) -> PgError {
    match sqlstate(&e).as_deref() {
        Some(INVALID_PASSWORD | INVALID_AUTHORIZATION) => PgError::Authentication {
            target,
            role: role.to_owned(),
            source: e,
        },
        _ if matches!(e, sqlx::Error::Configuration(_)) => PgError::InvalidUrl { source: e },
        _ => PgError::Connect { target, source: e },
    }
}

/// Classifies an error of a store operation (by SQLSTATE and driver kind, never by text).
pub(crate) fn op_error(
    e: sqlx::Error,
    role: &str,
    schema: &str,
    order_id: Option<&str>,
) -> StoreError {
    let code = sqlstate(&e);
    match code.as_deref() {
        Some(INSUFFICIENT_PRIVILEGE) => PgError::PermissionDenied {
            role: role.to_owned(),
            schema: schema.to_owned(),
            source: e,
        }
        .into(),
        Some(LOCK_NOT_AVAILABLE) => PgError::LockTimeout { source: e }.into(),
        Some(QUERY_CANCELED) => PgError::StatementTimeout { source: e }.into(),
        // The record is valid for ordermeta but PostgreSQL cannot hold it (e.g. a NUL byte in
        // text): the caller must change the record, retrying cannot help.
        Some(c) if c.starts_with(DATA_EXCEPTION_CLASS) => StoreError::invalid(
            order_id,
            format!("PostgreSQL cannot store this record (SQLSTATE {c}): {e}"),
        ),
        _ => match e {
            // Decoding a row we selected ourselves failed: the stored data is malformed.
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::invalid(order_id, format!("undecodable row: {e}"))
            }
            e => PgError::Database { source: e }.into(),
        },
    }
}
