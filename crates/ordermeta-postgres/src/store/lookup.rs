//! `update` (fields learnt after placement, no status change) and the lookups by the bot's own
//! identity, `find_by_client_id` and `find_by_label`.

use ordermeta_core::{
    ClientIdKey, OrderMetadata, OrderStatus, StoreError, UpdateRequest, truncate_micros,
};
use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgRow};

use super::PgStore;
use crate::error::PgError;
use crate::row;

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

impl PgStore {
    /// `update`'s compare-and-set: one `UPDATE … RETURNING`; when it matches no row, the
    /// status and version it lost to say `NotFound`, `StatusConflict` or a corrupt row.
    pub(super) async fn update_cas(
        &self,
        req: &UpdateRequest,
    ) -> Result<OrderMetadata, StoreError> {
        let id = req.order_id.as_str();
        let statuses: Vec<&str> = req.statuses.iter().map(|s| s.as_str()).collect();
        // A version beyond i64::MAX is on no row: such a request is only read, never sent.
        let version = req.version.map(|v| i64::try_from(v).ok());
        let sendable = !matches!(version, Some(None));
        let patch = &req.patch;
        // A lost compare-and-set whose read finds the order allowed again (another writer
        // moved it back in between) is tried again; bounded, as each retry needs a writer.
        for _ in 0..3 {
            if sendable {
                let row = sqlx::query(&self.inner.sql.update)
                    .bind(id)
                    .bind(truncate_micros(req.at))
                    .bind(patch.indexer_id.as_deref())
                    .bind(patch.filled_quantity.as_deref())
                    .bind(patch.cancel_confirmed_at)
                    .bind(&statuses)
                    .bind(version.flatten())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| self.err(e, Some(id)))?;
                if let Some(row) = row {
                    return row::decode(&row).map_err(|e| e.for_order(id));
                }
            }
            let claim: Option<(String, Option<String>, Option<i64>, i64)> =
                sqlx::query_as(&self.inner.sql.claim_of)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| self.err(e, Some(id)))?;
            let Some((status, _, _, stored_version)) = claim else {
                return Err(StoreError::NotFound {
                    order_id: id.to_owned(),
                });
            };
            let current: OrderStatus = status
                .parse()
                .map_err(|e| StoreError::from(e).for_order(id))?;
            let stored_version = u64::try_from(stored_version).map_err(|_| {
                StoreError::invalid(
                    Some(id),
                    format!("column version: {stored_version} is negative"),
                )
            })?;
            let allowed = (req.statuses.is_empty() || req.statuses.contains(&current))
                && req.version.is_none_or(|v| v == stored_version);
            if !allowed {
                let expected: &[OrderStatus] = if req.statuses.is_empty() {
                    &OrderStatus::ALL
                } else {
                    &req.statuses
                };
                return Err(StoreError::conflict(id, current, expected));
            }
            if stored_version >= i64::MAX as u64 {
                return Err(StoreError::invalid(
                    Some(id),
                    "column version: at its maximum, the record can no longer change",
                ));
            }
        }
        Err(StoreError::backend(PgError::Database {
            source: sqlx::Error::Protocol(format!(
                "order {id} kept changing during the update; try again"
            )),
        }))
    }

    /// The newest record of a client id.
    pub(super) async fn newest_by_client_id(
        &self,
        key: &ClientIdKey,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        // PostgreSQL text cannot hold NUL: no record has such an owner (and sending it would
        // be a data error).
        if key.owner.contains('\0') {
            return Ok(None);
        }
        let q = sqlx::query(&self.inner.sql.find_by_client_id)
            .bind(key.owner.as_str())
            .bind(i64::from(key.subaccount_number))
            .bind(i64::from(key.clob_pair_id))
            .bind(i64::from(key.client_id));
        self.newest(q).await
    }

    /// The newest record carrying a label.
    pub(super) async fn newest_by_label(
        &self,
        label: &str,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        if label.contains('\0') {
            return Ok(None);
        }
        self.newest(sqlx::query(&self.inner.sql.find_by_label).bind(label))
            .await
    }

    /// The one row a lookup selects, decoded; a corrupt row is `InvalidMetadata` naming it.
    async fn newest(&self, q: Query<'_>) -> Result<Option<OrderMetadata>, StoreError> {
        let row: Option<PgRow> = q
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e, None))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id = row::order_id(&row)?;
        row::decode(&row).map(Some).map_err(|e| e.for_order(&id))
    }
}

#[cfg(test)]
mod tests {
    use ordermeta_core::conformance::short_term;
    use ordermeta_core::{MetadataStore, OrderStatus};
    use sqlx::{Connection as _, PgConnection, Row as _};

    use crate::{PgStore, PgStoreOptions};

    /// The plan of `sql` with `args` (SQL literals) as a prepared statement's generic plan
    /// (what a statement executed many times may get) and as a custom plan for those values.
    async fn plans(conn: &mut PgConnection, sql: &str, args: &str) -> [String; 2] {
        let mut out = [String::new(), String::new()];
        for (i, mode) in ["force_generic_plan", "force_custom_plan"]
            .iter()
            .enumerate()
        {
            let rows = sqlx::raw_sql(&format!(
                "SET plan_cache_mode = {mode}; PREPARE p AS {sql}; EXPLAIN EXECUTE p({args}); \
                 DEALLOCATE p"
            ))
            .fetch_all(&mut *conn)
            .await
            .expect("explain");
            let lines: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>(0).expect("plan line"))
                .collect();
            out[i] = lines.join("\n");
        }
        out
    }

    /// The lookups read the newest entry of their index range backwards (no sequential
    /// scan, no sort), generic and custom plans alike, on a table with statistics; `update`
    /// finds its row by primary key.
    #[tokio::test]
    async fn lookups_scan_their_indexes_backwards_without_sorting() {
        let url = ordermeta_testkit::database_url();
        let store: PgStore = PgStoreOptions::new()
            .schema(ordermeta_testkit::unique_name("plan"))
            .connect(&url)
            .await
            .unwrap_or_else(|e| ordermeta_testkit::env::postgres_missing(&url, e));
        let records: Vec<_> = (0..5_000)
            .map(|i| {
                let mut m = short_term(&format!("p-{i}"), OrderStatus::Active, 100);
                m.dydx_order_id.client_id = i % 50;
                m.placed_at += chrono::Duration::milliseconds(i64::from(i));
                m.updated_at = m.placed_at;
                m.history[0].at = m.placed_at;
                if i % 3 == 0 {
                    m = m.with_label(format!("label-{}", i % 20));
                }
                m
            })
            .collect();
        store.record_many(&records).await.expect("record_many");
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        let t = store.table();
        sqlx::raw_sql(&format!("ANALYZE {t}"))
            .execute(&mut conn)
            .await
            .expect("analyze");
        let sql = &store.inner.sql;
        let owner = &records[0].dydx_order_id.owner;
        let cases = [
            (
                &sql.find_by_client_id,
                format!("'{owner}', 0, 0, 7"),
                "Index Scan Backward using dydx_order_metadata_client_id_idx",
            ),
            (
                &sql.find_by_label,
                "'label-3'".to_owned(),
                "Index Scan Backward using dydx_order_metadata_label_idx",
            ),
            (
                &sql.update,
                "'p-7', now(), NULL, '1', NULL, '{active}', 1".to_owned(),
                "Index Scan using dydx_order_metadata_pkey",
            ),
        ];
        for (statement, args, expected) in cases {
            for plan in plans(&mut conn, statement, &args).await {
                eprintln!("{plan}\n");
                assert!(plan.contains(expected), "{statement}\n{plan}");
                assert!(!plan.contains("Seq Scan"), "{plan}");
                assert!(!plan.contains("Sort"), "{plan}");
            }
        }
        sqlx::raw_sql(&format!("DROP SCHEMA \"{}\" CASCADE", store.schema()))
            .execute(&mut conn)
            .await
            .expect("drop schema");
        conn.close().await.expect("close");
        store.close().await;
    }
}
