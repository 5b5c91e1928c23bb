//! [`PgStore`] and its [`PgStoreOptions`].

use std::collections::HashSet;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ordermeta_core::{
    ExpireRequest, InvalidRecord, ListQuery, MetadataStore, OrderMetadata, OrderStatus, Page,
    StoreError, TransitionRequest, truncate_micros,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::error::{PgError, connect_error, is_unique_violation, op_error};
use crate::migrate;
use crate::row::{self, COLUMNS, INSERT_COLUMNS};
use crate::schema::Schema;

/// The schema the store uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "ordermeta";
/// The table holding the records, inside the store's schema.
pub const TABLE: &str = "dydx_order_metadata";
/// Default [`PgStoreOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// Default [`PgStoreOptions::acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`PgStoreOptions::purge_batch_size`].
pub const DEFAULT_PURGE_BATCH_SIZE: u32 = 5_000;

/// The `IN` list of open statuses, as a literal: partial-index predicates are matched against
/// the query text, so a bound array parameter would not let the planner use them.
const OPEN_STATUSES: &str = "('pending', 'active', 'cancelling')";
/// The `IN` list of terminal statuses, as a literal (see [`OPEN_STATUSES`]).
const TERMINAL_STATUSES: &str = "('cancelled', 'expired', 'filled', 'failed')";

/// How a [`PgStore`] connects, where it keeps its tables and how it sizes its pool.
///
/// ```no_run
/// # async fn f() -> Result<(), ordermeta_core::StoreError> {
/// use std::time::Duration;
/// use ordermeta_postgres::PgStoreOptions;
///
/// let store = PgStoreOptions::new()
///     .schema("bots_eu")
///     .max_connections(16)
///     .acquire_timeout(Duration::from_secs(2))
///     .connect("postgres://bot@db.internal/trading?sslmode=verify-full")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PgStoreOptions {
    schema: String,
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    test_before_acquire: bool,
    migrate: bool,
    purge_batch_size: u32,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        PgStoreOptions {
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            min_connections: 0,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            test_before_acquire: true,
            migrate: true,
            purge_batch_size: DEFAULT_PURGE_BATCH_SIZE,
        }
    }
}

impl PgStoreOptions {
    /// The defaults: schema [`DEFAULT_SCHEMA`], up to [`DEFAULT_MAX_CONNECTIONS`]
    /// connections, [`DEFAULT_ACQUIRE_TIMEOUT`], migrations on.
    pub fn new() -> Self {
        Self::default()
    }

    /// The schema holding the store's tables; created by the migrations when missing. It must
    /// match `[A-Za-z_][A-Za-z0-9_]*` (at most 63 bytes, not starting with `pg_`); it is always
    /// quoted, so case is kept.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Most connections the pool opens (see the crate docs on pool sizing).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Connections the pool keeps open even when idle (default 0).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long an operation waits for a connection (including reconnecting to a server that
    /// is down) before failing with a `Backend` error. Also bounds the first connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Closes connections idle for this long (default 10 minutes; `None`: never).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Replaces connections older than this (default 30 minutes; `None`: never).
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Pings an idle connection before handing it out (default on). Off saves a round trip per
    /// operation, but after a server restart each stale pooled connection then fails one
    /// operation with a `Backend` error before the pool replaces it.
    pub fn test_before_acquire(mut self, on: bool) -> Self {
        self.test_before_acquire = on;
        self
    }

    /// Apply pending migrations when the store is built (default on). Off, the store only
    /// checks that the schema is fully migrated: use it when the application role may not
    /// create tables and an administrator migrates.
    pub fn migrate(mut self, on: bool) -> Self {
        self.migrate = on;
        self
    }

    /// Rows [`MetadataStore::purge`] deletes per statement (default
    /// [`DEFAULT_PURGE_BATCH_SIZE`]); each batch commits on its own so no lock is held long.
    pub fn purge_batch_size(mut self, n: u32) -> Self {
        self.purge_batch_size = n.max(1);
        self
    }

    /// The sqlx pool options these settings stand for.
    pub fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections.min(self.max_connections))
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
            .max_lifetime(self.max_lifetime)
            .test_before_acquire(self.test_before_acquire)
    }

    /// Connects to the server at `url` (`postgres://user:password@host:port/database?sslmode=…`;
    /// TLS follows `sslmode`: `disable`, `prefer` (default), `require`, `verify-ca`,
    /// `verify-full`, with the Mozilla root certificates or `sslrootcert`), migrates (unless
    /// turned off) and builds the pool.
    ///
    /// Errors are [`StoreError::Backend`] carrying a [`PgError`]: `InvalidUrl`,
    /// `Connect`, `Authentication`, `PermissionDenied`, `Migration`…
    pub async fn connect(self, url: &str) -> Result<PgStore, StoreError> {
        let opts =
            PgConnectOptions::from_str(url).map_err(|e| PgError::InvalidUrl { source: e })?;
        self.connect_with(opts).await
    }

    /// Like [`connect`](Self::connect), from parsed connect options.
    pub async fn connect_with(self, opts: PgConnectOptions) -> Result<PgStore, StoreError> {
        let schema = Schema::new(&self.schema)?;
        let opts = match opts.get_application_name() {
            Some(_) => opts,
            None => opts.application_name("ordermeta"),
        };
        let role = opts.get_username().to_owned();
        let target = format!(
            "{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or(&role)
        );
        // One plain connection first: its error says what is wrong (refused, password,
        // unknown database), where a pool would only report a timeout after retrying.
        let mut conn = match tokio::time::timeout(self.acquire_timeout, opts.connect()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(connect_error(e, target, &role).into()),
            Err(_) => {
                return Err(PgError::Connect {
                    target,
                    source: sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {:?}", self.acquire_timeout),
                    )),
                }
                .into());
            }
        };
        let prepared = self.prepare(&mut conn, &schema).await;
        // The pool opens its own connections; a failed close of this one changes nothing.
        let _ = conn.close().await;
        let role = prepared?;
        let pool = self.pool_options().connect_lazy_with(opts);
        Ok(PgStore::new(pool, schema, role, self.purge_batch_size))
    }

    /// Wraps an existing pool (its own sizing applies; this builder's pool settings are
    /// ignored) and migrates (unless turned off).
    pub async fn with_pool(self, pool: PgPool) -> Result<PgStore, StoreError> {
        let schema = Schema::new(&self.schema)?;
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| PgError::Database { source: e })?;
        let role = self.prepare(&mut conn, &schema).await?;
        drop(conn);
        Ok(PgStore::new(pool, schema, role, self.purge_batch_size))
    }

    /// Learns the role name (for error messages) and migrates or checks the schema.
    async fn prepare(&self, conn: &mut PgConnection, schema: &Schema) -> Result<String, PgError> {
        let role: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| PgError::Database { source: e })?;
        if self.migrate {
            migrate::run(conn, schema, &role).await?;
        } else {
            migrate::check(conn, schema, &role).await?;
        }
        Ok(role)
    }
}

/// The SQL of every operation, built once with the schema-qualified table name.
#[derive(Debug)]
struct Sql {
    insert_one: String,
    insert_many: String,
    select_one: String,
    select_existing: String,
    transition: String,
    status_of: String,
    expire: String,
    purge_batch: String,
    list_head: String,
}

impl Sql {
    fn new(schema: &Schema) -> Self {
        let t = format!("{}.{TABLE}", schema.quoted());
        let placeholders = (1..=21).fold(String::new(), |mut s, i| {
            let _ = write!(s, "${i}, ");
            s
        });
        Sql {
            insert_one: format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}) VALUES ({placeholders}$22::jsonb)"
            ),
            insert_many: format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}) \
                 SELECT order_id, dydx_order_id, good_until_block, good_til_block_time, \
                 client_id, subaccount_number, owner, order_flags, clob_pair_id, symbol, side, \
                 quantity, price, order_type, placed_at, updated_at, cancelled_at, tx_hash, \
                 cancel_tx_hash, status, version, history::jsonb \
                 FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], \
                 $6::int8[], $7::text[], $8::int8[], $9::int8[], $10::text[], $11::text[], \
                 $12::text[], $13::text[], $14::text[], $15::timestamptz[], \
                 $16::timestamptz[], $17::timestamptz[], $18::text[], $19::text[], \
                 $20::text[], $21::int8[], $22::text[]) AS u({INSERT_COLUMNS})"
            ),
            select_one: format!("SELECT {COLUMNS} FROM {t} WHERE order_id = $1"),
            select_existing: format!("SELECT order_id FROM {t} WHERE order_id = ANY($1)"),
            // The whole compare-and-set: Read Committed re-evaluates `status = ANY($2)` on the
            // newest row version after waiting for a concurrent writer, so of many concurrent
            // claimers exactly one updates the row.
            transition: format!(
                "UPDATE {t} SET status = $3, updated_at = $4, \
                 cancelled_at = COALESCE($5, cancelled_at), \
                 tx_hash = COALESCE($6, tx_hash), \
                 cancel_tx_hash = COALESCE($7, cancel_tx_hash), \
                 version = version + 1, history = history || $8::jsonb \
                 WHERE order_id = $1 AND status = ANY($2) RETURNING {COLUMNS}"
            ),
            status_of: format!("SELECT status FROM {t} WHERE order_id = $1"),
            // Each arm matches one partial index (BitmapOr), so only open orders are visited.
            expire: format!(
                "UPDATE {t} SET status = 'expired', updated_at = $3, version = version + 1, \
                 history = history || $4::jsonb \
                 WHERE (status IN {OPEN_STATUSES} AND good_until_block <= $1) \
                 OR (status IN {OPEN_STATUSES} AND good_til_block_time <= $2)"
            ),
            // SKIP LOCKED: a row a transition is changing right now is left for the next purge
            // instead of making the purge wait.
            purge_batch: format!(
                "WITH doomed AS ( \
                 SELECT order_id FROM {t} \
                 WHERE status IN {TERMINAL_STATUSES} AND updated_at < $1 \
                 ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 DELETE FROM {t} d USING doomed WHERE d.order_id = doomed.order_id"
            ),
            list_head: format!("SELECT {COLUMNS} FROM {t} WHERE TRUE"),
        }
    }
}

#[derive(Debug)]
struct Inner {
    schema: Schema,
    role: String,
    sql: Sql,
    purge_batch_size: i64,
}

/// A [`MetadataStore`] on PostgreSQL, over a sqlx pool. Cheap to clone (the clones share the
/// pool); build one per process and share it.
///
/// See the [crate docs](crate) for the schema, pool sizing and the partitioning measurements.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    inner: Arc<Inner>,
}

impl PgStore {
    fn new(pool: PgPool, schema: Schema, role: String, purge_batch_size: u32) -> Self {
        PgStore {
            pool,
            inner: Arc::new(Inner {
                sql: Sql::new(&schema),
                schema,
                role,
                purge_batch_size: i64::from(purge_batch_size),
            }),
        }
    }

    /// Connects with the default [`PgStoreOptions`] (schema [`DEFAULT_SCHEMA`]).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PgStoreOptions::new().connect(url).await
    }

    /// Wraps an existing pool with the default options (schema [`DEFAULT_SCHEMA`]).
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        PgStoreOptions::new().with_pool(pool).await
    }

    /// The options builder (same as [`PgStoreOptions::new`]).
    pub fn options() -> PgStoreOptions {
        PgStoreOptions::new()
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

    /// Closes the pool: waits for connections in use to come back, then closes them all.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn err(&self, e: sqlx::Error, order_id: Option<&str>) -> StoreError {
        op_error(e, &self.inner.role, self.inner.schema.name(), order_id)
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
}

fn history_append(req: &TransitionRequest) -> String {
    format!("[{}]", req.history_entry().to_json())
}

#[async_trait]
impl MetadataStore for PgStore {
    async fn record(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        meta.validate()?;
        let e = row::encode(meta)?;
        let r = sqlx::query(&self.inner.sql.insert_one)
            .bind(e.order_id)
            .bind(&e.dydx_order_id)
            .bind(e.good_until_block)
            .bind(e.good_til_block_time)
            .bind(e.client_id)
            .bind(e.subaccount_number)
            .bind(e.owner)
            .bind(e.order_flags)
            .bind(e.clob_pair_id)
            .bind(e.symbol)
            .bind(e.side)
            .bind(e.quantity)
            .bind(e.price)
            .bind(e.order_type)
            .bind(e.placed_at)
            .bind(e.updated_at)
            .bind(e.cancelled_at)
            .bind(e.tx_hash)
            .bind(e.cancel_tx_hash)
            .bind(e.status)
            .bind(e.version)
            .bind(&e.history)
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

    async fn record_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError> {
        for m in metas {
            m.validate()?;
        }
        if metas.is_empty() {
            return Ok(());
        }
        let n = metas.len();
        let mut c = Columns::with_capacity(n);
        for m in metas {
            c.push(row::encode(m)?);
        }
        // One statement: atomic on its own, so the batch is all or nothing without a
        // transaction round trip. A repeated id inside the batch violates the primary key too.
        let r = sqlx::query(&self.inner.sql.insert_many)
            .bind(&c.order_id)
            .bind(&c.dydx_order_id)
            .bind(&c.good_until_block)
            .bind(&c.good_til_block_time)
            .bind(&c.client_id)
            .bind(&c.subaccount_number)
            .bind(&c.owner)
            .bind(&c.order_flags)
            .bind(&c.clob_pair_id)
            .bind(&c.symbol)
            .bind(&c.side)
            .bind(&c.quantity)
            .bind(&c.price)
            .bind(&c.order_type)
            .bind(&c.placed_at)
            .bind(&c.updated_at)
            .bind(&c.cancelled_at)
            .bind(&c.tx_hash)
            .bind(&c.cancel_tx_hash)
            .bind(&c.status)
            .bind(&c.version)
            .bind(&c.history)
            .execute(&self.pool)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(err) if is_unique_violation(&err) => Err(self.duplicate_in(metas).await),
            Err(err) => Err(self.err(err, None)),
        }
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
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

    async fn transition(&self, req: &TransitionRequest) -> Result<OrderMetadata, StoreError> {
        req.check()?;
        let from: Vec<&str> = req.from.iter().map(|s| s.as_str()).collect();
        let entry = history_append(req);
        let at = req.history_entry().at;
        let cancelled_at = (req.to == OrderStatus::Cancelled).then_some(at);
        let id = req.order_id.as_str();
        // A lost compare-and-set re-reads the status to report it. If the order has meanwhile
        // come back into `from` (cancelling -> active), the update is tried again: reporting a
        // conflict whose current status is allowed would be nonsense. Bounded, as every retry
        // needs another writer to have moved the order in between.
        for _ in 0..3 {
            let row = sqlx::query(&self.inner.sql.transition)
                .bind(id)
                .bind(&from)
                .bind(req.to.as_str())
                .bind(at)
                .bind(cancelled_at)
                .bind(req.tx_hash.as_deref())
                .bind(req.cancel_tx_hash.as_deref())
                .bind(&entry)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.err(e, Some(id)))?;
            if let Some(row) = row {
                return row::decode(&row).map_err(|e| e.for_order(id));
            }
            let status: Option<String> = sqlx::query_scalar(&self.inner.sql.status_of)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.err(e, Some(id)))?;
            let Some(status) = status else {
                return Err(StoreError::NotFound {
                    order_id: id.to_owned(),
                });
            };
            let current: OrderStatus = status.parse().map_err(|e: StoreError| e.for_order(id))?;
            if !req.from.contains(&current) {
                return Err(StoreError::conflict(id, current, &req.from));
            }
        }
        Err(StoreError::backend(PgError::Database {
            source: sqlx::Error::Protocol(format!(
                "order {id} kept changing status during the transition; try again"
            )),
        }))
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
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

    async fn expire(&self, req: &ExpireRequest) -> Result<u64, StoreError> {
        if req.height.is_none() && req.block_time.is_none() {
            return Ok(0);
        }
        // The history entry is the same for every order: only status, time and reason.
        let entry = history_append(&req.transition_for("", OrderStatus::Active));
        let r = sqlx::query(&self.inner.sql.expire)
            .bind(req.height.map(i64::from))
            .bind(req.block_time.map(i64::from))
            .bind(truncate_micros(req.at))
            .bind(&entry)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e, None))?;
        Ok(r.rows_affected())
    }

    async fn purge(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let batch = self.inner.purge_batch_size;
        let mut total = 0;
        loop {
            let r = sqlx::query(&self.inner.sql.purge_batch)
                .bind(older_than)
                .bind(batch)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e, None))?;
            total += r.rows_affected();
            if (r.rows_affected() as i64) < batch {
                return Ok(total);
            }
        }
    }

    async fn health(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e, None))?;
        Ok(())
    }
}

/// A batch as one array per column, for `UNNEST`.
struct Columns<'a> {
    order_id: Vec<&'a str>,
    dydx_order_id: Vec<String>,
    good_until_block: Vec<Option<i64>>,
    good_til_block_time: Vec<Option<i64>>,
    client_id: Vec<i64>,
    subaccount_number: Vec<i64>,
    owner: Vec<&'a str>,
    order_flags: Vec<i64>,
    clob_pair_id: Vec<i64>,
    symbol: Vec<&'a str>,
    side: Vec<&'static str>,
    quantity: Vec<&'a str>,
    price: Vec<Option<&'a str>>,
    order_type: Vec<&'static str>,
    placed_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    cancelled_at: Vec<Option<DateTime<Utc>>>,
    tx_hash: Vec<Option<&'a str>>,
    cancel_tx_hash: Vec<Option<&'a str>>,
    status: Vec<&'static str>,
    version: Vec<i64>,
    history: Vec<String>,
}

impl<'a> Columns<'a> {
    fn with_capacity(n: usize) -> Self {
        Columns {
            order_id: Vec::with_capacity(n),
            dydx_order_id: Vec::with_capacity(n),
            good_until_block: Vec::with_capacity(n),
            good_til_block_time: Vec::with_capacity(n),
            client_id: Vec::with_capacity(n),
            subaccount_number: Vec::with_capacity(n),
            owner: Vec::with_capacity(n),
            order_flags: Vec::with_capacity(n),
            clob_pair_id: Vec::with_capacity(n),
            symbol: Vec::with_capacity(n),
            side: Vec::with_capacity(n),
            quantity: Vec::with_capacity(n),
            price: Vec::with_capacity(n),
            order_type: Vec::with_capacity(n),
            placed_at: Vec::with_capacity(n),
            updated_at: Vec::with_capacity(n),
            cancelled_at: Vec::with_capacity(n),
            tx_hash: Vec::with_capacity(n),
            cancel_tx_hash: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            history: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, e: row::Encoded<'a>) {
        self.order_id.push(e.order_id);
        self.dydx_order_id.push(e.dydx_order_id);
        self.good_until_block.push(e.good_until_block);
        self.good_til_block_time.push(e.good_til_block_time);
        self.client_id.push(e.client_id);
        self.subaccount_number.push(e.subaccount_number);
        self.owner.push(e.owner);
        self.order_flags.push(e.order_flags);
        self.clob_pair_id.push(e.clob_pair_id);
        self.symbol.push(e.symbol);
        self.side.push(e.side);
        self.quantity.push(e.quantity);
        self.price.push(e.price);
        self.order_type.push(e.order_type);
        self.placed_at.push(e.placed_at);
        self.updated_at.push(e.updated_at);
        self.cancelled_at.push(e.cancelled_at);
        self.tx_hash.push(e.tx_hash);
        self.cancel_tx_hash.push(e.cancel_tx_hash);
        self.status.push(e.status);
        self.version.push(e.version);
        self.history.push(e.history);
    }
}
