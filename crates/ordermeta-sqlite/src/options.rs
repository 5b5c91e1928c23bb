//! [`SqliteStoreOptions`]: how a [`SqliteStore`] is configured and opened (from a path, a URL
//! or an existing pool), and the checks and settings of the database file that opening does.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use ordermeta_core::StoreError;
use ordermeta_core::backend::{
    DEFAULT_OPERATION_TIMEOUT, UrlError, check_scheme, no_params, scheme_of, with_deadline,
};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{SqliteError, is_busy};
use crate::store::SqliteStore;
use crate::wal::Checkpointer;
use ordermeta_core::backend::Deadlines;

/// The URL schemes of this store (a plain file path, without a scheme, is an SQLite store
/// too).
pub const URL_SCHEMES: &[&str] = &["sqlite"];
/// The WAL size (bytes) SQLite truncates the file back to after a checkpoint.
const JOURNAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Default [`SqliteStoreOptions::busy_timeout`]: 4/5 of the default operation timeout, so
/// that a write kept out by another process fails with a busy error before its deadline.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(4);
/// Default [`SqliteStoreOptions::max_read_connections`].
pub const DEFAULT_MAX_READ_CONNECTIONS: u32 = 4;
/// Default [`SqliteStoreOptions::acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`SqliteStoreOptions::read_back_timeout`].
pub const DEFAULT_READ_BACK_TIMEOUT: Duration = Duration::from_secs(1);
/// Default [`SqliteStoreOptions::max_batch`].
pub const DEFAULT_MAX_BATCH: usize = 64;
/// The largest [`SqliteStoreOptions::max_batch`]: 512 records are 14,336 bound parameters,
/// within SQLite's limit of 32,766 per statement.
pub const MAX_BATCH_LIMIT: usize = 512;

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
    operation_timeout: Duration,
    read_back_timeout: Duration,
    group_commit: bool,
    max_batch: usize,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        SqliteStoreOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            max_read_connections: DEFAULT_MAX_READ_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            create_if_missing: true,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            read_back_timeout: DEFAULT_READ_BACK_TIMEOUT,
            group_commit: true,
            max_batch: DEFAULT_MAX_BATCH,
        }
    }
}

impl SqliteStoreOptions {
    /// The defaults: `synchronous = NORMAL`, 4 s busy timeout (capped at 4/5 of the operation
    /// timeout), 4 read connections, 30 s acquire timeout, create the file if missing, 5 s
    /// operation timeout, 1 s read-back timeout, group commit on in batches of up to 64 calls.
    pub fn new() -> Self {
        Self::default()
    }

    /// The options a store URL carries, and the URL (or plain path) left for
    /// [`connect`](Self::connect). An SQLite URL carries no ordermeta parameter: `schema=`
    /// and `namespace=` are refused (they belong to other stores, so they are probably a
    /// mistake); the rest of the URL is sqlx's (`mode`, `cache`, `immutable`, `vfs`…).
    ///
    /// ```
    /// use ordermeta_sqlite::SqliteStoreOptions;
    ///
    /// let (_options, url) = SqliteStoreOptions::from_url("sqlite:orders.db?mode=rwc")?;
    /// assert_eq!(url, "sqlite:orders.db?mode=rwc");
    /// let (_options, path) = SqliteStoreOptions::from_url("/var/lib/bot/orders.db")?;
    /// assert_eq!(path, "/var/lib/bot/orders.db");
    /// assert!(SqliteStoreOptions::from_url("sqlite:orders.db?schema=x").is_err());
    /// # Ok::<(), ordermeta_core::backend::UrlError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<(SqliteStoreOptions, String), UrlError> {
        // A plain path has no scheme: it is a file, and SQLite is the store for files.
        if scheme_of(url).is_some() {
            check_scheme(url, URL_SCHEMES, "SQLite")?;
        }
        no_params(url, "an SQLite")?;
        Ok((Self::new(), url.to_owned()))
    }

    /// Durability of commits; see [`Synchronous`] for what each level risks.
    pub fn synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }

    /// How long a statement waits for another **process** holding the write lock before it
    /// fails with `SQLITE_BUSY` (as [`StoreError::Backend`]; nothing was written). Writers
    /// inside one process never wait on it: they queue for the store's own write lock, one at
    /// a time.
    ///
    /// Capped at 4/5 of the [operation timeout](Self::operation_timeout): SQLite waits for a
    /// lock inside the statement, where the deadline cannot stop it, so the wait must end
    /// before the deadline does. A write kept out by another process then fails with a busy
    /// error (nothing written) rather than with a `Timeout` whose statement might still
    /// commit.
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
    /// `record_many`, every reader is taken) before failing with `Backend`. The operation
    /// deadline bounds the wait too.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Whether to create a missing database file (default on; directories are never
    /// created). The file is created with mode `0600`, and a warning naming its absolute path
    /// is logged ([`SqliteStore::created`] says so too). Off, a missing file is
    /// [`SqliteError::DatabaseMissing`](crate::SqliteError::DatabaseMissing), naming the
    /// absolute path that was looked for. A URL's `mode=rw` turns it off, `mode=rwc` on.
    pub fn create_if_missing(mut self, on: bool) -> Self {
        self.create_if_missing = on;
        self
    }

    /// The deadline of every store call (default
    /// [`DEFAULT_OPERATION_TIMEOUT`](ordermeta_core::backend::DEFAULT_OPERATION_TIMEOUT),
    /// 5 s), including its wait for the write lock and for a connection, and of opening the
    /// store (file checks, WAL switch, migrations). A call past it fails with
    /// [`StoreError::Timeout`]. For a write (`record`, `record_many`, `transition`) that
    /// means the outcome is unknown; the store first reads the record back (within the
    /// [read-back timeout](Self::read_back_timeout)) and answers success if the write
    /// applied. `purge` applies it to each batch.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The deadline of the read-back after a write missed the operation deadline (default
    /// [`DEFAULT_READ_BACK_TIMEOUT`], 1 s). Such a write answers within
    /// `operation_timeout + read_back_timeout`.
    pub fn read_back_timeout(mut self, timeout: Duration) -> Self {
        self.read_back_timeout = timeout;
        self
    }

    /// Group commit (default on): the `record`, `transition` and `update` calls of many tasks
    /// are written together by one writer task per store, in one transaction and as few
    /// statements as the batch allows (a multi-row `INSERT`, one compare-and-set `UPDATE` for
    /// many orders), instead of one statement and one commit per call. Each call keeps its
    /// own answer (`AlreadyExists`, `StatusConflict`, … for its own order), its own deadline,
    /// and its durability: it returns after the `COMMIT` holding its write. A call alone
    /// takes its single statement, as with group commit off; under load, the throughput of
    /// writes grows several times (see the [crate docs](crate#performance-group-commit)).
    ///
    /// Off, every call runs its own statement behind the store's write lock. `record_many`,
    /// `expire` and `purge` are the same either way.
    pub fn group_commit(mut self, on: bool) -> Self {
        self.group_commit = on;
        self
    }

    /// The most calls one group commit writes (default [`DEFAULT_MAX_BATCH`]; 1 to
    /// [`MAX_BATCH_LIMIT`]). Larger batches amortise more per statement and hold SQLite's write
    /// lock longer (another process waits for one batch at most).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.clamp(1, MAX_BATCH_LIMIT);
        self
    }

    /// The store, with group commit if it is on.
    fn finish(&self, store: SqliteStore) -> SqliteStore {
        if self.group_commit {
            store.with_group_commit(self.max_batch)
        } else {
            store
        }
    }

    fn deadlines(&self) -> Deadlines {
        Deadlines {
            operation: self.operation_timeout,
            read_back: self.read_back_timeout,
        }
    }

    /// The busy timeout the connections get: the configured one, ending before the
    /// operation deadline.
    fn effective_busy_timeout(&self) -> Duration {
        let cap = self.operation_timeout - self.operation_timeout / 5;
        self.busy_timeout.min(cap)
    }

    /// Opens (creating if allowed) the database file at `path`.
    pub async fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::new().filename(path.as_ref());
        self.connect_with(opts).await
    }

    /// Opens a database from a URL (`sqlite://path/to/orders.db`, `sqlite:orders.db?...`,
    /// `sqlite::memory:`) or a plain file path.
    ///
    /// The URL's `mode` says whether a missing file may be created: `mode=rw` opens an
    /// existing database only (a missing file is
    /// [`SqliteError::DatabaseMissing`](crate::SqliteError::DatabaseMissing), naming its
    /// absolute path), `mode=rwc` creates it. Without a `mode` (and for a plain path), the
    /// options decide: [`create_if_missing`](Self::create_if_missing), on by default — and a
    /// store created that way is reported (a warning with its absolute path, and
    /// [`SqliteStore::created`]). A relative path is resolved from the working directory.
    ///
    /// `sqlite::memory:` (or `mode=memory`) gives a private in-memory store on one
    /// connection: nothing is durable, nothing is shared with other processes.
    pub async fn connect(mut self, url_or_path: &str) -> Result<SqliteStore, StoreError> {
        if !url_or_path.starts_with("sqlite:") {
            return self.open(url_or_path).await;
        }
        match url_mode(url_or_path) {
            Some("rw" | "ro") => self.create_if_missing = false,
            Some("rwc") => self.create_if_missing = true,
            _ => {}
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
        let after = self.operation_timeout;
        with_deadline("open", after, self.open_file(opts)).await
    }

    async fn open_file(self, opts: SqliteConnectOptions) -> Result<SqliteStore, StoreError> {
        // Absolute from here on: errors, the warning and `path()` say which file it is,
        // whatever the working directory was.
        let path = std::path::absolute(opts.get_filename())
            .unwrap_or_else(|_| opts.get_filename().to_path_buf());
        let opts = opts.filename(&path);
        let busy_timeout = self.effective_busy_timeout();
        let created = prepare_file(&path, self.create_if_missing)?;
        let display = path.display().to_string();
        let open_err = |e: sqlx::Error| SqliteError::Open {
            path: display.clone(),
            source: e,
        };
        let opts = opts
            .create_if_missing(false)
            .busy_timeout(busy_timeout)
            .synchronous(self.synchronous.into())
            // After a checkpoint the WAL restarts from its beginning; this truncates the file
            // back to 64 MiB then, so one bulk expire or purge does not leave it huge for ever.
            .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string())
            // Checkpoints run in the background and after bulk batches, not inside a commit
            // someone waits for (see `wal`); the automatic one only as a safety net.
            .pragma(
                "wal_autocheckpoint",
                crate::wal::AUTOCHECKPOINT_PAGES.to_string(),
            );

        // One writer at a time per process (the store's write lock): in-process writers queue
        // for it in order instead of meeting SQLITE_BUSY, and busy_timeout only arbitrates
        // between processes. The pool has two connections so that sqlx's check of a returned
        // connection overlaps the next write instead of delaying it.
        let writer = self
            .pool_options(2)
            .connect_with(opts.clone())
            .await
            .map_err(open_err)?;
        ensure_wal(&writer, busy_timeout).await.map_err(open_err)?;
        crate::migrate::run(&writer).await?;
        let reader = self
            .pool_options(self.max_read_connections)
            .connect_with(opts.clone())
            .await
            .map_err(open_err)?;
        let checkpointer = Checkpointer::start(opts, self.pool_options(1), self.operation_timeout)
            .await
            .map_err(open_err)?;
        if created {
            tracing::warn!(
                path = %path.display(),
                "ordermeta-sqlite: created a new, empty store at {} (it did not exist); if this \
                 bot placed orders before, it is looking in the wrong place: check the path \
                 and the working directory, or open with `mode=rw` to refuse creating",
                path.display()
            );
        }
        let store = SqliteStore::new(writer, reader, Some(path), self.deadlines())
            .with_created(created)
            .with_checkpointer(checkpointer);
        Ok(self.finish(store))
    }

    /// Uses an existing pool for reads and writes, after applying the migrations.
    ///
    /// The pool's own connect options apply (the store does not change the journal mode of
    /// a database it did not open): give it `journal_mode(Wal)` and a `busy_timeout` for the
    /// concurrency the [crate docs](crate#concurrency) describe. The store's writes still
    /// take its write lock, and multi-statement writes still use `BEGIN IMMEDIATE`. The
    /// operation deadline applies to the migrations and to every call; keep the pool's
    /// `busy_timeout` below it (see [`busy_timeout`](Self::busy_timeout)). The store does not
    /// checkpoint in the background for such a pool (its `wal_autocheckpoint` applies), only
    /// after the batches of its bulk work (see [Concurrency](crate#concurrency)).
    pub async fn with_pool(self, pool: SqlitePool) -> Result<SqliteStore, StoreError> {
        let deadlines = self.deadlines();
        with_deadline("open", deadlines.operation, async {
            crate::migrate::run(&pool).await?;
            Ok(self.finish(SqliteStore::new(pool.clone(), pool, None, deadlines)))
        })
        .await
    }

    async fn connect_memory(
        self,
        opts: SqliteConnectOptions,
        url: &str,
    ) -> Result<SqliteStore, StoreError> {
        // One connection that never closes: an in-memory database lives exactly as long as
        // its last connection.
        let deadlines = self.deadlines();
        let opening = self
            .pool_options(1)
            .connect_with(opts.busy_timeout(self.effective_busy_timeout()));
        with_deadline("open", deadlines.operation, async {
            let pool = opening.await.map_err(|e| SqliteError::Open {
                path: url.to_owned(),
                source: e,
            })?;
            crate::migrate::run(&pool).await?;
            let store = SqliteStore::new(pool.clone(), pool, None, deadlines).with_in_memory();
            Ok(self.finish(store))
        })
        .await
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

/// The `mode` query parameter of an SQLite URL (`ro`, `rw`, `rwc`, `memory`), if any.
fn url_mode(url: &str) -> Option<&str> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| pair.strip_prefix("mode="))
}

/// Checks the path before SQLite sees it (so errors say what is wrong, in words), and creates
/// a missing database file with mode 0600: order metadata says what a bot trades. Returns
/// whether it created the file.
fn prepare_file(path: &Path, create: bool) -> Result<bool, SqliteError> {
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
                .map(|_| false)
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
        Ok(_) => Ok(true),
        // Another process created it in the meantime: fine, it is a database (or will be).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
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

/// Opening with the default options: the short ways to a store.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_plain_paths_pass_through_unchanged() {
        for url in [
            "orders.db",
            "./a:b/orders.db",
            "/var/lib/bot/orders.db",
            "sqlite:orders.db?mode=rwc",
            "sqlite::memory:",
        ] {
            let (_, driver_url) = SqliteStoreOptions::from_url(url).expect(url);
            assert_eq!(driver_url, url);
        }
    }

    #[test]
    fn the_mode_parameter_is_read() {
        for (url, mode) in [
            ("sqlite:orders.db?mode=rw", Some("rw")),
            ("sqlite:orders.db?cache=shared&mode=rwc", Some("rwc")),
            ("sqlite:orders.db", None),
            ("sqlite:orders.db?cache=shared", None),
        ] {
            assert_eq!(url_mode(url), mode, "{url}");
        }
    }

    #[test]
    fn other_stores_urls_and_parameters_are_refused() {
        for url in [
            "sqlite:orders.db?schema=x",
            "sqlite:orders.db?namespace=x",
            "orders.db?namespace=x",
            "postgres://h/db",
            "redis://h",
        ] {
            assert!(SqliteStoreOptions::from_url(url).is_err(), "{url}");
        }
    }
}
