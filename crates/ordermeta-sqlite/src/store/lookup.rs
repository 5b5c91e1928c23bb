//! The lookups by the bot's own identity, `find_by_client_id` and `find_by_label` (`update`'s
//! statement is with the other writes, in `crate::write`).

use ordermeta_core::{ClientIdKey, OrderMetadata, StoreError};
use sqlx::sqlite::{Sqlite, SqliteArguments};

use super::SqliteStore;
use crate::error::backend;
use crate::row;
use crate::sql::{FIND_BY_CLIENT_ID, FIND_BY_LABEL};

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

impl SqliteStore {
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
