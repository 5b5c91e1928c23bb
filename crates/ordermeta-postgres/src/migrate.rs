//! Embedded migrations, applied in the store's schema and recorded in the store's own
//! `ordermeta_migrations` table (never `_sqlx_migrations`, which the application may use for
//! its own schema: sharing it mixes two version sequences, see apalis#439).
//!
//! sqlx 0.8's `Migrator` cannot rename its table, so the scripts are run here: all pending
//! ones in one transaction, under an advisory lock, so that many processes starting at once
//! migrate exactly once.

use sqlx::{Connection, PgConnection, Row};

use crate::error::{PgError, is_insufficient_privilege, sqlstate};
use crate::schema::Schema;

/// One embedded migration.
#[derive(Debug)]
pub(crate) struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

/// Every migration, in version order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "create dydx_order_metadata",
        sql: include_str!("../migrations/0001_create_dydx_order_metadata.sql"),
    },
    Migration {
        version: 2,
        description: "claim leases",
        sql: include_str!("../migrations/0002_claim_leases.sql"),
    },
    Migration {
        version: 3,
        description: "lookup and chain fields",
        sql: include_str!("../migrations/0003_lookup_and_chain_fields.sql"),
    },
];

/// Name of the table recording applied migrations, inside the store's schema.
pub(crate) const MIGRATIONS_TABLE: &str = "ordermeta_migrations";

/// SQLSTATE `undefined_table`.
const UNDEFINED_TABLE: &str = "42P01";
/// SQLSTATE `invalid_schema_name`.
const INVALID_SCHEMA_NAME: &str = "3F000";

/// What the migrations table says about the embedded migrations.
enum State {
    /// Every embedded migration is applied, unchanged.
    Current,
    /// The first version to apply (the table, or the schema, may not exist yet).
    Behind(i64),
}

fn permission(e: sqlx::Error, schema: &Schema, role: &str) -> PgError {
    PgError::PermissionDenied {
        role: role.to_owned(),
        schema: schema.name().to_owned(),
        source: e,
    }
}

fn db(e: sqlx::Error, schema: &Schema, role: &str) -> PgError {
    if is_insufficient_privilege(&e) {
        permission(e, schema, role)
    } else {
        PgError::Database { source: e }
    }
}

/// Reads the migrations table and compares it with the embedded scripts. Checksums are
/// SHA-256 computed by the server, so this crate needs no hashing dependency.
async fn state(conn: &mut PgConnection, schema: &Schema, role: &str) -> Result<State, PgError> {
    let sql = format!(
        "SELECT m.version, m.checksum = sha256(convert_to(s.sql, 'UTF8')) AS same \
         FROM {}.{MIGRATIONS_TABLE} m \
         LEFT JOIN unnest($1::int8[], $2::text[]) AS s(version, sql) USING (version) \
         ORDER BY m.version",
        schema.quoted()
    );
    let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    let scripts: Vec<&str> = MIGRATIONS.iter().map(|m| m.sql).collect();
    let rows = match sqlx::query(&sql)
        .bind(&versions)
        .bind(&scripts)
        .fetch_all(&mut *conn)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            return match sqlstate(&e).as_deref() {
                Some(UNDEFINED_TABLE | INVALID_SCHEMA_NAME) => Ok(State::Behind(0)),
                _ => Err(db(e, schema, role)),
            };
        }
    };
    let mut applied = Vec::with_capacity(rows.len());
    for row in rows {
        let version: i64 = row.try_get(0).map_err(|e| db(e, schema, role))?;
        let same: Option<bool> = row.try_get(1).map_err(|e| db(e, schema, role))?;
        match same {
            None => {
                return Err(PgError::UnknownMigration {
                    schema: schema.name().to_owned(),
                    version,
                });
            }
            Some(false) => {
                return Err(PgError::MigrationChanged {
                    schema: schema.name().to_owned(),
                    version,
                });
            }
            Some(true) => applied.push(version),
        }
    }
    Ok(
        match MIGRATIONS.iter().find(|m| !applied.contains(&m.version)) {
            Some(m) => State::Behind(m.version),
            None => State::Current,
        },
    )
}

/// Checks the schema is fully migrated, without writing anything (migrations off).
pub(crate) async fn check(
    conn: &mut PgConnection,
    schema: &Schema,
    role: &str,
) -> Result<(), PgError> {
    match state(conn, schema, role).await? {
        State::Current => Ok(()),
        State::Behind(v) => Err(PgError::NotMigrated {
            schema: schema.name().to_owned(),
            version: MIGRATIONS
                .iter()
                .map(|m| m.version)
                .find(|&m| m >= v)
                .unwrap_or(v),
        }),
    }
}

/// Creates the schema if needed and applies every pending migration.
///
/// The common case (already migrated) is one read and needs no privilege beyond reading the
/// migrations table, so application roles that only have DML rights can start once an admin
/// has migrated the schema.
pub(crate) async fn run(
    conn: &mut PgConnection,
    schema: &Schema,
    role: &str,
) -> Result<(), PgError> {
    if let State::Current = state(conn, schema, role).await? {
        return Ok(());
    }
    let err = |e| db(e, schema, role);
    let mut tx = conn.begin().await.map_err(err)?;
    // Serialises concurrent migrators of this schema; released at commit or rollback.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("ordermeta-postgres migrate {}", schema.name()))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    // CREATE SCHEMA needs CREATE on the database even with IF NOT EXISTS, so only when missing.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema.name())
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
    if !exists {
        sqlx::raw_sql(&format!("CREATE SCHEMA {}", schema.quoted()))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
    }
    // The scripts name their objects unqualified; SET LOCAL ends with the transaction.
    sqlx::raw_sql(&format!(
        "SET LOCAL search_path TO {}; \
         CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ( \
             version BIGINT PRIMARY KEY, \
             description TEXT NOT NULL, \
             checksum BYTEA NOT NULL, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        schema.quoted()
    ))
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    // Another process may have migrated while we waited for the lock.
    let first = match state(&mut tx, schema, role).await? {
        State::Current => return tx.commit().await.map_err(err),
        State::Behind(v) => v,
    };
    for m in MIGRATIONS.iter().filter(|m| m.version >= first) {
        let failed = |e: sqlx::Error| {
            if is_insufficient_privilege(&e) {
                permission(e, schema, role)
            } else {
                PgError::Migration {
                    schema: schema.name().to_owned(),
                    version: m.version,
                    description: m.description,
                    source: e,
                }
            }
        };
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query(&format!(
            "INSERT INTO {MIGRATIONS_TABLE} (version, description, checksum) \
             VALUES ($1, $2, sha256(convert_to($3, 'UTF8')))"
        ))
        .bind(m.version)
        .bind(m.description)
        .bind(m.sql)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tracing::info!(
            schema = schema.name(),
            version = m.version,
            "applied migration"
        );
    }
    tx.commit().await.map_err(err)
}
