//! [`SqliteStore`]: the [`MetadataStore`] implementation. Opening a store is
//! [`SqliteStoreOptions`](crate::SqliteStoreOptions)' job; the statements are in `sql`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ordermeta_core::backend::{
    Deadlines, record_applied, transition_applied, update_applied, with_deadline,
};
use ordermeta_core::{
    ClientIdKey, ExpireRequest, InvalidRecord, ListQuery, MetadataStore, OrderMetadata,
    OrderStatus, Page, StoreError, TransitionRequest, UpdateRequest, to_micros, truncate_micros,
};
use sqlx::sqlite::{Sqlite, SqliteArguments, SqlitePool};

use crate::error::{SqliteError, backend};
use crate::row;
use crate::sql::{
    EXPIRE_BY_BLOCK, EXPIRE_BY_TIME, EXPIRE_STUCK, LIST_HEAD, PURGE, SELECT_ONE, distinct,
};
use crate::wal::{Checkpointer, bulk_pause, passive};
use crate::write::Writes;
use crate::writer::GroupCommit;

mod lookup;

/// The table holding the records (the original design's name).
pub const TABLE: &str = "dydx_order_metadata";
/// Rows [`MetadataStore::purge`] deletes per statement (each its own short write lock).
pub const PURGE_BATCH_SIZE: i64 = 1_000;
/// Orders [`MetadataStore::expire`] expires per statement (each its own short write lock).
pub const EXPIRE_BATCH_SIZE: i64 = 1_000;

/// A batch of bulk work that changed at least this many rows is checkpointed right after it,
/// by the bulk work itself (see [`crate::wal`]).
const CHECKPOINT_AFTER_ROWS: u64 = 500;

/// One statement of bulk work, its parameters bound.
type BulkQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// The SQLite [`MetadataStore`]. Cheap to clone (the pools are shared).
///
/// See the [crate docs](crate) for the guarantees and the schema.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// The writer pool behind the write lock.
    write: Writes,
    reader: SqlitePool,
    /// The writer task's queue, when group commit is on (see [`crate::writer`]).
    group: Option<Arc<GroupCommit>>,
    path: Option<PathBuf>,
    created: bool,
    in_memory: bool,
    deadlines: Deadlines,
    /// The background checkpoint of a file the store opened itself (see [`crate::wal`]).
    checkpointer: Option<Arc<Checkpointer>>,
}

impl SqliteStore {
    /// A store over `writer` (one writer at a time, behind the store's write lock) and
    /// `reader`; `path` is the file it opened, if any.
    pub(crate) fn new(
        writer: SqlitePool,
        reader: SqlitePool,
        path: Option<PathBuf>,
        deadlines: Deadlines,
    ) -> Self {
        SqliteStore {
            write: Writes::new(writer),
            reader,
            group: None,
            path,
            created: false,
            in_memory: false,
            deadlines,
            checkpointer: None,
        }
    }

    /// Turns group commit on, in batches of at most `max_batch` calls (see [`crate::writer`]).
    pub(crate) fn with_group_commit(mut self, max_batch: usize) -> Self {
        let group = GroupCommit::new(self.write.clone(), max_batch, self.deadlines.operation);
        self.group = Some(Arc::new(group));
        self
    }

    /// Marks the store as one whose file was created when it was opened.
    pub(crate) fn with_created(mut self, created: bool) -> Self {
        self.created = created;
        self
    }

    /// Marks the store as a private in-memory database.
    pub(crate) fn with_in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }

    /// The store checkpoints through `checkpointer` (see [`crate::wal`]): for a file the
    /// store opened and configured itself.
    pub(crate) fn with_checkpointer(mut self, checkpointer: Arc<Checkpointer>) -> Self {
        self.checkpointer = Some(checkpointer);
        self
    }

    /// The pool the store writes through. Use it for your own statements on the same database
    /// (backups, ad-hoc queries); a long write transaction of yours makes the store's writes
    /// wait (up to `busy_timeout`, within the operation deadline).
    pub fn pool(&self) -> &SqlitePool {
        &self.write.pool
    }

    /// The pool that reads (the same as [`pool`](Self::pool) for a wrapped pool or an
    /// in-memory store).
    pub fn read_pool(&self) -> &SqlitePool {
        &self.reader
    }

    /// The database file, when the store opened one itself: an absolute path (a relative one
    /// given was resolved from the working directory of the time).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether opening this store created its database file (it did not exist). A bot that
    /// expects its earlier orders and gets a new store is looking in the wrong place (another
    /// working directory, a typo): check this, or open with `mode=rw` to make a missing file
    /// an error. Opening logs a warning naming the absolute path in that case too.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The deadline of every call
    /// ([`SqliteStoreOptions::operation_timeout`](crate::SqliteStoreOptions::operation_timeout)).
    pub fn operation_timeout(&self) -> Duration {
        self.deadlines.operation
    }

    /// Closes every connection, waiting for them to finish; SQLite checkpoints the WAL into
    /// the database when the last connection to a file closes.
    pub async fn close(&self) {
        if let Some(g) = &self.group {
            g.close().await;
        }
        if let Some(c) = &self.checkpointer {
            c.close().await;
        }
        self.reader.close().await;
        self.write.pool.close().await;
    }

    /// The store's group commit, if on (tests).
    #[cfg(test)]
    pub(crate) fn group_commit(&self) -> Option<&GroupCommit> {
        self.group.as_deref()
    }

    /// The write side (tests).
    #[cfg(test)]
    pub(crate) fn writes(&self) -> &Writes {
        &self.write
    }

    /// The record as stored, read through the read pool (no write lock: WAL readers are never
    /// blocked by a writer, which is what a read-back after a stuck write needs).
    async fn fetch(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
        let row = sqlx::query(SELECT_ONE)
            .bind(order_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref()
            .map(|r| row::decode(r).map_err(|e| e.for_order(order_id)))
            .transpose()
    }

    /// A write under the operation deadline, read back when its outcome is unknown: past the
    /// deadline ([`Deadlines::write`]), and after a group commit whose `COMMIT` failed (the
    /// error stays the answer unless the write is found applied).
    async fn write_or_read_back<T, R, RF>(
        &self,
        operation: &'static str,
        order_id: &str,
        write: impl Future<Output = Result<T, StoreError>>,
        read_back: R,
    ) -> Result<T, StoreError>
    where
        R: Fn() -> RF,
        RF: Future<Output = Result<Option<T>, StoreError>>,
    {
        match self
            .deadlines
            .write(operation, order_id, write, &read_back)
            .await
        {
            Err(e) if commit_failed(&e) => {
                match with_deadline(operation, self.deadlines.read_back, read_back()).await {
                    Ok(Some(done)) => Ok(done),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Whether every record of a batch reads back exactly as written. The batch is one
    /// transaction, so its first record tells, and the rest confirm.
    async fn batch_applied(&self, metas: &[OrderMetadata]) -> Result<Option<()>, StoreError> {
        for m in metas {
            match self.fetch(&m.order_id).await? {
                Some(stored) if record_applied(m, &stored) => {}
                _ => return Ok(None),
            }
        }
        Ok(Some(()))
    }

    async fn list_page(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.effective_limit() as usize;
        let statuses = distinct(&query.statuses);
        let mut sql = String::from(LIST_HEAD);
        if !statuses.is_empty() {
            sql.push_str(" AND status IN (");
            sql.push_str(&vec!["?"; statuses.len()].join(", "));
            sql.push(')');
        }
        if query.owner.is_some() {
            sql.push_str(" AND owner = ?");
        }
        if query.subaccount_number.is_some() {
            sql.push_str(" AND subaccount_number = ?");
        }
        if query.symbol.is_some() {
            sql.push_str(" AND symbol = ?");
        }
        // A cursor past an id that is not UTF-8 carries its bytes (see `row::cursor`).
        let after_bytes = query.after.as_deref().and_then(row::cursor_bytes);
        if after_bytes.is_some() {
            sql.push_str(" AND order_id > CAST(? AS TEXT)");
        } else if query.after.is_some() {
            sql.push_str(" AND order_id > ?");
        }
        sql.push_str(" ORDER BY order_id LIMIT ?");
        let mut q = sqlx::query(&sql);
        for s in &statuses {
            q = q.bind(s.as_str());
        }
        if let Some(o) = &query.owner {
            q = q.bind(o.as_str());
        }
        if let Some(n) = query.subaccount_number {
            q = q.bind(i64::from(n));
        }
        if let Some(s) = &query.symbol {
            q = q.bind(s.as_str());
        }
        if let Some(bytes) = after_bytes {
            q = q.bind(bytes);
        } else if let Some(a) = &query.after {
            q = q.bind(a.as_str());
        }
        // One row more than the page tells whether another page follows.
        let rows = q
            .bind(limit as i64 + 1)
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;

        let take = rows.len().min(limit);
        let mut page = Page::default();
        for r in rows.iter().take(take) {
            match row::decode(r) {
                Ok(m) => page.items.push(m),
                Err(e) => {
                    let order_id = row::order_id_lossy(r);
                    let reason = match e {
                        StoreError::InvalidMetadata { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    tracing::warn!(order_id, reason, "ordermeta-sqlite: corrupt record");
                    page.invalid.push(InvalidRecord { order_id, reason });
                }
            }
        }
        if rows.len() > limit {
            page.next = Some(row::cursor(&rows[take - 1]));
        }
        Ok(page)
    }

    /// One batch of bulk work (`expire`, `purge`): `query` under the write lock, on a
    /// connection of its own; then, the write lock released, a checkpoint of what the batch
    /// wrote when it changed [`CHECKPOINT_AFTER_ROWS`] rows or more, so that another process's
    /// next commit neither copies the batch's pages nor finds the WAL growing (see
    /// [`crate::wal`]).
    ///
    /// Returns the rows changed and how long the statement held (or waited for) SQLite's
    /// write lock, for [`bulk_pause`].
    async fn bulk_batch(
        &self,
        operation: &'static str,
        query: BulkQuery<'_>,
    ) -> Result<(u64, Duration), StoreError> {
        let (n, held, conn) = self
            .deadlines
            .run(operation, async {
                let _writing = self.write.lock.lock().await;
                let mut conn = self.write.pool.acquire().await.map_err(backend)?;
                let start = std::time::Instant::now();
                let n = query
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?
                    .rows_affected();
                Ok((n, start.elapsed(), conn))
            })
            .await?;
        if n >= CHECKPOINT_AFTER_ROWS {
            match &self.checkpointer {
                Some(c) => {
                    drop(conn);
                    c.checkpoint("bulk").await;
                }
                None => {
                    let mut conn = conn;
                    passive(&mut conn, self.deadlines.operation).await;
                }
            }
        }
        Ok((n, held))
    }

    /// One batch of an expire: at most [`EXPIRE_BATCH_SIZE`] orders.
    async fn expire_batch(
        &self,
        sql: &'static str,
        at: i64,
        entry: &str,
        clock: u32,
    ) -> Result<(u64, Duration), StoreError> {
        let query = sqlx::query(sql)
            .bind(at)
            .bind(entry)
            .bind(i64::from(clock))
            .bind(EXPIRE_BATCH_SIZE);
        self.bulk_batch("expire", query).await
    }

    /// Logs the due open orders an expire had to leave (their version cannot be bumped).
    async fn report_stuck(&self, req: &ExpireRequest) {
        let height = req.height.map_or(-1, i64::from);
        let time = req.block_time.map_or(-1, i64::from);
        let stuck = sqlx::query_scalar::<_, Vec<u8>>(EXPIRE_STUCK)
            .bind(height)
            .bind(time)
            .fetch_all(&self.reader)
            .await;
        if let Ok(ids) = stuck {
            for id in ids {
                tracing::warn!(
                    order_id = %String::from_utf8_lossy(&id),
                    "ordermeta-sqlite: due order not expired: its version is at the maximum"
                );
            }
        }
    }

    async fn purge_batch(&self, cut: i64) -> Result<(u64, Duration), StoreError> {
        let query = sqlx::query(PURGE).bind(cut).bind(PURGE_BATCH_SIZE);
        self.bulk_batch("purge", query).await
    }
}

/// Whether `e` is a group commit's failed `COMMIT` (outcome unknown).
fn commit_failed(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend { source }
    if matches!(
        source.downcast_ref::<SqliteError>(),
        Some(SqliteError::GroupCommit { at_commit: true, .. })
    ))
}

/// Every call runs under the operation deadline
/// ([`SqliteStoreOptions::operation_timeout`](crate::SqliteStoreOptions::operation_timeout)),
/// its wait for the write lock included. A write that misses it is read back: applied, the
/// call succeeds; otherwise the answer is [`StoreError::Timeout`] (outcome unknown).
#[async_trait]
impl MetadataStore for SqliteStore {
    async fn record(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        meta.validate()?;
        let read_back = || async {
            let stored = self.fetch(&meta.order_id).await?;
            Ok(stored.filter(|s| record_applied(meta, s)).map(drop))
        };
        // Encoded before it is queued: a record that cannot be written fails alone.
        row::db_version(meta)?;
        let write = async {
            match &self.group {
                Some(g) => g.record(meta).await,
                None => self.write.insert(meta).await,
            }
        };
        self.write_or_read_back("record", &meta.order_id, write, read_back)
            .await
    }

    async fn record_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError> {
        for m in metas {
            m.validate()?;
        }
        let Some(first) = metas.first() else {
            return Ok(());
        };
        self.deadlines
            .write(
                "record_many",
                &first.order_id,
                self.write.insert_many(metas),
                || self.batch_applied(metas),
            )
            .await
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
        self.deadlines.run("get", self.fetch(order_id)).await
    }

    async fn transition(&self, req: &TransitionRequest) -> Result<OrderMetadata, StoreError> {
        req.check()?;
        let read_back = || async {
            let stored = self.fetch(&req.order_id).await?;
            Ok(stored.filter(|s| transition_applied(req, s)))
        };
        let write = async {
            match &self.group {
                Some(g) => g.transition(req).await,
                None => self.write.compare_and_set(req).await,
            }
        };
        self.write_or_read_back("transition", &req.order_id, write, read_back)
            .await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.deadlines.run("list", self.list_page(query)).await
    }

    /// Under the deadline like every call. Not read back after a timeout: expiring again is
    /// harmless, and the next sweep does it.
    ///
    /// In batches of [`EXPIRE_BATCH_SIZE`], each its own short write under its own deadline
    /// (like `purge`), then a checkpoint of what it wrote (its own deadline) and a pause:
    /// another process's `record` waits for one batch at most, never for the whole sweep nor
    /// for a checkpoint. A due order whose version cannot be bumped is left (and logged).
    async fn expire(&self, req: &ExpireRequest) -> Result<u64, StoreError> {
        let at = to_micros(truncate_micros(req.at));
        let entry = req
            .transition_for("", OrderStatus::Active)
            .history_entry()
            .to_json();
        let mut statements = Vec::with_capacity(2);
        if let Some(h) = req.height {
            statements.push((EXPIRE_BY_BLOCK, h));
        }
        if let Some(t) = req.block_time {
            statements.push((EXPIRE_BY_TIME, t));
        }
        let mut total = 0;
        for (sql, clock) in statements {
            loop {
                let (n, held) = self.expire_batch(sql, at, &entry, clock).await?;
                total += n;
                if n < EXPIRE_BATCH_SIZE as u64 {
                    break;
                }
                tokio::time::sleep(bulk_pause(held)).await;
            }
        }
        // Cheap: after the batches only such rows are left in the partial indexes.
        self.deadlines
            .run("expire", async {
                self.report_stuck(req).await;
                Ok(())
            })
            .await?;
        Ok(total)
    }

    /// In batches of [`PURGE_BATCH_SIZE`], like `expire`: a purge of millions of rows must not
    /// hold the write lock for seconds while other processes wait on busy_timeout, and keeps
    /// going as long as its batches do.
    async fn purge(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        // `updated_at < older_than` on whole microseconds: round a sub-µs cut-off up.
        let cut = to_micros(older_than)
            + i64::from(!older_than.timestamp_subsec_nanos().is_multiple_of(1_000));
        let mut total = 0;
        loop {
            let (n, held) = self.purge_batch(cut).await?;
            total += n;
            if n < PURGE_BATCH_SIZE as u64 {
                return Ok(total);
            }
            tokio::time::sleep(bulk_pause(held)).await;
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
        let write = async {
            match &self.group {
                Some(g) => g.update(req).await,
                None => self.write.update_cas(req).await,
            }
        };
        self.write_or_read_back("update", &req.order_id, write, read_back)
            .await
    }

    async fn find_by_client_id(
        &self,
        key: &ClientIdKey,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        self.deadlines
            .run("find_by_client_id", self.newest_by_client_id(key))
            .await
    }

    async fn find_by_label(&self, label: &str) -> Result<Option<OrderMetadata>, StoreError> {
        self.deadlines
            .run("find_by_label", self.newest_by_label(label))
            .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        // Reads the file (a bare `SELECT 1` would not touch it).
        let check = async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ordermeta_migrations")
                .fetch_one(&self.reader)
                .await
                .map_err(backend)?;
            Ok(())
        };
        self.deadlines.run("health", check).await
    }

    /// `sqlite <absolute path>` (with `, created empty when opened` for a new file),
    /// `sqlite in-memory` or `sqlite (an existing pool)`.
    fn description(&self) -> Option<String> {
        Some(match &self.path {
            Some(path) if self.created => {
                format!("sqlite {}, created empty when opened", path.display())
            }
            Some(path) => format!("sqlite {}", path.display()),
            None if self.in_memory => "sqlite in-memory (this process only)".to_owned(),
            None => "sqlite (an existing pool)".to_owned(),
        })
    }
}
