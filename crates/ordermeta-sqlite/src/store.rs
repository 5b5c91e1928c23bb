//! [`SqliteStore`] and [`SqliteStoreOptions`].

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ordermeta_core::{
    ExpireRequest, ListQuery, MetadataStore, OrderMetadata, OrderStatus, Page, StoreError,
    TransitionRequest, to_micros, truncate_micros,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use tokio::sync::Mutex;

use crate::error::{SqliteError, backend, insert_error, is_busy};
use crate::row::{self, columns};

/// The table holding the records (the original design's name).
pub const TABLE: &str = "dydx_order_metadata";
/// Default [`SqliteStoreOptions::busy_timeout`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`SqliteStoreOptions::max_read_connections`].
pub const DEFAULT_MAX_READ_CONNECTIONS: u32 = 4;
/// Default [`SqliteStoreOptions::acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows [`MetadataStore::purge`] deletes per statement (each its own short write lock).
pub const PURGE_BATCH_SIZE: i64 = 5_000;

/// When a commit is durable: SQLite's `PRAGMA synchronous` in WAL mode.
///
/// Both levels keep the database consistent after any crash; they differ in which of the
/// last commits a **power loss or operating-system crash** can take back. A crash of the
/// process alone (panic, `kill -9`, OOM) never loses a committed record with either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Synchronous {
    /// `NORMAL` (default): a commit is appended to the WAL without `fsync`; the WAL is synced
    /// at checkpoints. Fast (no `fsync` per write). **Risk:** a power loss or kernel crash can
    /// roll back the transactions committed since the last checkpoint, so a `pending` record
    /// written just before a broadcast may be gone after the machine comes back: the order
    /// then lives on chain (until its good-til) without metadata, and can only be cancelled
    /// manually. Fine for short-term orders (they expire within blocks) and for bots on
    /// machines that do not lose power.
    #[default]
    Normal,
    /// `FULL`: the WAL is `fsync`ed at every commit, so a record `record` returned for
    /// survives a power loss (on storage that honours `fsync`). Costs one `fsync` per write
    /// (from tens of µs on NVMe to several ms on network or consumer disks). Choose it for
    /// long-term and conditional orders, which rest on the book for days.
    Full,
}

impl From<Synchronous> for SqliteSynchronous {
    fn from(s: Synchronous) -> Self {
        match s {
            Synchronous::Normal => SqliteSynchronous::Normal,
            Synchronous::Full => SqliteSynchronous::Full,
        }
    }
}

/// How to open a [`SqliteStore`]; [`SqliteStore::options`] starts one.
#[derive(Clone, Debug)]
pub struct SqliteStoreOptions {
    synchronous: Synchronous,
    busy_timeout: Duration,
    max_read_connections: u32,
    acquire_timeout: Duration,
    create_if_missing: bool,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        SqliteStoreOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            max_read_connections: DEFAULT_MAX_READ_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            create_if_missing: true,
        }
    }
}

impl SqliteStoreOptions {
    /// The defaults: `synchronous = NORMAL`, 5 s busy timeout, 4 read connections, 30 s
    /// acquire timeout, create the file if missing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Durability of commits; see [`Synchronous`] for what each level risks.
    pub fn synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }

    /// How long a statement waits for another **process** holding the write lock before it
    /// fails with `SQLITE_BUSY` (as [`StoreError::Backend`]). Writers inside one process
    /// never wait on it: they queue for the store's own write lock, one at a time.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Connections for reads (`get`, `list`, `health`); WAL lets them read while a write
    /// commits. At least 1.
    pub fn max_read_connections(mut self, n: u32) -> Self {
        self.max_read_connections = n.max(1);
        self
    }

    /// How long an operation waits for a free connection (the writer is busy with a large
    /// `record_many`, every reader is taken) before failing with `Backend`.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Whether to create a missing database file (default on; directories are never
    /// created). The file is created with mode `0600`.
    pub fn create_if_missing(mut self, on: bool) -> Self {
        self.create_if_missing = on;
        self
    }

    /// Opens (creating if allowed) the database file at `path`.
    pub async fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::new().filename(path.as_ref());
        self.connect_with(opts).await
    }

    /// Opens a database from a URL (`sqlite://path/to/orders.db`, `sqlite:orders.db?...`,
    /// `sqlite::memory:`) or a plain file path.
    ///
    /// `sqlite::memory:` (or `mode=memory`) gives a private in-memory store on one
    /// connection: nothing is durable, nothing is shared with other processes.
    pub async fn connect(self, url_or_path: &str) -> Result<SqliteStore, StoreError> {
        if !url_or_path.starts_with("sqlite:") {
            return self.open(url_or_path).await;
        }
        let opts =
            SqliteConnectOptions::from_str(url_or_path).map_err(|e| SqliteError::InvalidUrl {
                url: url_or_path.to_owned(),
                source: e,
            })?;
        let in_memory = url_or_path.contains(":memory:") || url_or_path.contains("mode=memory");
        if in_memory {
            self.connect_memory(opts, url_or_path).await
        } else {
            self.connect_with(opts).await
        }
    }

    /// Opens the database file `opts` names. The store's own settings (synchronous,
    /// busy timeout, creation with mode 0600) override those in `opts`; its other settings
    /// (pragmas, VFS, extensions…) are kept.
    pub async fn connect_with(self, opts: SqliteConnectOptions) -> Result<SqliteStore, StoreError> {
        let path = opts.get_filename().to_path_buf();
        prepare_file(&path, self.create_if_missing)?;
        let display = path.display().to_string();
        let open_err = |e: sqlx::Error| SqliteError::Open {
            path: display.clone(),
            source: e,
        };
        let opts = opts
            .create_if_missing(false)
            .busy_timeout(self.busy_timeout)
            .synchronous(self.synchronous.into());

        // One writer at a time per process (the store's write lock): in-process writers queue
        // for it in order instead of meeting SQLITE_BUSY, and busy_timeout only arbitrates
        // between processes. The pool has two connections so that sqlx's check of a returned
        // connection overlaps the next write instead of delaying it.
        let writer = self
            .pool_options(2)
            .connect_with(opts.clone())
            .await
            .map_err(open_err)?;
        ensure_wal(&writer, self.busy_timeout)
            .await
            .map_err(open_err)?;
        crate::migrate::run(&writer).await?;
        let reader = self
            .pool_options(self.max_read_connections)
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        Ok(SqliteStore {
            writer,
            reader,
            write_lock: Arc::default(),
            path: Some(path),
        })
    }

    /// Uses an existing pool for reads and writes, after applying the migrations.
    ///
    /// The pool's own connect options apply (the store does not change the journal mode of
    /// a database it did not open): give it `journal_mode(Wal)` and a `busy_timeout` for the
    /// concurrency the [crate docs](crate#concurrency) describe. The store's writes still
    /// take its write lock, and multi-statement writes still use `BEGIN IMMEDIATE`.
    pub async fn with_pool(self, pool: SqlitePool) -> Result<SqliteStore, StoreError> {
        crate::migrate::run(&pool).await?;
        Ok(SqliteStore {
            writer: pool.clone(),
            reader: pool,
            write_lock: Arc::default(),
            path: None,
        })
    }

    async fn connect_memory(
        self,
        opts: SqliteConnectOptions,
        url: &str,
    ) -> Result<SqliteStore, StoreError> {
        // One connection that never closes: an in-memory database lives exactly as long as
        // its last connection.
        let pool = self
            .pool_options(1)
            .connect_with(opts.busy_timeout(self.busy_timeout))
            .await
            .map_err(|e| SqliteError::Open {
                path: url.to_owned(),
                source: e,
            })?;
        self.with_pool(pool).await
    }

    fn pool_options(&self, max: u32) -> SqlitePoolOptions {
        // SQLite connections do not go stale like network ones: no ping before use, no
        // recycling (a reopened connection re-reads the schema and loses its statement cache).
        SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
    }
}

/// Checks the path before SQLite sees it (so errors say what is wrong, in words), and creates
/// a missing database file with mode 0600: order metadata says what a bot trades.
fn prepare_file(path: &Path, create: bool) -> Result<(), SqliteError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(SqliteError::IsADirectory {
                path: path.to_owned(),
            });
        }
        Ok(meta) => {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{:o}", mode & 0o777),
                    "ordermeta-sqlite: the database is readable by other users; chmod 600 it"
                );
            }
            // SQLite would silently open an unwritable file read-only and fail at the first
            // write; say so now.
            return OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map(drop)
                .map_err(|e| SqliteError::NotWritable {
                    path: path.to_owned(),
                    source: e,
                });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(not_a_directory(path));
        }
        Err(e) => {
            return Err(SqliteError::Create {
                path: path.to_owned(),
                source: e,
            });
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(SqliteError::NotADirectory {
                path: path.to_owned(),
                parent: dir,
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(not_a_directory(path));
        }
        Err(_) => {
            return Err(SqliteError::MissingDirectory {
                path: path.to_owned(),
                dir,
            });
        }
    }
    if !create {
        return Err(SqliteError::DatabaseMissing {
            path: path.to_owned(),
        });
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        // SQLite treats an empty file as an empty database; the -wal and -shm files it
        // creates later copy this file's permissions.
        Ok(_) => Ok(()),
        // Another process created it in the meantime: fine, it is a database (or will be).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(SqliteError::Create {
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// The first ancestor of `path` that exists but is not a directory.
fn not_a_directory(path: &Path) -> SqliteError {
    let parent = path
        .ancestors()
        .skip(1)
        .find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()))
        .unwrap_or_else(|| path.parent().unwrap_or(path))
        .to_owned();
    SqliteError::NotADirectory {
        path: path.to_owned(),
        parent,
    }
}

/// Switches the database to WAL once (the mode is stored in the file). The switch needs an
/// exclusive lock that SQLite does not wait for with busy_timeout, so it is retried here until
/// the busy timeout has passed (two processes creating one file at once).
async fn ensure_wal(pool: &SqlitePool, busy_timeout: Duration) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    let deadline = Instant::now() + busy_timeout;
    loop {
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL")
            .fetch_one(&mut *conn)
            .await
        {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                // E.g. a file system without shared-memory support. Still correct (writers
                // are serialised, readers wait via busy_timeout), only less concurrent.
                tracing::warn!(
                    mode,
                    "ordermeta-sqlite: SQLite refused WAL mode; continuing in this journal mode"
                );
                return Ok(());
            }
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The SQLite [`MetadataStore`]. Cheap to clone (the pools are shared).
///
/// See the [crate docs](crate) for the guarantees and the schema.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Held by every write: one writer per process at a time, served in order.
    write_lock: Arc<Mutex<()>>,
    path: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating if missing, mode 0600) the database file at `path` with the default
    /// options.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteStoreOptions::new().open(path).await
    }

    /// Opens a database from a URL or a path with the default options; see
    /// [`SqliteStoreOptions::connect`].
    pub async fn connect(url_or_path: &str) -> Result<Self, StoreError> {
        SqliteStoreOptions::new().connect(url_or_path).await
    }

    /// Wraps an existing pool (after applying the migrations); see
    /// [`SqliteStoreOptions::with_pool`].
    pub async fn from_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        SqliteStoreOptions::new().with_pool(pool).await
    }

    /// Options to open a store with.
    pub fn options() -> SqliteStoreOptions {
        SqliteStoreOptions::new()
    }

    /// The pool the store writes through. Use it for your own statements on the same database
    /// (backups, ad-hoc queries); a long write transaction of yours makes the store's writes
    /// wait (up to `busy_timeout`).
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// The pool that reads (the same as [`pool`](Self::pool) for a wrapped pool or an
    /// in-memory store).
    pub fn read_pool(&self) -> &SqlitePool {
        &self.reader
    }

    /// The database file, when the store opened one itself.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Closes every connection, waiting for them to finish; SQLite checkpoints the WAL into
    /// the database when the last connection to a file closes.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// The status of `order_id` now (for a failed compare-and-set); `None` if absent.
    async fn current_status(&self, order_id: &str) -> Result<Option<OrderStatus>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT status FROM dydx_order_metadata WHERE order_id = ?")
                .bind(order_id)
                .fetch_optional(&self.writer)
                .await
                .map_err(backend)?;
        row.map(|(s,)| {
            s.parse::<OrderStatus>().map_err(|e| match e {
                StoreError::InvalidMetadata { reason, .. } => {
                    StoreError::invalid(Some(order_id), format!("column status: {reason}"))
                }
                other => other,
            })
        })
        .transpose()
    }
}

const INSERT: &str = concat!(
    "INSERT INTO dydx_order_metadata (",
    columns!(),
    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
);

const SELECT_ONE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM dydx_order_metadata WHERE order_id = ?"
);

/// The history append of every update: the entry goes to the end of the JSON array. A
/// stored history that is not JSON is left as it is (the update must not fail on it; the
/// read-back then reports the row as InvalidMetadata).
macro_rules! append_history {
    () => {
        "history = CASE WHEN json_valid(history) \
         THEN json_insert(history, '$[#]', json(?)) ELSE history END"
    };
}

/// `transition` for 1..=7 distinct starting statuses: one compare-and-set statement.
static TRANSITION: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..=OrderStatus::ALL.len())
        .map(|n| {
            let marks = vec!["?"; n].join(", ");
            format!(
                "UPDATE dydx_order_metadata SET status = ?, updated_at = ?, \
                 cancelled_at = coalesce(?, cancelled_at), tx_hash = coalesce(?, tx_hash), \
                 cancel_tx_hash = coalesce(?, cancel_tx_hash), version = version + 1, {} \
                 WHERE order_id = ? AND status IN ({marks}) RETURNING {}",
                append_history!(),
                columns!()
            )
        })
        .collect()
});

const EXPIRE_BY_BLOCK: &str = concat!(
    "UPDATE dydx_order_metadata INDEXED BY dydx_order_metadata_expire_block_idx \
     SET status = 'expired', updated_at = ?, version = version + 1, ",
    append_history!(),
    " WHERE status IN ('pending', 'active', 'cancelling') AND good_until_block IS NOT NULL \
     AND good_until_block <= ?"
);

const EXPIRE_BY_TIME: &str = concat!(
    "UPDATE dydx_order_metadata INDEXED BY dydx_order_metadata_expire_time_idx \
     SET status = 'expired', updated_at = ?, version = version + 1, ",
    append_history!(),
    " WHERE status IN ('pending', 'active', 'cancelling') AND good_til_block_time IS NOT NULL \
     AND good_til_block_time <= ?"
);

const PURGE: &str = "DELETE FROM dydx_order_metadata WHERE rowid IN (\
     SELECT rowid FROM dydx_order_metadata INDEXED BY dydx_order_metadata_purge_idx \
     WHERE status IN ('cancelled', 'expired', 'filled', 'failed') AND updated_at < ? LIMIT ?)";

/// Distinct statuses, in the order given.
fn distinct(statuses: &[OrderStatus]) -> Vec<OrderStatus> {
    let mut out: Vec<OrderStatus> = Vec::with_capacity(statuses.len());
    for s in statuses {
        if !out.contains(s) {
            out.push(*s);
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn expire_statements() -> [&'static str; 2] {
    [EXPIRE_BY_BLOCK, EXPIRE_BY_TIME]
}

#[cfg(test)]
pub(crate) fn purge_statement() -> &'static str {
    PURGE
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn record(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        meta.validate()?;
        let q = row::bind_record(sqlx::query(INSERT), meta)?;
        let _writing = self.write_lock.lock().await;
        q.execute(&self.writer)
            .await
            .map_err(|e| insert_error(&meta.order_id, e))?;
        Ok(())
    }

    async fn record_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError> {
        for m in metas {
            m.validate()?;
        }
        if metas.is_empty() {
            return Ok(());
        }
        let queries = metas
            .iter()
            .map(|m| row::bind_record(sqlx::query(INSERT), m))
            .collect::<Result<Vec<_>, _>>()?;
        // IMMEDIATE: the write lock is taken (or waited for) at BEGIN, so no statement inside
        // can meet SQLITE_BUSY half-way; an error drops the transaction, which rolls back.
        let _writing = self.write_lock.lock().await;
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        for (q, m) in queries.into_iter().zip(metas) {
            q.execute(&mut *tx)
                .await
                .map_err(|e| insert_error(&m.order_id, e))?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
        let row = sqlx::query(SELECT_ONE)
            .bind(order_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref()
            .map(|r| row::decode(r).map_err(|e| e.for_order(order_id)))
            .transpose()
    }

    async fn transition(&self, req: &TransitionRequest) -> Result<OrderMetadata, StoreError> {
        req.check()?;
        let from = distinct(&req.from);
        let at = truncate_micros(req.at);
        let entry = req.history_entry().to_json();
        let cancelled_at = (req.to == OrderStatus::Cancelled).then(|| to_micros(at));
        // A lost compare-and-set re-reads the status; if the order moved back into `from` in
        // between (another process), the compare-and-set is simply tried again.
        let _writing = self.write_lock.lock().await;
        for _ in 0..8 {
            let mut q = sqlx::query(&TRANSITION[from.len()])
                .bind(req.to.as_str())
                .bind(to_micros(at))
                .bind(cancelled_at)
                .bind(req.tx_hash.as_deref())
                .bind(req.cancel_tx_hash.as_deref())
                .bind(entry.as_str())
                .bind(req.order_id.as_str());
            for s in &from {
                q = q.bind(s.as_str());
            }
            let updated: Option<SqliteRow> =
                q.fetch_optional(&self.writer).await.map_err(backend)?;
            if let Some(row) = updated {
                return row::decode(&row).map_err(|e| e.for_order(&req.order_id));
            }
            match self.current_status(&req.order_id).await? {
                None => {
                    return Err(StoreError::NotFound {
                        order_id: req.order_id.clone(),
                    });
                }
                Some(current) if !from.contains(&current) => {
                    return Err(StoreError::conflict(&req.order_id, current, &req.from));
                }
                Some(_) => continue,
            }
        }
        Err(StoreError::backend(format!(
            "order {}: compare-and-set kept losing to concurrent writers",
            req.order_id
        )))
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.effective_limit() as usize;
        let statuses = distinct(&query.statuses);
        let mut sql = String::from(concat!(
            "SELECT ",
            columns!(),
            " FROM dydx_order_metadata WHERE 1 = 1"
        ));
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
        if query.after.is_some() {
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
        if let Some(a) = &query.after {
            q = q.bind(a.as_str());
        }
        // One row more than the page tells whether another page follows.
        let rows = q
            .bind(limit as i64 + 1)
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;

        let mut page = Page::default();
        for r in rows.iter().take(limit) {
            match row::decode(r) {
                Ok(m) => page.items.push(m),
                Err(e) => {
                    let order_id = row::order_id(r)?;
                    let reason = match e {
                        StoreError::InvalidMetadata { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    tracing::warn!(order_id, reason, "ordermeta-sqlite: corrupt record");
                    page.invalid
                        .push(ordermeta_core::InvalidRecord { order_id, reason });
                }
            }
        }
        if rows.len() > limit {
            page.next = Some(row::order_id(&rows[limit - 1])?);
        }
        Ok(page)
    }

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
        let bind = |sql, clock: u32| {
            sqlx::query(sql)
                .bind(at)
                .bind(entry.clone())
                .bind(i64::from(clock))
        };
        if statements.is_empty() {
            return Ok(0);
        }
        let _writing = self.write_lock.lock().await;
        match statements.as_slice() {
            [] => Ok(0),
            [(sql, clock)] => Ok(bind(sql, *clock)
                .execute(&self.writer)
                .await
                .map_err(backend)?
                .rows_affected()),
            _ => {
                let mut tx = self
                    .writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(backend)?;
                let mut n = 0;
                for (sql, clock) in &statements {
                    n += bind(sql, *clock)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?
                        .rows_affected();
                }
                tx.commit().await.map_err(backend)?;
                Ok(n)
            }
        }
    }

    async fn purge(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        // In batches, each its own short write: a purge of millions of rows must not hold the
        // write lock for seconds while other processes wait on busy_timeout.
        // `updated_at < older_than` on whole microseconds: round a sub-µs cut-off up.
        let cut = to_micros(older_than)
            + i64::from(!older_than.timestamp_subsec_nanos().is_multiple_of(1_000));
        let mut total = 0;
        loop {
            let _writing = self.write_lock.lock().await;
            let n = sqlx::query(PURGE)
                .bind(cut)
                .bind(PURGE_BATCH_SIZE)
                .execute(&self.writer)
                .await
                .map_err(backend)?
                .rows_affected();
            total += n;
            if n < PURGE_BATCH_SIZE as u64 {
                return Ok(total);
            }
        }
    }

    async fn health(&self) -> Result<(), StoreError> {
        // Reads the file (a bare `SELECT 1` would not touch it).
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ordermeta_migrations")
            .fetch_one(&self.reader)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
