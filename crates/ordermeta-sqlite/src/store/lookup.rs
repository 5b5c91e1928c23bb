//! `update` (fields learnt after placement, no status change) and the lookups by the bot's own
//! identity, `find_by_client_id` and `find_by_label`.

use ordermeta_core::{
    ClientIdKey, OrderMetadata, OrderStatus, StoreError, UpdateRequest, to_micros, truncate_micros,
};
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};

use super::SqliteStore;
use crate::error::backend;
use crate::row;
use crate::sql::{FIND_BY_CLIENT_ID, FIND_BY_LABEL, SELECT_CLAIM, UPDATE, distinct};

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

impl SqliteStore {
    /// `update`'s compare-and-set: one `UPDATE … RETURNING`; when it matches no row, the
    /// status and version it lost to say `NotFound`, `StatusConflict` or a corrupt row.
    pub(super) async fn update_cas(
        &self,
        req: &UpdateRequest,
    ) -> Result<OrderMetadata, StoreError> {
        let id = req.order_id.as_str();
        let statuses = distinct(&req.statuses);
        // A version beyond i64::MAX is on no row: such a request is only read, never sent.
        let version = req.version.map(|v| i64::try_from(v).ok());
        let sendable = !matches!(version, Some(None));
        let sql = &UPDATE[usize::from(version.is_some())][statuses.len()];
        let at = to_micros(truncate_micros(req.at));
        let patch = &req.patch;
        let _writing = self.write_lock.lock().await;
        // A lost compare-and-set whose read finds the order allowed again (another process
        // wrote in between) is tried again; bounded, as each retry needs another writer.
        for _ in 0..8 {
            if sendable {
                let mut q = sqlx::query(sql)
                    .bind(at)
                    .bind(patch.indexer_id.as_deref())
                    .bind(patch.filled_quantity.as_deref())
                    .bind(patch.cancel_confirmed_at.map(to_micros))
                    .bind(id);
                for s in &statuses {
                    q = q.bind(s.as_str());
                }
                if let Some(Some(v)) = version {
                    q = q.bind(v);
                }
                let updated: Option<SqliteRow> =
                    q.fetch_optional(&self.writer).await.map_err(backend)?;
                if let Some(row) = updated {
                    return row::decode(&row).map_err(|e| e.for_order(id));
                }
            }
            let claim: Option<SqliteRow> = sqlx::query(SELECT_CLAIM)
                .bind(id)
                .fetch_optional(&self.writer)
                .await
                .map_err(backend)?;
            let claim = claim
                .as_ref()
                .map(row::claim)
                .transpose()
                .map_err(|e| e.for_order(id))?;
            let Some((status, _, _, stored_version)) = claim else {
                return Err(StoreError::NotFound {
                    order_id: id.to_owned(),
                });
            };
            let current: OrderStatus = status
                .parse()
                .map_err(|e| StoreError::invalid(Some(id), format!("column status: {e}")))?;
            let stored_version = u64::try_from(stored_version).map_err(|_| {
                StoreError::invalid(
                    Some(id),
                    format!("column version: {stored_version} is negative"),
                )
            })?;
            let allowed = (statuses.is_empty() || statuses.contains(&current))
                && req.version.is_none_or(|v| v == stored_version);
            if !allowed {
                let expected: &[OrderStatus] = if statuses.is_empty() {
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
        Err(StoreError::backend(format!(
            "order {id}: update kept losing to concurrent writers"
        )))
    }

    /// The newest record of a client id (see [`FIND_BY_CLIENT_ID`]).
    pub(super) async fn newest_by_client_id(
        &self,
        key: &ClientIdKey,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        let q = sqlx::query(FIND_BY_CLIENT_ID)
            .bind(key.owner.as_str())
            .bind(i64::from(key.subaccount_number))
            .bind(i64::from(key.clob_pair_id))
            .bind(i64::from(key.client_id));
        self.newest(q).await
    }

    /// The newest record carrying a label (see [`FIND_BY_LABEL`]).
    pub(super) async fn newest_by_label(
        &self,
        label: &str,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        self.newest(sqlx::query(FIND_BY_LABEL).bind(label)).await
    }

    /// The one row a lookup selects, decoded; a corrupt row is `InvalidMetadata` naming it.
    async fn newest(&self, q: Query<'_>) -> Result<Option<OrderMetadata>, StoreError> {
        let row = q.fetch_optional(&self.reader).await.map_err(backend)?;
        row.as_ref().map(row::decode).transpose()
    }
}

#[cfg(test)]
mod tests {
    use ordermeta_core::conformance::short_term;
    use ordermeta_core::{MetadataStore, OrderStatus};

    use crate::SqliteStore;
    use crate::sql::{FIND_BY_CLIENT_ID, FIND_BY_LABEL, UPDATE};

    async fn plan(store: &SqliteStore, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(store.pool())
                .await
                .expect("explain");
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
    }

    /// The lookups search their indexes on the whole key and read them in order: no scan,
    /// no sort (the newest is the first entry read backwards). `update` finds its row by
    /// primary key.
    #[tokio::test]
    async fn lookups_search_their_indexes_without_sorting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("plan.db"))
            .await
            .expect("open");
        // Some rows and statistics, so the plan is the one a real table gets.
        let records: Vec<_> = (0..200)
            .map(|i| {
                let mut m = short_term(&format!("p-{i}"), OrderStatus::Active, 100);
                m.dydx_order_id.client_id = i % 20;
                if i % 3 == 0 {
                    m = m.with_label(format!("label-{}", i % 7));
                }
                m
            })
            .collect();
        store.record_many(&records).await.expect("record_many");
        sqlx::query("ANALYZE")
            .execute(store.pool())
            .await
            .expect("analyze");

        let p = plan(&store, FIND_BY_CLIENT_ID).await;
        assert!(
            p.contains(
                "SEARCH dydx_order_metadata USING INDEX dydx_order_metadata_client_id_idx \
                 (owner=? AND subaccount_number=? AND clob_pair_id=? AND client_id=?)"
            ),
            "{p}"
        );
        assert!(!p.contains("TEMP B-TREE"), "no sort: {p}");
        let p = plan(&store, FIND_BY_LABEL).await;
        assert!(
            p.contains(
                "SEARCH dydx_order_metadata USING INDEX dydx_order_metadata_label_idx (label=?)"
            ),
            "{p}"
        );
        assert!(!p.contains("TEMP B-TREE"), "no sort: {p}");
        for by_version in UPDATE.iter() {
            for sql in by_version {
                let p = plan(&store, sql).await;
                assert!(
                    p.contains("SEARCH dydx_order_metadata USING INDEX sqlite_autoindex"),
                    "{sql}: {p}"
                );
            }
        }
        store.close().await;
    }
}
