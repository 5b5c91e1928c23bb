//! Embedded migrations, recorded in the store's own `ordermeta_migrations` table.
//!
//! Not sqlx's `Migrator`: in sqlx 0.8 it always records into `_sqlx_migrations`, the table
//! the host application's own sqlx migrations use. Sharing it makes each side see the other's
//! versions as unknown and refuse to start (apalis#439). The runner is small: one
//! `BEGIN IMMEDIATE` transaction applies every missing script and records it, so processes
//! starting at once on one file migrate exactly once and a failed script leaves nothing.

use ordermeta_core::{now, to_micros};
use sqlx::SqlitePool;

use crate::error::SqliteError;

/// The table recording applied migrations.
pub const MIGRATIONS_TABLE: &str = "ordermeta_migrations";

/// One embedded migration script.
#[derive(Debug)]
struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Scripts are append-only: an applied script must never change
/// (its checksum is verified at every start).
const MIGRATIONS: &[Migration] = &[
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

/// FNV-1a (64 bit) of the script with `\r` removed, as hex: a checkout with CRLF line
/// endings must not look like a modified migration.
fn checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes().filter(|&b| b != b'\r') {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn db_err(reason: &str) -> impl FnOnce(sqlx::Error) -> SqliteError + '_ {
    move |e| SqliteError::Migration {
        reason: reason.to_owned(),
        source: Some(e),
    }
}

/// Which migrations are applied, checked against the embedded ones: an unknown version (a
/// newer ordermeta migrated this file) or a changed checksum is an error.
fn pending(applied: &[(i64, String)]) -> Result<Vec<&'static Migration>, SqliteError> {
    for (version, sum) in applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            None => {
                return Err(SqliteError::Migration {
                    reason: format!(
                        "the database has migration {version}, unknown to this ordermeta-sqlite \
                         (was it created by a newer version?)"
                    ),
                    source: None,
                });
            }
            Some(m) if checksum(m.sql) != *sum => {
                return Err(SqliteError::Migration {
                    reason: format!(
                        "migration {version} ({}) was applied with checksum {sum}, but the \
                         embedded script has {}; applied migrations must never change",
                        m.description,
                        checksum(m.sql)
                    ),
                    source: None,
                });
            }
            Some(_) => {}
        }
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect())
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS ordermeta_migrations (
    version     INTEGER NOT NULL PRIMARY KEY,
    description TEXT    NOT NULL,
    checksum    TEXT    NOT NULL,
    applied_at  INTEGER NOT NULL
) STRICT";

const SELECT_APPLIED: &str = "SELECT version, checksum FROM ordermeta_migrations ORDER BY version";

/// Applies the missing migrations. An up-to-date database costs two reads and takes no
/// write lock.
pub(crate) async fn run(pool: &SqlitePool) -> Result<(), SqliteError> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(MIGRATIONS_TABLE)
            .fetch_optional(pool)
            .await
            .map_err(db_err("cannot read the schema"))?;
    if exists.is_some() {
        let applied: Vec<(i64, String)> = sqlx::query_as(SELECT_APPLIED)
            .fetch_all(pool)
            .await
            .map_err(db_err("cannot read ordermeta_migrations"))?;
        if pending(&applied)?.is_empty() {
            return Ok(());
        }
    }

    // IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a second
    // process starting now waits here and then finds everything applied.
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db_err("cannot start the migration transaction"))?;
    sqlx::raw_sql(CREATE_TABLE)
        .execute(&mut *tx)
        .await
        .map_err(db_err("cannot create ordermeta_migrations"))?;
    let applied: Vec<(i64, String)> = sqlx::query_as(SELECT_APPLIED)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err("cannot read ordermeta_migrations"))?;
    for m in pending(&applied)? {
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| SqliteError::Migration {
                reason: format!("migration {} ({}) failed", m.version, m.description),
                source: Some(e),
            })?;
        sqlx::query(
            "INSERT INTO ordermeta_migrations (version, description, checksum, applied_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(m.version)
        .bind(m.description)
        .bind(checksum(m.sql))
        .bind(to_micros(now()))
        .execute(&mut *tx)
        .await
        .map_err(db_err("cannot record a migration"))?;
        tracing::info!(
            version = m.version,
            description = m.description,
            "ordermeta-sqlite: applied migration"
        );
    }
    tx.commit()
        .await
        .map_err(db_err("cannot commit the migrations"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_carriage_returns() {
        assert_eq!(checksum("a\r\nb"), checksum("a\nb"));
        assert_ne!(checksum("a\nb"), checksum("a\nc"));
    }

    #[test]
    fn versions_are_increasing_and_unique() {
        for w in MIGRATIONS.windows(2) {
            assert!(w[0].version < w[1].version);
        }
    }

    #[test]
    fn unknown_and_modified_migrations_are_refused() {
        assert!(pending(&[(99, "x".into())]).is_err());
        assert!(pending(&[(1, "0000".into())]).is_err());
        let all: Vec<(i64, String)> = MIGRATIONS
            .iter()
            .map(|m| (m.version, checksum(m.sql)))
            .collect();
        assert!(pending(&all).expect("up to date").is_empty());
        // A database created before leases gets exactly the migrations after it.
        let behind = pending(&all[..1]).expect("behind");
        assert_eq!(behind.iter().map(|m| m.version).collect::<Vec<_>>(), [2, 3]);
        let behind = pending(&all[..2]).expect("one behind");
        assert_eq!(behind.iter().map(|m| m.version).collect::<Vec<_>>(), [3]);
        assert_eq!(pending(&[]).expect("fresh").len(), MIGRATIONS.len());
    }
}
