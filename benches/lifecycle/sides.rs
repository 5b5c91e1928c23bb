//! The two sides of the lifecycle bench: ours through `MetadataStore`, bare sqlx running the
//! store's own statements; and the backends they run on.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ordermeta::postgres::sqlx::postgres::{PgPool, PgPoolOptions};
use ordermeta::postgres::{BenchSql, PgStoreOptions};
use ordermeta::sqlite::sqlx::SqlitePool;
use ordermeta::sqlite::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use ordermeta::sqlite::{SqliteStore, Synchronous, bench_sql};
use ordermeta::{
    MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus, TransitionRequest, now, to_micros,
};
use ordermeta_core::{ANONYMOUS_CLAIM, DEFAULT_LEASE};

use crate::PG_CONNECTIONS;
use crate::support::pg_bare::{PgEncoded, PgTransition, pg_encode, pg_insert, pg_transition};
use crate::support::sqlite_bare::{BareTransition, Encoded, bare_insert, bare_transition, encode};
use crate::support::{database_url, postgres_missing, unique_name};

/// The steps of an order's life, in order.
pub const STEPS: [&str; 4] = ["record", "active", "claim", "cancelled"];

const PLACE_HASH: &str = "PLACEHASH";
const CANCEL_HASH: &str = "CANCELHASH";

/// Where a side runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, WAL, `synchronous = NORMAL` (the store's default).
    SqliteNormal,
    /// SQLite, WAL, `synchronous = FULL` (an fsync per commit).
    SqliteFull,
    /// PostgreSQL at `DATABASE_URL`.
    Postgres,
}

impl Backend {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sqlite-normal" | "sqlite" => Some(Backend::SqliteNormal),
            "sqlite-full" => Some(Backend::SqliteFull),
            "postgres" | "pg" => Some(Backend::Postgres),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::SqliteNormal => "SQLite NORMAL",
            Backend::SqliteFull => "SQLite FULL",
            Backend::Postgres => "PostgreSQL",
        }
    }

    /// Ours and bare, each on its own fresh database.
    pub async fn open(self, dir: &Path) -> (Arc<dyn Lifecycle>, Arc<dyn Lifecycle>) {
        match self {
            Backend::SqliteNormal | Backend::SqliteFull => {
                let sync = if self == Backend::SqliteFull {
                    Synchronous::Full
                } else {
                    Synchronous::Normal
                };
                let tag = if sync == Synchronous::Full {
                    "full"
                } else {
                    "normal"
                };
                let store = SqliteStore::options()
                    .synchronous(sync)
                    .open(dir.join(format!("ours-{tag}.db")))
                    .await
                    .expect("our SQLite store");
                let bare = BareSqlite::open(&dir.join(format!("bare-{tag}.db")), sync).await;
                (Arc::new(Ours::new(store)), Arc::new(bare))
            }
            Backend::Postgres => {
                let url = database_url();
                let store = PgStoreOptions::new()
                    .schema(unique_name("life_ours"))
                    .max_connections(PG_CONNECTIONS)
                    .connect(&url)
                    .await
                    .unwrap_or_else(|e| postgres_missing(&url, e));
                let schema = store.schema().to_owned();
                let ours = Ours::new(store).dropping_schema(schema);
                (Arc::new(ours), Arc::new(BarePg::open(&url).await))
            }
        }
    }
}

/// One order's inputs, prepared before timing starts.
pub enum Prepared {
    Ours(Box<OrderMetadata>),
    Sqlite(Box<(Encoded, [String; 3])>),
    Pg(Box<(PgEncoded, [String; 3])>),
}

/// A side of the bench: runs an order's steps.
#[async_trait]
pub trait Lifecycle: Send + Sync {
    /// Untimed: what the side needs for `meta`.
    fn prepare(&self, meta: OrderMetadata) -> Prepared;
    /// Runs step `step` (an index of [`STEPS`]) of the order; panics on failure (a bench
    /// that lost its own write measures nothing).
    async fn step(&self, step: usize, order: &Prepared);
    /// Drops what the side created on a shared server.
    async fn close(&self);
}

/// The history entries bare appends, one per transition (built before timing, as the JSON
/// the store writes).
fn entries(id: &str) -> [String; 3] {
    let e = |from, to| {
        TransitionRequest::new(id, &[from], to)
            .history_entry()
            .to_json()
    };
    [
        e(OrderStatus::Pending, OrderStatus::Active),
        e(OrderStatus::Active, OrderStatus::Cancelling),
        e(OrderStatus::Cancelling, OrderStatus::Cancelled),
    ]
}

fn lease_until() -> DateTime<Utc> {
    now() + chrono::Duration::from_std(DEFAULT_LEASE).unwrap_or_default()
}

/// Ours, through the store trait.
pub struct Ours {
    store: Arc<dyn MetadataStore>,
    pg: Option<(PgPool, String)>,
}

impl Ours {
    fn new<S: MetadataStore>(store: S) -> Self {
        Ours {
            store: Arc::new(store),
            pg: None,
        }
    }

    fn dropping_schema(mut self, schema: String) -> Self {
        // A pool of its own for the final DROP: the store's may be closing.
        self.pg = Some((PgPool::connect_lazy(&database_url()).expect("url"), schema));
        self
    }
}

#[async_trait]
impl Lifecycle for Ours {
    fn prepare(&self, meta: OrderMetadata) -> Prepared {
        Prepared::Ours(Box::new(meta))
    }

    async fn step(&self, step: usize, order: &Prepared) {
        let Prepared::Ours(m) = order else {
            unreachable!("ours prepares its own orders")
        };
        let id = m.order_id.as_str();
        match step {
            0 => self.store.record(m).await.expect("record"),
            1 => {
                let req = TransitionRequest::new(id, &[OrderStatus::Pending], OrderStatus::Active)
                    .tx_hash(PLACE_HASH);
                std::hint::black_box(self.store.transition(&req).await.expect("active"));
            }
            2 => {
                std::hint::black_box(self.store.claim_for_cancel(id).await.expect("claim"));
            }
            _ => {
                let req =
                    TransitionRequest::new(id, &[OrderStatus::Cancelling], OrderStatus::Cancelled)
                        .cancel_tx_hash(CANCEL_HASH);
                std::hint::black_box(self.store.transition(&req).await.expect("cancelled"));
            }
        }
    }

    async fn close(&self) {
        if let Some((pool, schema)) = &self.pg {
            drop_schema(pool, schema).await;
        }
    }
}

async fn drop_schema(pool: &PgPool, schema: &str) {
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    if let Err(e) = ordermeta::postgres::sqlx::query(&sql).execute(pool).await {
        eprintln!("could not drop bench schema {schema}: {e}");
    }
}

/// Bare sqlx on a SQLite file of its own.
pub struct BareSqlite {
    pool: SqlitePool,
    transition: &'static str,
}

impl BareSqlite {
    async fn open(path: &Path, sync: Synchronous) -> Self {
        let sync = match sync {
            Synchronous::Full => SqliteSynchronous::Full,
            _ => SqliteSynchronous::Normal,
        };
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(opts)
            .await
            .expect("bare pool");
        for migration in crate::support::sqlite_bare::SCHEMA {
            ordermeta::sqlite::sqlx::raw_sql(migration)
                .execute(&pool)
                .await
                .expect("bare schema");
        }
        BareSqlite {
            pool,
            transition: bench_sql::transition(1).expect("the transition from one status"),
        }
    }
}

#[async_trait]
impl Lifecycle for BareSqlite {
    fn prepare(&self, meta: OrderMetadata) -> Prepared {
        let e = entries(&meta.order_id);
        Prepared::Sqlite(Box::new((encode(&meta), e)))
    }

    async fn step(&self, step: usize, order: &Prepared) {
        let Prepared::Sqlite(p) = order else {
            unreachable!("bare SQLite prepares its own orders")
        };
        let (e, entries) = &**p;
        if step == 0 {
            return bare_insert(bench_sql::INSERT, e, &self.pool).await;
        }
        let until = lease_until();
        let at = now();
        let t = match step {
            1 => BareTransition {
                id: &e.id,
                from: "pending",
                to: "active",
                at: to_micros(at),
                entry: &entries[0],
                cancelled_at: None,
                tx_hash: Some(PLACE_HASH),
                cancel_tx_hash: None,
                lease: None,
            },
            2 => BareTransition {
                id: &e.id,
                from: "active",
                to: "cancelling",
                at: to_micros(at),
                entry: &entries[1],
                cancelled_at: None,
                tx_hash: None,
                cancel_tx_hash: None,
                lease: Some((ANONYMOUS_CLAIM, to_micros(until))),
            },
            _ => BareTransition {
                id: &e.id,
                from: "cancelling",
                to: "cancelled",
                at: to_micros(at),
                entry: &entries[2],
                cancelled_at: Some(to_micros(at)),
                tx_hash: None,
                cancel_tx_hash: Some(CANCEL_HASH),
                lease: None,
            },
        };
        std::hint::black_box(bare_transition(self.transition, t, &self.pool).await);
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Bare sqlx on a PostgreSQL schema of its own (made by the store's migrations).
pub struct BarePg {
    pool: PgPool,
    sql: BenchSql,
    schema: String,
}

impl BarePg {
    async fn open(url: &str) -> Self {
        // The store's migrations make the schema; then the store is dropped and bare sqlx
        // runs its statements on a pool of its own.
        let store = PgStoreOptions::new()
            .schema(unique_name("life_bare"))
            .connect(url)
            .await
            .unwrap_or_else(|e| postgres_missing(url, e));
        let schema = store.schema().to_owned();
        drop(store);
        let pool = PgPoolOptions::new()
            .max_connections(PG_CONNECTIONS)
            .test_before_acquire(false)
            .connect(url)
            .await
            .expect("bare pool");
        BarePg {
            pool,
            sql: BenchSql::new(&schema).expect("schema name"),
            schema,
        }
    }
}

#[async_trait]
impl Lifecycle for BarePg {
    fn prepare(&self, meta: OrderMetadata) -> Prepared {
        // The transition statement appends a JSON array of entries.
        let e = entries(&meta.order_id).map(|e| format!("[{e}]"));
        Prepared::Pg(Box::new((pg_encode(&meta), e)))
    }

    async fn step(&self, step: usize, order: &Prepared) {
        let Prepared::Pg(p) = order else {
            unreachable!("bare PostgreSQL prepares its own orders")
        };
        let (e, entries) = &**p;
        if step == 0 {
            return pg_insert(&self.sql.insert_one, e, &self.pool).await;
        }
        let at = now();
        let t = match step {
            1 => PgTransition {
                id: &e.id,
                from: "pending",
                to: "active",
                at,
                entries: &entries[0],
                cancelled_at: None,
                tx_hash: Some(PLACE_HASH),
                cancel_tx_hash: None,
                lease: None,
            },
            2 => PgTransition {
                id: &e.id,
                from: "active",
                to: "cancelling",
                at,
                entries: &entries[1],
                cancelled_at: None,
                tx_hash: None,
                cancel_tx_hash: None,
                lease: Some((ANONYMOUS_CLAIM, lease_until())),
            },
            _ => PgTransition {
                id: &e.id,
                from: "cancelling",
                to: "cancelled",
                at,
                entries: &entries[2],
                cancelled_at: Some(at),
                tx_hash: None,
                cancel_tx_hash: Some(CANCEL_HASH),
                lease: None,
            },
        };
        std::hint::black_box(pg_transition(&self.sql.transition, t, &self.pool).await);
    }

    async fn close(&self) {
        drop_schema(&self.pool, &self.schema).await;
        self.pool.close().await;
    }
}
