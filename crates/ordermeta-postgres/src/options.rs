//! [`PgStoreOptions`]: how a [`PgStore`] connects (from a URL, parsed options or an existing
//! pool), where it keeps its tables and how it sizes its pool.

use std::str::FromStr;
use std::time::Duration;

use ordermeta_core::StoreError;
use ordermeta_core::backend::{
    DEFAULT_OPERATION_TIMEOUT, UrlError, check_scheme, take_param, with_deadline,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::error::{PgError, connect_error};
use crate::group::GroupOptions;
use crate::migrate;
use crate::schema::Schema;
use crate::store::PgStore;
use ordermeta_core::backend::Deadlines;

/// The URL schemes of this store.
pub const URL_SCHEMES: &[&str] = &["postgres", "postgresql"];
/// The schema the store uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "ordermeta";
/// Default [`PgStoreOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// Default [`PgStoreOptions::acquire_timeout`]: 4/5 of the default operation timeout.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(4);
/// Default [`PgStoreOptions::purge_batch_size`].
pub const DEFAULT_PURGE_BATCH_SIZE: u32 = 5_000;
/// Default [`PgStoreOptions::ping_after_idle`]: a connection idle longer is pinged before use.
pub const DEFAULT_PING_AFTER_IDLE: Duration = Duration::from_secs(15);
/// Default [`PgStoreOptions::group_commit_max_batch`].
pub const DEFAULT_GROUP_COMMIT_MAX_BATCH: u16 = 64;
/// Most [`PgStoreOptions::group_commit_writers`] by default (half the pool, at most this).
pub const DEFAULT_GROUP_COMMIT_WRITERS: u32 = 8;
/// Default [`PgStoreOptions::group_commit_threshold`].
pub const DEFAULT_GROUP_COMMIT_THRESHOLD: u32 = 8;
/// Default [`PgStoreOptions::read_back_timeout`].
pub const DEFAULT_READ_BACK_TIMEOUT: Duration = Duration::from_secs(1);

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
///     // Every call within 3 s; the server cancels lock waits after 1 s.
///     .operation_timeout(Duration::from_secs(3))
///     .lock_timeout(Duration::from_secs(1))
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
    ping_after_idle: Duration,
    group_commit: bool,
    group_commit_max_batch: u16,
    group_commit_writers: Option<u32>,
    group_commit_threshold: u32,
    migrate: bool,
    purge_batch_size: u32,
    operation_timeout: Duration,
    read_back_timeout: Duration,
    statement_timeout: Option<Duration>,
    lock_timeout: Option<Duration>,
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
            ping_after_idle: DEFAULT_PING_AFTER_IDLE,
            group_commit: true,
            group_commit_max_batch: DEFAULT_GROUP_COMMIT_MAX_BATCH,
            group_commit_writers: None,
            group_commit_threshold: DEFAULT_GROUP_COMMIT_THRESHOLD,
            migrate: true,
            purge_batch_size: DEFAULT_PURGE_BATCH_SIZE,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            read_back_timeout: DEFAULT_READ_BACK_TIMEOUT,
            statement_timeout: None,
            lock_timeout: None,
        }
    }
}

impl PgStoreOptions {
    /// The defaults: schema [`DEFAULT_SCHEMA`], up to [`DEFAULT_MAX_CONNECTIONS`]
    /// connections, [`DEFAULT_ACQUIRE_TIMEOUT`], migrations on, a 5 s operation timeout
    /// with `statement_timeout` 4 s and `lock_timeout` 3 s, a 1 s read-back timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// The options a store URL carries, and the URL left for sqlx: ordermeta's own
    /// `schema=<name>` query parameter (unencoded) is taken out; `namespace=` (a Redis
    /// store's) is refused, as is a scheme other than [`URL_SCHEMES`]. The rest of the URL
    /// (`sslmode`, `application_name`, …) is sqlx's.
    ///
    /// ```
    /// use ordermeta_postgres::PgStoreOptions;
    ///
    /// let (_options, url) =
    ///     PgStoreOptions::from_url("postgres://bot@db/trading?schema=bots_eu&sslmode=require")?;
    /// assert_eq!(url, "postgres://bot@db/trading?sslmode=require");
    /// assert!(PgStoreOptions::from_url("postgres://bot@db/trading?namespace=x").is_err());
    /// # Ok::<(), ordermeta_core::backend::UrlError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<(PgStoreOptions, String), UrlError> {
        check_scheme(url, URL_SCHEMES, "PostgreSQL")?;
        let (rest, schema) = take_param(url, "schema")?;
        let mut options = Self::new();
        if let Some(schema) = schema {
            options = options.schema(schema);
        }
        Ok((options, rest))
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
    /// is down or does not answer) before failing with a `Backend` error; nothing was sent
    /// then. Also bounds the first connection. Capped at 4/5 of the
    /// [operation timeout](Self::operation_timeout), so that a call that could not even get
    /// a connection says so before its deadline instead of ending in a `Timeout`.
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

    /// Pings a connection that was idle longer than [`ping_after_idle`](Self::ping_after_idle)
    /// before handing it out (default on). Off saves that round trip, but after a server
    /// restart each stale pooled connection then fails one operation with a `Backend` error
    /// before the pool replaces it.
    pub fn test_before_acquire(mut self, on: bool) -> Self {
        self.test_before_acquire = on;
        self
    }

    /// With [`test_before_acquire`](Self::test_before_acquire) on, how long a connection must
    /// have been idle in the pool to be pinged before use (default
    /// [`DEFAULT_PING_AFTER_IDLE`], 15 s): one used moments ago costs no round trip (sqlx
    /// already checks every connection as it comes back to the pool, and pings every idle
    /// one before use unless told otherwise). A server restarted less than this after a
    /// connection's last use fails one call on it with a `Backend` error (nothing written)
    /// before the pool replaces it. `Duration::ZERO`: ping before every use.
    pub fn ping_after_idle(mut self, idle: Duration) -> Self {
        self.ping_after_idle = idle;
        self
    }

    /// Group commit (default on): `record`s and transitions that several tasks run at the
    /// same time are coalesced by a few writer tasks into one statement per batch (a
    /// multi-row `INSERT … ON CONFLICT DO NOTHING`, one `UPDATE … FROM UNNEST` whose rows
    /// each carry their own compare-and-set). Every call keeps its own answer
    /// (`AlreadyExists`, `StatusConflict`…) and returns only once the statement holding its
    /// write has committed; a call made while no other write is in progress runs its single
    /// statement directly, as with group commit off. Needs a tokio runtime when the store is
    /// built (off without one). See the crate docs, "Performance".
    pub fn group_commit(mut self, on: bool) -> Self {
        self.group_commit = on;
        self
    }

    /// Most writes in one group commit batch (default [`DEFAULT_GROUP_COMMIT_MAX_BATCH`]).
    pub fn group_commit_max_batch(mut self, n: u16) -> Self {
        self.group_commit_max_batch = n.max(1);
        self
    }

    /// Writer tasks of the group commit, each running one batch at a time on its own pooled
    /// connection (default: half the pool's connections, at most
    /// [`DEFAULT_GROUP_COMMIT_WRITERS`]; 5 with the default pool): while one batch waits for
    /// its commit, the others gather and run. Each holds a connection only while writes keep
    /// coming.
    pub fn group_commit_writers(mut self, n: u32) -> Self {
        self.group_commit_writers = Some(n.max(1));
        self
    }

    /// How many writes must already be in progress for a new one to join a group commit
    /// batch (default [`DEFAULT_GROUP_COMMIT_THRESHOLD`]); below that it runs its single
    /// statement directly on the pool. 1: batch as soon as any other write is in progress.
    pub fn group_commit_threshold(mut self, n: u32) -> Self {
        self.group_commit_threshold = n.max(1);
        self
    }

    /// The group commit of a store over a pool of `pool_size` connections.
    fn group(&self, pool_size: u32) -> Option<GroupOptions> {
        self.group_commit.then_some(GroupOptions {
            writers: self
                .group_commit_writers
                .unwrap_or((pool_size / 2).clamp(1, DEFAULT_GROUP_COMMIT_WRITERS)),
            max_batch: usize::from(self.group_commit_max_batch),
            threshold: self.group_commit_threshold as usize,
            deadline: self.operation_timeout,
        })
    }

    /// Apply pending migrations when the store is built (default on). Off, the store only
    /// checks that the schema is fully migrated: use it when the application role may not
    /// create tables and an administrator migrates.
    pub fn migrate(mut self, on: bool) -> Self {
        self.migrate = on;
        self
    }

    /// Rows [`purge`](ordermeta_core::MetadataStore::purge) deletes, and
    /// [`expire`](ordermeta_core::MetadataStore::expire) expires, per statement (default
    /// [`DEFAULT_PURGE_BATCH_SIZE`]); each batch commits on its own so no lock is held long.
    pub fn purge_batch_size(mut self, n: u32) -> Self {
        self.purge_batch_size = n.max(1);
        self
    }

    /// The deadline of every store call (default
    /// [`DEFAULT_OPERATION_TIMEOUT`](ordermeta_core::backend::DEFAULT_OPERATION_TIMEOUT),
    /// 5 s), its wait for a connection included, and of connecting (first connection,
    /// role lookup, migrations). A call past it fails with [`StoreError::Timeout`]: the server
    /// or the network did not answer in time. For a write (`record`, `record_many`,
    /// `transition`) that means the outcome is unknown; the store first reads the record back
    /// (within the [read-back timeout](Self::read_back_timeout)) and answers success if the
    /// write applied. `purge` applies it to each batch.
    ///
    /// Unless set, [`statement_timeout`](Self::statement_timeout) is 4/5 of it and
    /// [`lock_timeout`](Self::lock_timeout) 3/5, so that a slow statement or a lock wait is
    /// cancelled by the server, with a precise error and nothing written, before the deadline.
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

    /// The server-side `statement_timeout` of every connection the store opens (default 4/5
    /// of the operation timeout, 4 s): the server cancels a statement running longer, which
    /// fails with [`PgError::StatementTimeout`] and writes nothing. `Duration::ZERO` turns it
    /// off. Not applied to a pool given to [`with_pool`](Self::with_pool).
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// The server-side `lock_timeout` of every connection the store opens (default 3/5 of the
    /// operation timeout, 3 s): a statement waiting longer for a lock another session holds
    /// (a row another transaction is changing, the table a migration alters) fails with
    /// [`PgError::LockTimeout`] and writes nothing. `Duration::ZERO` turns it off. Not applied
    /// to a pool given to [`with_pool`](Self::with_pool).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    fn deadlines(&self) -> Deadlines {
        Deadlines {
            operation: self.operation_timeout,
            read_back: self.read_back_timeout,
        }
    }

    /// The `statement_timeout` and `lock_timeout` the connections get.
    fn server_timeouts(&self) -> (Duration, Duration) {
        let op = self.operation_timeout;
        (
            self.statement_timeout.unwrap_or(op - op / 5),
            self.lock_timeout.unwrap_or(op - op * 2 / 5),
        )
    }

    /// The acquire timeout the pool gets: the configured one, ending before the deadline.
    fn effective_acquire_timeout(&self) -> Duration {
        let op = self.operation_timeout;
        self.acquire_timeout.min(op - op / 5)
    }

    /// The sqlx pool options these settings stand for.
    pub fn pool_options(&self) -> PgPoolOptions {
        let options = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections.min(self.max_connections))
            .acquire_timeout(self.effective_acquire_timeout())
            .idle_timeout(self.idle_timeout)
            .max_lifetime(self.max_lifetime);
        let idle = self.ping_after_idle;
        if !self.test_before_acquire || idle.is_zero() {
            return options.test_before_acquire(self.test_before_acquire);
        }
        // sqlx's own test pings every idle connection, however briefly idle; this one only
        // those idle longer than the threshold. A failed ping discards the connection and the
        // pool tries another (or opens one), as with sqlx's test.
        options
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= idle {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
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

    /// Like [`connect`](Self::connect), from parsed connect options. The store's
    /// `statement_timeout` and `lock_timeout` are added to the options' own startup
    /// `options` (PgBouncer refuses startup options unless told to ignore them:
    /// `ignore_startup_parameters = options`, and then the timeouts must be set on the
    /// role or database instead).
    pub async fn connect_with(self, opts: PgConnectOptions) -> Result<PgStore, StoreError> {
        let after = self.operation_timeout;
        with_deadline("connect", after, self.connect_now(opts)).await
    }

    async fn connect_now(self, opts: PgConnectOptions) -> Result<PgStore, StoreError> {
        let schema = Schema::new(&self.schema)?;
        let opts = match opts.get_application_name() {
            Some(_) => opts,
            None => opts.application_name("ordermeta"),
        };
        let (statement, lock) = self.server_timeouts();
        let opts = opts.options([
            ("statement_timeout", format!("{}ms", statement.as_millis())),
            ("lock_timeout", format!("{}ms", lock.as_millis())),
        ]);
        let role = opts.get_username().to_owned();
        let target = format!(
            "{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or(&role)
        );
        // One plain connection first: its error says what is wrong (refused, password,
        // unknown database), where a pool would only report a timeout after retrying.
        let first = self.effective_acquire_timeout();
        let mut conn = match tokio::time::timeout(first, opts.connect()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(connect_error(e, target, &role).into()),
            Err(_) => {
                return Err(PgError::Connect {
                    target,
                    source: sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {first:?}"),
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
        Ok(PgStore::new(
            pool,
            schema,
            role,
            self.purge_batch_size,
            self.deadlines(),
            self.group(self.max_connections),
        ))
    }

    /// Wraps an existing pool (its own sizing and connection settings apply; this builder's
    /// pool settings, `statement_timeout` and `lock_timeout` are ignored) and migrates
    /// (unless turned off). The operation deadline applies to the migrations and to every
    /// call.
    pub async fn with_pool(self, pool: PgPool) -> Result<PgStore, StoreError> {
        let after = self.operation_timeout;
        with_deadline("connect", after, async {
            let schema = Schema::new(&self.schema)?;
            let mut conn = pool
                .acquire()
                .await
                .map_err(|e| PgError::Database { source: e })?;
            let role = self.prepare(&mut conn, &schema).await?;
            drop(conn);
            let group = self.group(pool.options().get_max_connections());
            Ok(PgStore::new(
                pool,
                schema,
                role,
                self.purge_batch_size,
                self.deadlines(),
                group,
            ))
        })
        .await
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

/// Connecting with the default options: the short ways to a store.
impl PgStore {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_taken_from_the_url_and_the_rest_left_for_sqlx() {
        let (options, url) =
            PgStoreOptions::from_url("postgresql://u:p@h/db?sslmode=require&schema=bot_1")
                .expect("valid");
        assert_eq!(url, "postgresql://u:p@h/db?sslmode=require");
        assert_eq!(options.schema, "bot_1");
        let (options, url) = PgStoreOptions::from_url("postgres://h/db").expect("valid");
        assert_eq!(
            (url.as_str(), options.schema.as_str()),
            ("postgres://h/db", DEFAULT_SCHEMA)
        );
    }

    #[test]
    fn other_stores_urls_and_parameters_are_refused() {
        for url in [
            "postgres://h/db?namespace=x",
            "postgres://h/db?schema=",
            "redis://h?schema=x",
            "sqlite:orders.db",
            "orders.db",
        ] {
            assert!(PgStoreOptions::from_url(url).is_err(), "{url}");
        }
    }
}
