//! Issue 13's columns and indexes in PostgreSQL: a schema at migration 2 holding records
//! upgrades in place (migration 3, once) and its records are then found, updated and
//! transitioned like new ones; indexes an operator built beforehand (`CONCURRENTLY`) are kept;
//! an `update` behind another session's row lock ends within its deadline and, when its
//! outcome is unknown, is resolved by reading back, never by sending it again. The semantics
//! themselves are the conformance suite's (`lookup` group).

mod common;

use std::time::Duration;

use chrono::Duration as ChronoDuration;
use ordermeta_core::conformance::{long_term, short_term, t0};
use ordermeta_core::{
    ClientIdKey, ErrorKind, Lease, MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus,
    StoreError, TransitionRequest, UpdateRequest,
};
use ordermeta_postgres::sqlx::{self, Connection as _, PgConnection};
use ordermeta_postgres::{PgError, PgStore, PgStoreOptions};
use ordermeta_testkit::{database_url, fails_within, poll_until, unique_name};

/// The operation deadline of the lock tests.
const DEADLINE: Duration = Duration::from_secs(1);
/// What a call may take beyond its deadline on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(4);

async fn exec(store: &PgStore, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `body` on a fresh schema of the shared server, dropping the schema after.
async fn with_schema<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let schema = unique_name(prefix);
    let r =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body(schema.clone()))).await;
    if let Ok(mut conn) = PgConnection::connect(&database_url()).await {
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut conn)
            .await;
    }
    if let Err(panic) = r {
        std::panic::resume_unwind(panic);
    }
}

async fn connect(schema: &str, opts: PgStoreOptions) -> Result<PgStore, StoreError> {
    opts.schema(schema).connect(&database_url()).await
}

fn placed(mut m: OrderMetadata, offset_s: i64) -> OrderMetadata {
    let at = t0() + ChronoDuration::seconds(offset_s);
    m.placed_at = at;
    m.updated_at = at;
    m.history[0].at = at;
    m
}

async fn versions(store: &PgStore) -> Vec<i64> {
    sqlx::query_scalar(&format!(
        "SELECT version FROM \"{}\".ordermeta_migrations ORDER BY version",
        store.schema()
    ))
    .fetch_all(store.pool())
    .await
    .expect("migrations")
}

/// The OIDs of migration 3's indexes, by name (none when they do not exist).
async fn lookup_indexes(store: &PgStore) -> Vec<(String, u32)> {
    let rows: Vec<(String, sqlx::postgres::types::Oid)> = sqlx::query_as(
        "SELECT c.relname::text, c.oid FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname IN \
         ('dydx_order_metadata_client_id_idx', 'dydx_order_metadata_label_idx') \
         ORDER BY c.relname",
    )
    .bind(store.schema())
    .fetch_all(store.pool())
    .await
    .expect("indexes");
    rows.into_iter().map(|(n, o)| (n, o.0)).collect()
}

/// Back to the schema as migration 2 left it: migration 3's columns dropped (their indexes
/// go with them, the client-id index named), its record deleted.
async fn back_to_migration_2(store: &PgStore) {
    exec(
        store,
        &format!(
            "DROP INDEX \"{s}\".dydx_order_metadata_client_id_idx; \
             ALTER TABLE {t} DROP COLUMN label, DROP COLUMN indexer_id, \
             DROP COLUMN filled_quantity, DROP COLUMN cancel_confirmed_at; \
             DELETE FROM \"{s}\".ordermeta_migrations WHERE version = 3",
            s = store.schema(),
            t = store.table()
        ),
    )
    .await;
    assert_eq!(versions(store).await, [1, 2]);
    assert!(lookup_indexes(store).await.is_empty());
}

#[tokio::test]
async fn a_schema_at_migration_2_upgrades_and_its_records_work_like_new_ones() {
    with_schema("lookup_upgrade", |schema| async move {
        let store = connect(&schema, PgStoreOptions::new())
            .await
            .expect("connect");
        let mut claimed = placed(
            long_term("old-claimed", OrderStatus::Cancelling, 2_000_000_000),
            1,
        );
        claimed.lease = Some(Lease::new("canceller-a", t0() + ChronoDuration::hours(1)));
        let old = vec![
            placed(short_term("old-1", OrderStatus::Active, 100), 0),
            placed(short_term("old-2", OrderStatus::Cancelled, 100), 5),
            claimed,
        ];
        store.record_many(&old).await.expect("record");
        back_to_migration_2(&store).await;
        store.close().await;

        let store = connect(&schema, PgStoreOptions::new())
            .await
            .expect("migrate");
        assert_eq!(versions(&store).await, [1, 2, 3]);
        assert_eq!(lookup_indexes(&store).await.len(), 2);
        for m in &old {
            assert_eq!(
                store.get_required(&m.order_id).await.expect("get"),
                *m,
                "old records read back unchanged, the new fields unset"
            );
        }
        let key = ClientIdKey::of(&old[0]);
        assert_eq!(
            store.find_by_client_id(&key).await.expect("find").as_ref(),
            Some(&old[1]),
            "old rows are in the new index"
        );

        let update = UpdateRequest::new("old-1")
            .in_statuses(&[OrderStatus::Active])
            .if_version(1)
            .at(t0() + ChronoDuration::seconds(10))
            .indexer_id("0a4d0e53-3c7f-5a4c-9a3b-6a0e1fd1f0aa")
            .filled_quantity("0.0004");
        let mut old_1 = old[0].clone();
        update.apply(&mut old_1);
        assert_eq!(store.update(&update).await.expect("update"), old_1);
        let confirm = TransitionRequest::new(
            "old-claimed",
            &[OrderStatus::Cancelling],
            OrderStatus::Cancelled,
        )
        .require_lease("canceller-a")
        .at(t0() + ChronoDuration::seconds(11))
        .cancel_confirmed_at(t0() + ChronoDuration::seconds(11));
        let mut old_claimed = old[2].clone();
        confirm.apply(&mut old_claimed);
        assert_eq!(
            store.transition(&confirm).await.expect("cancel"),
            old_claimed
        );
        let new = placed(short_term("new-1", OrderStatus::Pending, 100), 20).with_label("bot-1");
        store.record(&new).await.expect("record new");
        store.close().await;

        // Durable, and migrated once.
        let store = connect(&schema, PgStoreOptions::new().migrate(false))
            .await
            .expect("reconnect without migrating");
        assert_eq!(versions(&store).await, [1, 2, 3]);
        assert_eq!(store.get_required("old-1").await.expect("get"), old_1);
        assert_eq!(
            store.get_required("old-claimed").await.expect("get"),
            old_claimed
        );
        assert_eq!(
            store.find_by_label("bot-1").await.expect("find"),
            Some(new.clone())
        );
        assert_eq!(
            store.find_by_client_id(&key).await.expect("find"),
            Some(new)
        );
        store.close().await;
    })
    .await;
}

/// The way to upgrade a large table without blocking the bots: add the columns and build
/// the indexes `CONCURRENTLY` by hand, then start the new version. The migration keeps those
/// indexes (same OIDs: not rebuilt) and records itself.
#[tokio::test]
async fn indexes_built_beforehand_concurrently_are_kept() {
    with_schema("lookup_prebuilt", |schema| async move {
        let store = connect(&schema, PgStoreOptions::new())
            .await
            .expect("connect");
        let old = short_term("old-1", OrderStatus::Active, 100);
        store.record(&old).await.expect("record");
        back_to_migration_2(&store).await;
        let t = store.table();
        // What an operator runs (CONCURRENTLY cannot run inside a transaction: one
        // statement at a time).
        for sql in [
            format!(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS label TEXT, \
                 ADD COLUMN IF NOT EXISTS indexer_id TEXT, \
                 ADD COLUMN IF NOT EXISTS filled_quantity TEXT, \
                 ADD COLUMN IF NOT EXISTS cancel_confirmed_at TIMESTAMPTZ"
            ),
            format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS dydx_order_metadata_client_id_idx \
                 ON {t} (owner, subaccount_number, clob_pair_id, client_id, placed_at, order_id)"
            ),
            format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS dydx_order_metadata_label_idx \
                 ON {t} (label, placed_at, order_id) WHERE label IS NOT NULL"
            ),
        ] {
            exec(&store, &sql).await;
        }
        let built = lookup_indexes(&store).await;
        assert_eq!(built.len(), 2);
        // Still at migration 2: a store of this version refuses to start without migrating.
        let e = connect(&schema, PgStoreOptions::new().migrate(false))
            .await
            .expect_err("not migrated");
        assert!(
            matches!(
                common::pg_error(&e),
                PgError::NotMigrated { version: 3, .. }
            ),
            "{e:?}"
        );
        store.close().await;

        let store = connect(&schema, PgStoreOptions::new())
            .await
            .expect("migrate");
        assert_eq!(versions(&store).await, [1, 2, 3]);
        assert_eq!(lookup_indexes(&store).await, built, "kept, not rebuilt");
        assert_eq!(
            store
                .find_by_client_id(&ClientIdKey::of(&old))
                .await
                .expect("find"),
            Some(old)
        );
        store.close().await;
    })
    .await;
}

/// Another session holds the order's row lock. With the default server timeouts an update
/// fails with `LockTimeout` within its deadline, nothing written. With them off only the
/// deadline bounds it: `Timeout` (its read-back found it not applied), and the statement the
/// server still held applies once the lock is gone; the same versioned update sent again
/// then conflicts, which is why a timed-out update is read back, never blindly repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_behind_a_row_lock_ends_within_its_deadline() {
    with_schema("lookup_lock", |schema| async move {
        let store = connect(&schema, PgStoreOptions::new().operation_timeout(DEADLINE))
            .await
            .expect("connect");
        let no_server_timeouts = PgStoreOptions::new()
            .operation_timeout(DEADLINE)
            .lock_timeout(Duration::ZERO)
            .statement_timeout(Duration::ZERO);
        let unbounded = connect(&schema, no_server_timeouts).await.expect("connect");
        store
            .record(&short_term("held", OrderStatus::Active, 100))
            .await
            .expect("record");
        let mut other = PgConnection::connect(&database_url())
            .await
            .expect("second session");
        sqlx::raw_sql(&format!(
            "BEGIN; SELECT order_id FROM {} WHERE order_id = 'held' FOR UPDATE",
            store.table()
        ))
        .execute(&mut other)
        .await
        .expect("lock the row");

        let update = UpdateRequest::new("held")
            .if_version(1)
            .filled_quantity("0.0005");
        let (e, _) = fails_within(
            "update of a locked row",
            DEADLINE + MARGIN,
            store.update(&update),
        )
        .await;
        assert!(
            matches!(common::pg_error(&e), PgError::LockTimeout { .. }),
            "{e:?}"
        );
        let (e, took) = fails_within(
            "update without server timeouts",
            DEADLINE + Duration::from_secs(1) + MARGIN,
            unbounded.update(&update),
        )
        .await;
        assert!(
            matches!(e, StoreError::Timeout { operation: "update", after } if after == DEADLINE),
            "{e:?}"
        );
        assert!(took >= DEADLINE, "{took:?}");
        let m = store.get_required("held").await.expect("get");
        assert_eq!((m.version, m.filled_quantity), (1, None), "not yet written");

        sqlx::raw_sql("COMMIT")
            .execute(&mut other)
            .await
            .expect("release");
        poll_until(
            "the timed-out update applies",
            Duration::from_secs(10),
            || async {
                matches!(
                    store.get("held").await,
                    Ok(Some(m)) if m.filled_quantity.as_deref() == Some("0.0005")
                )
            },
        )
        .await;
        let m = store.get_required("held").await.expect("get");
        assert_eq!(m.version, 2, "applied once");
        let again = store.update(&update).await;
        assert_eq!(
            again.as_ref().err().map(StoreError::kind),
            Some(ErrorKind::StatusConflict),
            "sent again, it would not apply: {again:?}"
        );
        other.close().await.expect("close");
        unbounded.close().await;
        store.close().await;
    })
    .await;
}
