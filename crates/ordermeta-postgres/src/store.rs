//! [`PgStore`]: the [`MetadataStore`] implementation. Connecting is
//! [`PgStoreOptions`](crate::PgStoreOptions)' job; the statements are built in `sql`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ordermeta_core::backend::{record_applied, transition_applied, update_applied};
use ordermeta_core::{
    ClientIdKey, ExpireRequest, InvalidRecord, LeaseCondition, ListQuery, MetadataStore,
    OrderMetadata, OrderStatus, Page, StoreError, TransitionRequest, UpdateRequest, to_micros,
    truncate_micros,
};
use sqlx::postgres::PgPool;

use crate::cas::Cas;
use crate::error::{PgError, is_unique_violation, op_error};
use crate::group::{GroupCommit, GroupCommitStats, GroupOptions, Outcome};
use crate::row::{self, Columns};
use crate::schema::Schema;
use crate::sql::{Sql, TABLE};
use ordermeta_core::backend::Deadlines;

mod lookup;

#[derive(Debug)]
struct Inner {
    schema: Schema,
    role: String,
    sql: Arc<Sql>,
    purge_batch_size: i64,
    deadlines: Deadlines,
    /// `None`: group commit off (or no tokio runtime to run its writers on).
    group: Option<GroupCommit>,
}

/// A [`MetadataStore`] on PostgreSQL, over a sqlx pool. Cheap to clone (the clones share the
/// pool); build one per process and share it.
///
/// See the [crate docs](crate) for the schema, pool sizing, deadlines and the partitioning
/// measurements.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    inner: Arc<Inner>,
}

impl PgStore {
    /// A store over `pool`, in `schema`, connected as `role` (named in error messages).
    pub(crate) fn new(
        pool: PgPool,
        schema: Schema,
        role: String,
        purge_batch_size: u32,
        deadlines: Deadlines,
        group: Option<GroupOptions>,
    ) -> Self {
        let sql = Arc::new(Sql::new(&schema));
        let group = group.and_then(|opts| GroupCommit::start(&pool, &sql, opts));
        PgStore {
            pool,
            inner: Arc::new(Inner {
                sql,
                schema,
                role,
                purge_batch_size: i64::from(purge_batch_size),
                deadlines,
                group,
            }),
        }
    }

    /// Whether concurrent writes are group-committed
    /// ([`PgStoreOptions::group_commit`](crate::PgStoreOptions::group_commit)).
    pub fn group_commit(&self) -> bool {
        self.inner.group.is_some()
    }

    /// What the group commit has done so far (all zero when it is off): for metrics, and
    /// for tests that need to know a batch formed.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.inner
            .group
            .as_ref()
            .map(GroupCommit::stats)
            .unwrap_or_default()
    }

    /// The pool (for health metrics, or queries of your own).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        self.inner.schema.name()
    }

    /// The schema-qualified, quoted table name, e.g. `"ordermeta".dydx_order_metadata`.
    pub fn table(&self) -> String {
        format!("{}.{TABLE}", self.inner.schema.quoted())
    }

    /// The deadline of every call
    /// ([`PgStoreOptions::operation_timeout`](crate::PgStoreOptions::operation_timeout)).
    pub fn operation_timeout(&self) -> Duration {
        self.inner.deadlines.operation
    }

    /// Closes the pool: waits for connections in use to come back, then closes them all.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn err(&self, e: sqlx::Error, order_id: Option<&str>) -> StoreError {
        op_error(e, &self.inner.role, self.inner.schema.name(), order_id)
    }

    fn deadlines(&self) -> &Deadlines {
        &self.inner.deadlines
    }

    /// The `AlreadyExists` of a refused batch, naming the first id (in batch order) that is
    /// taken or repeated, as the reference store does.
    async fn duplicate_in(&self, metas: &[OrderMetadata]) -> StoreError {
        let ids: Vec<&str> = metas.iter().map(|m| m.order_id.as_str()).collect();
        let existing: HashSet<String> = sqlx::query_scalar(&self.inner.sql.select_existing)
            .bind(&ids)
            .fetch_all(&self.pool)
            .await
            .map(|v: Vec<String>| v.into_iter().collect())
            .unwrap_or_default();
        let mut seen = HashSet::new();
        let culprit = ids
            .iter()
            .find(|id| existing.contains(**id) || !seen.insert(**id))
            .or(ids.first())
            .map(|s| (*s).to_owned())
            .unwrap_or_default();
        StoreError::AlreadyExists { order_id: culprit }
    }

    async fn fetch(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
        let row = sqlx::query(&self.inner.sql.select_one)
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e, Some(order_id)))?;
        match row {
            None => Ok(None),
            Some(row) => row::decode(&row)
                .map(Some)
                .map_err(|e| e.for_order(order_id)),
        }
    }

    /// Whether a whole batch reads back exactly as written (one query; the batch is one
    /// statement, so it applied entirely or not at all).
    async fn batch_applied(&self, metas: &[OrderMetadata]) -> Result<Option<()>, StoreError> {
        let ids: Vec<&str> = metas.iter().map(|m| m.order_id.as_str()).collect();
        let rows = sqlx::query(&self.inner.sql.select_many)
            .bind(&ids)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e, None))?;
        let mut stored = HashMap::with_capacity(rows.len());
        for r in &rows {
            let m = row::decode(r)?;
            stored.insert(m.order_id.clone(), m);
        }
        let all = metas.iter().all(|m| {
            stored
                .get(&m.order_id)
                .is_some_and(|s| record_applied(m, s))
        });
        Ok(all.then_some(()))
    }

    async fn insert(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        let e = row::encode(meta)?;
        let r = e
            .bind(sqlx::query(&self.inner.sql.insert_one))
            .execute(&self.pool)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(err) if is_unique_violation(&err) => Err(StoreError::AlreadyExists {
                order_id: meta.order_id.clone(),
            }),
            Err(err) => Err(self.err(err, Some(&meta.order_id))),
        }
    }

    async fn insert_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError> {
        let mut c = Columns::with_capacity(metas.len());
        for m in metas {
            c.push(row::encode(m)?);
        }
        // One statement: atomic on its own, so the batch is all or nothing without a
        // transaction round trip. A repeated id inside the batch violates the primary key too.
        let r = c
            .bind(sqlx::query(&self.inner.sql.insert_many))
            .execute(&self.pool)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(err) if is_unique_violation(&err) => Err(self.duplicate_in(metas).await),
            Err(err) => Err(self.err(err, None)),
        }
    }

    /// Today's single-statement compare-and-set, with its resolution of a loss. `lost_first`:
    /// the first attempt already ran (in a group commit batch) and did not hold.
    async fn compare_and_set(
        &self,
        req: &TransitionRequest,
        cas: &Cas,
        lost_first: bool,
    ) -> Result<OrderMetadata, StoreError> {
        let id = req.order_id.as_str();
        let sql = &self.inner.sql;
        let at = req.history_entry().at;
        // A lost compare-and-set re-reads the status and lease to report them. If the order
        // has meanwhile come back to where the request allows it (cancelling -> active), the
        // update is tried again: reporting a conflict whose current state is allowed would be
        // nonsense. Bounded, as every retry needs another writer to have moved the order.
        for attempt in 0..3 {
            if attempt > 0 || !lost_first {
                let row = cas
                    .bind_single(sql)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| self.err(e, Some(id)))?;
                if let Some(row) = row {
                    return row::decode(&row).map_err(|e| e.for_order(id));
                }
            }
            let claim: Option<(String, Option<String>, Option<i64>, i64)> =
                sqlx::query_as(&sql.claim_of)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| self.err(e, Some(id)))?;
            let Some((status, token, until, version)) = claim else {
                return Err(StoreError::NotFound {
                    order_id: id.to_owned(),
                });
            };
            let current: OrderStatus = status
                .parse()
                .map_err(|e| StoreError::from(e).for_order(id))?;
            if let Some(us) = until {
                row::time_from_micros(us, "lease_until").map_err(|e| e.for_order(id))?;
            }
            // The same condition as the SQL's, on the columns as stored.
            let lease_holds = match &req.require {
                None => true,
                Some(LeaseCondition::Expired) => until.is_none_or(|u| u <= to_micros(at)),
                Some(LeaseCondition::HeldBy(t)) => token.as_deref() == Some(t.as_str()),
            };
            // A lease where none can be (half of one, or on an order not being cancelled) is
            // a corrupt row, not a conflict: its own claim says so instead of looking live.
            if token.is_some() != until.is_some()
                || (token.is_some() && current != OrderStatus::Cancelling)
            {
                return Err(StoreError::invalid(
                    Some(id),
                    format!("lease columns: a lease that cannot be on a {current} order"),
                ));
            }
            if !req.from.contains(&current) || !lease_holds {
                return Err(StoreError::conflict(id, current, &req.from));
            }
            if version == i64::MAX {
                return Err(StoreError::invalid(
                    Some(id),
                    "column version: at its maximum, the record can no longer change",
                ));
            }
        }
        Err(StoreError::backend(PgError::Database {
            source: sqlx::Error::Protocol(format!(
                "order {id} kept changing status during the transition; try again"
            )),
        }))
    }

    async fn list_page(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.effective_limit() as usize;
        let mut sql = String::with_capacity(self.inner.sql.list_head.len() + 160);
        sql.push_str(&self.inner.sql.list_head);
        let mut n = 0;
        let mut next_param = || {
            n += 1;
            n
        };
        let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
        if !statuses.is_empty() {
            let _ = write!(sql, " AND status = ANY(${})", next_param());
        }
        if query.owner.is_some() {
            let _ = write!(sql, " AND owner = ${}", next_param());
        }
        if query.subaccount_number.is_some() {
            let _ = write!(sql, " AND subaccount_number = ${}", next_param());
        }
        if query.symbol.is_some() {
            let _ = write!(sql, " AND symbol = ${}", next_param());
        }
        if query.after.is_some() {
            let _ = write!(sql, " AND order_id > ${}", next_param());
        }
        let _ = write!(sql, " ORDER BY order_id LIMIT ${}", next_param());

        let mut q = sqlx::query(&sql);
        if !statuses.is_empty() {
            q = q.bind(&statuses);
        }
        if let Some(owner) = &query.owner {
            q = q.bind(owner);
        }
        if let Some(sub) = query.subaccount_number {
            q = q.bind(i64::from(sub));
        }
        if let Some(symbol) = &query.symbol {
            q = q.bind(symbol);
        }
        if let Some(after) = &query.after {
            q = q.bind(after);
        }
        // One row more than the page tells whether another page follows.
        q = q.bind(limit as i64 + 1);
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e, None))?;

        let mut page = Page {
            items: Vec::with_capacity(rows.len().min(limit)),
            ..Page::default()
        };
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        for row in rows {
            match row::decode(row) {
                Ok(m) => page.items.push(m),
                // A corrupt row is reported, not skipped, and still advances the cursor.
                Err(e) => {
                    let id = row::order_id(row)?;
                    page.invalid.push(InvalidRecord {
                        reason: e.for_order(&id).to_string(),
                        order_id: id,
                    });
                }
            }
        }
        if more && let Some(last) = rows.last() {
            page.next = Some(row::order_id(last)?);
        }
        Ok(page)
    }

    /// One batch of an expire: at most `purge_batch_size` orders, one short statement.
    async fn expire_batch(&self, req: &ExpireRequest, entry: &str) -> Result<u64, StoreError> {
        let r = sqlx::query(&self.inner.sql.expire)
            .bind(req.height.map(i64::from))
            .bind(req.block_time.map(i64::from))
            .bind(truncate_micros(req.at))
            .bind(entry)
            .bind(self.inner.purge_batch_size)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e, None))?;
        Ok(r.rows_affected())
    }

    /// Logs the due open orders an expire had to leave (their version cannot be bumped).
    async fn report_stuck(&self, req: &ExpireRequest) -> Result<(), StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(&self.inner.sql.expire_stuck)
            .bind(req.height.map(i64::from))
            .bind(req.block_time.map(i64::from))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e, None))?;
        for order_id in ids {
            tracing::warn!(
                order_id,
                "ordermeta-postgres: due order not expired: its version is at the maximum"
            );
        }
        Ok(())
    }

    async fn purge_batch(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let r = sqlx::query(&self.inner.sql.purge_batch)
            .bind(older_than)
            .bind(self.inner.purge_batch_size)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e, None))?;
        Ok(r.rows_affected())
    }
}

/// `record` and `transition` through the group commit, when it is on.
impl PgStore {
    /// One `record`: alone, today's single statement; beside other writes, queued for a
    /// group commit batch.
    async fn record_now(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        let Some(group) = &self.inner.group else {
            return self.insert(meta).await;
        };
        let entered = group.enter();
        if entered.alone {
            return self.insert(meta).await;
        }
        // What cannot be encoded fails this caller here, never a batch.
        row::encode(meta)?;
        let exists = || StoreError::AlreadyExists {
            order_id: meta.order_id.clone(),
        };
        match group.record(Arc::new(meta.clone())).await {
            Outcome::Inserted => Ok(()),
            Outcome::Exists => Err(exists()),
            Outcome::Failed(e) if is_unique_violation(&e) => Err(exists()),
            Outcome::Failed(e) => Err(self.err(e, Some(&meta.order_id))),
            Outcome::Unknown(e) => {
                let stored = self.fetch(&meta.order_id).await?;
                match stored.filter(|s| record_applied(meta, s)) {
                    Some(_) => Ok(()),
                    None => Err(unknown(&e)),
                }
            }
            // Nothing of it was written; `Won`/`Lost` are a transition's answers.
            Outcome::Alone | Outcome::Won(_) | Outcome::Lost => self.insert(meta).await,
        }
    }

    /// One transition: alone, today's single statement; beside other writes, queued for a
    /// group commit batch. A loss is resolved as after the single statement.
    async fn transition_now(&self, req: &TransitionRequest) -> Result<OrderMetadata, StoreError> {
        let cas = Arc::new(Cas::new(req));
        let Some(group) = &self.inner.group else {
            return self.compare_and_set(req, &cas, false).await;
        };
        let entered = group.enter();
        if entered.alone {
            return self.compare_and_set(req, &cas, false).await;
        }
        let id = req.order_id.as_str();
        match group.transition(cas.clone()).await {
            Outcome::Won(row) => row::decode(&row).map_err(|e| e.for_order(id)),
            Outcome::Lost => self.compare_and_set(req, &cas, true).await,
            Outcome::Failed(e) => Err(self.err(e, Some(id))),
            Outcome::Unknown(e) => {
                let stored = self.fetch(id).await?;
                stored
                    .filter(|s| transition_applied(req, s))
                    .ok_or_else(|| unknown(&e))
            }
            // Nothing of it was written; `Inserted`/`Exists` are a record's answers.
            Outcome::Alone | Outcome::Inserted | Outcome::Exists => {
                self.compare_and_set(req, &cas, false).await
            }
        }
    }
}

/// The error of a batched write whose statement failed mid-way and that did not read back
/// as applied: the driver's error (shared by the batch), as a `Backend` outage error.
fn unknown(e: &sqlx::Error) -> StoreError {
    let source = match e {
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    };
    PgError::Database { source }.into()
}

fn history_append(req: &TransitionRequest) -> String {
    format!("[{}]", req.history_entry().to_json())
}

/// Every call runs under the operation deadline
/// ([`PgStoreOptions::operation_timeout`](crate::PgStoreOptions::operation_timeout)), its wait
/// for a connection included. A write that misses it is read back: applied, the call
/// succeeds; otherwise the answer is [`StoreError::Timeout`] (outcome unknown).
#[async_trait]
impl MetadataStore for PgStore {
    async fn record(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        meta.validate()?;
        let read_back = || async {
            let stored = self.fetch(&meta.order_id).await?;
            Ok(stored.filter(|s| record_applied(meta, s)).map(drop))
        };
        self.deadlines()
            .write("record", &meta.order_id, self.record_now(meta), read_back)
            .await
    }

    async fn record_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError> {
        for m in metas {
            m.validate()?;
        }
        let Some(first) = metas.first() else {
            return Ok(());
        };
        self.deadlines()
            .write(
                "record_many",
                &first.order_id,
                self.insert_many(metas),
                || self.batch_applied(metas),
            )
            .await
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
        self.deadlines().run("get", self.fetch(order_id)).await
    }

    async fn transition(&self, req: &TransitionRequest) -> Result<OrderMetadata, StoreError> {
        req.check()?;
        let read_back = || async {
            let stored = self.fetch(&req.order_id).await?;
            Ok(stored.filter(|s| transition_applied(req, s)))
        };
        self.deadlines()
            .write(
                "transition",
                &req.order_id,
                self.transition_now(req),
                read_back,
            )
            .await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.deadlines().run("list", self.list_page(query)).await
    }

    /// In batches of `purge_batch_size`, each its own statement and commit under its own
    /// deadline (like `purge`): no row lock is held for the whole sweep. Not read back after
    /// a timeout: expiring again is harmless, and the next sweep does it. A due order whose
    /// version cannot be bumped is left (and logged).
    async fn expire(&self, req: &ExpireRequest) -> Result<u64, StoreError> {
        if req.height.is_none() && req.block_time.is_none() {
            return Ok(0);
        }
        // The history entry is the same for every order: only status, time and reason.
        let entry = history_append(&req.transition_for("", OrderStatus::Active));
        let batch = self.inner.purge_batch_size;
        let mut total = 0;
        loop {
            let n = self
                .deadlines()
                .run("expire", self.expire_batch(req, &entry))
                .await?;
            total += n;
            if (n as i64) < batch {
                break;
            }
        }
        // Cheap: after the batches only such rows are left in the partial indexes.
        self.deadlines()
            .run("expire", self.report_stuck(req))
            .await?;
        Ok(total)
    }

    /// In batches of `purge_batch_size`, each its own statement and commit under its own
    /// deadline: a purge keeps going as long as its batches do.
    async fn purge(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let batch = self.inner.purge_batch_size;
        let mut total = 0;
        loop {
            let n = self
                .deadlines()
                .run("purge", self.purge_batch(older_than))
                .await?;
            total += n;
            if (n as i64) < batch {
                return Ok(total);
            }
        }
    }

    /// Like `transition`: one compare-and-set statement, read back (never re-sent) when its
    /// outcome is unknown.
    async fn update(&self, req: &UpdateRequest) -> Result<OrderMetadata, StoreError> {
        req.check()?;
        let read_back = || async {
            let stored = self.fetch(&req.order_id).await?;
            Ok(stored.filter(|s| update_applied(req, s)))
        };
        self.deadlines()
            .write("update", &req.order_id, self.update_cas(req), read_back)
            .await
    }

    async fn find_by_client_id(
        &self,
        key: &ClientIdKey,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        self.deadlines()
            .run("find_by_client_id", self.newest_by_client_id(key))
            .await
    }

    async fn find_by_label(&self, label: &str) -> Result<Option<OrderMetadata>, StoreError> {
        self.deadlines()
            .run("find_by_label", self.newest_by_label(label))
            .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        let ping = async {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e, None))?;
            Ok(())
        };
        self.deadlines().run("health", ping).await
    }

    /// `postgres <host>:<port>/<database>, schema <schema>` (no user, no password).
    fn description(&self) -> Option<String> {
        let options = self.pool.connect_options();
        Some(format!(
            "postgres {}:{}/{}, schema {}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("(default database)"),
            self.schema()
        ))
    }
}
