//! # ordermeta-sqlite
//!
//! The SQLite [`MetadataStore`](ordermeta_core::MetadataStore): what a bot gets with no
//! server at all. One file, created with mode `0600`, shared safely by every process on the
//! machine. Same semantics as every ordermeta store (the core's conformance suite runs
//! against real files in this crate's tests).
//!
//! ```
//! use std::sync::Arc;
//! use ordermeta_core::*;
//! use ordermeta_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), StoreError> {
//! # let dir = tempfile::tempdir().expect("temp dir");
//! # let path = dir.path().join("orders.db");
//! // Creates the file (mode 0600) and applies the migrations.
//! let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::open(&path).await?);
//! let order = NewOrder {
//!     order_id: "bot-1/42".into(),
//!     dydx_order_id: OrderId {
//!         owner: "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn".into(),
//!         subaccount_number: 0,
//!         client_id: 42,
//!         order_flags: ORDER_FLAGS_SHORT_TERM,
//!         clob_pair_id: 0,
//!     },
//!     good_til: GoodTil::Block(1_000),
//!     symbol: "BTC-USD".into(),
//!     side: Side::Buy,
//!     quantity: "0.01".into(),
//!     price: Some("65000".into()),
//!     order_type: OrderType::Limit,
//! };
//! // Write-ahead: record as pending before the broadcast, then mark it active.
//! store.record(&OrderMetadata::new(order, OrderStatus::Pending, now())).await?;
//! store
//!     .transition(&TransitionRequest::new("bot-1/42", &[OrderStatus::Pending], OrderStatus::Active))
//!     .await?;
//! drop(store);
//!
//! // After a restart, or in another process: the order is still there, and claimable.
//! let store = SqliteStore::open(&path).await?;
//! let claimed = store.claim_for_cancel("bot-1/42").await?;
//! assert_eq!(claimed.good_til, GoodTil::Block(1_000));
//! # Ok(()) }
//! ```
//!
//! Options, URLs and existing pools:
//!
//! ```no_run
//! # async fn f(pool: ordermeta_sqlite::sqlx::SqlitePool) -> Result<(), ordermeta_core::StoreError> {
//! use std::time::Duration;
//! use ordermeta_sqlite::{SqliteStore, Synchronous};
//! // Every commit fsynced: survives a power loss (see `Synchronous`).
//! let durable = SqliteStore::options()
//!     .synchronous(Synchronous::Full)
//!     .busy_timeout(Duration::from_secs(10))
//!     .open("/var/lib/bot/orders.db")
//!     .await?;
//! let from_url = SqliteStore::connect("sqlite:///var/lib/bot/orders.db").await?;
//! let in_memory = SqliteStore::connect("sqlite::memory:").await?; // tests only: not durable
//! let shared = SqliteStore::from_pool(pool).await?; // the application's own pool
//! # Ok(()) }
//! ```
//!
//! ## Durability: `synchronous`
//!
//! The database runs in WAL mode. [`Synchronous::Normal`] (default) never loses a commit to a
//! crash of the **process**, but a power loss or kernel crash can take back the last commits
//! (those since the last checkpoint), and with them a `pending` record written just before a
//! broadcast. [`Synchronous::Full`] fsyncs every commit, so a recorded order survives a power
//! loss, at the price of one `fsync` per write. The database is never corrupted by either.
//! See [`Synchronous`] for when to choose which.
//!
//! ## Concurrency
//!
//! - **Writers in one process** take the store's write lock (a FIFO async mutex) and write one
//!   at a time: they queue in order and never meet `SQLITE_BUSY` from each other. **Readers** use their own connections
//!   ([`SqliteStoreOptions::max_read_connections`]); WAL lets them read while a write
//!   commits.
//! - **Other processes** on the same file are arbitrated by SQLite's lock with
//!   [`SqliteStoreOptions::busy_timeout`] (default 5 s): a writer waits for the other
//!   process's write to commit. Single-statement writes take the lock at their start;
//!   multi-statement writes (`record_many`, `expire` with both clocks, migrations) begin with
//!   `BEGIN IMMEDIATE`, so no statement inside a transaction can fail with `SQLITE_BUSY`
//!   half-way. Only a lock held longer than the busy timeout surfaces, as
//!   [`StoreError::Backend`](ordermeta_core::StoreError::Backend)
//!   ([`SqliteError::is_busy`] tells).
//! - `transition` is one compare-and-set statement,
//!   `UPDATE … WHERE order_id = ? AND status IN (…) RETURNING …`: of many concurrent claimers
//!   (tasks or processes) exactly one wins. A loser reads the status it lost to, for
//!   `StatusConflict`.
//! - Network file systems (NFS, SMB) do not give SQLite working locks or shared memory: keep
//!   the file on a local disk. For several machines, use the PostgreSQL or Redis store.
//!
//! ## Schema and migrations
//!
//! Table [`TABLE`] (`dydx_order_metadata`, `STRICT`): the original design's columns plus the
//! core model's. Timestamps are INTEGER microseconds since the epoch; good-til and the u32
//! parts of the OrderId are INTEGER (u32::MAX fits); `history` is a JSON array; `order_id`
//! uses SQLite's BINARY collation, which is byte order.
//!
//! | operation | index |
//! |---|---|
//! | get, transition, list (keyset) | primary key `order_id` |
//! | list by owner / subaccount | `(owner, subaccount_number, order_id)` |
//! | expire | `(status, good_until_block)` and `(status, good_til_block_time)`, partial on open statuses |
//! | purge | `(status, updated_at)` |
//!
//! The migrations are embedded (`migrations/*.sql`) and recorded in the store's own
//! [`MIGRATIONS_TABLE`] (`ordermeta_migrations`), never in the `_sqlx_migrations` table the
//! host application's sqlx migrations use (apalis#439 shows what sharing it breaks). They
//! run in one `BEGIN IMMEDIATE` transaction: processes starting together migrate once. A
//! database migrated by a newer ordermeta, or with a modified script, is refused at start.
//!
//! ## Corrupt rows
//!
//! Every column is decoded strictly (base64 OrderId checked against its separate columns,
//! statuses and sides by name, no negative or out-of-range integers, valid JSON history,
//! then [`OrderMetadata::validate`](ordermeta_core::OrderMetadata::validate)). A bad row read
//! by `get` or `transition` is `InvalidMetadata` naming the order; `list` returns it in
//! [`Page::invalid`](ordermeta_core::Page) and reads on. `transition` is one statement: on a
//! row whose status is valid and matches but whose other columns are corrupt, the status
//! change is applied and the answer is `InvalidMetadata` (the order needs a manual cancel
//! either way).
//!
//! ## Errors
//!
//! Classified by SQLite result code and driver error kind, never by message text: primary-key
//! clash → `AlreadyExists`; undecodable stored rows → `InvalidMetadata`; everything else →
//! `Backend` with a [`SqliteError`] source saying which problem it is (missing directory,
//! unwritable file, failed migration, busy database, I/O error).
#![deny(missing_docs)]

mod error;
mod migrate;
mod row;
mod store;

pub use error::SqliteError;
pub use migrate::MIGRATIONS_TABLE;
pub use store::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_BUSY_TIMEOUT, DEFAULT_MAX_READ_CONNECTIONS, PURGE_BATCH_SIZE,
    SqliteStore, SqliteStoreOptions, Synchronous, TABLE,
};

/// The sqlx this crate is built with, so applications use the same version for pools and
/// connect options.
pub use sqlx;

#[cfg(test)]
mod tests;
