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
//! # async fn f(pool: ordermeta_sqlite::sqlx::SqlitePool) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use ordermeta_sqlite::{SqliteStore, SqliteStoreOptions, Synchronous};
//! // Every commit fsynced: survives a power loss (see `Synchronous`). Calls may take up to
//! // 2 s; another process's write lock is waited for up to 1.5 s of that.
//! let durable = SqliteStore::options()
//!     .synchronous(Synchronous::Full)
//!     .operation_timeout(Duration::from_secs(2))
//!     .busy_timeout(Duration::from_millis(1500))
//!     .open("/var/lib/bot/orders.db")
//!     .await?;
//! let from_url = SqliteStore::connect("sqlite:///var/lib/bot/orders.db").await?;
//! // A URL from configuration, checked first (no `schema=` or `namespace=`: those are
//! // other stores' parameters).
//! let (options, url) = SqliteStoreOptions::from_url("sqlite:///var/lib/bot/orders.db")?;
//! let configured = options.connect(&url).await?;
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
//!   at a time: they queue in order and never meet `SQLITE_BUSY` from each other. With
//!   [group commit](#performance-group-commit) (the default), concurrent `record`,
//!   `transition` and `update` calls are written together by one writer task, which takes the
//!   same lock for each transaction. **Readers** use their own connections
//!   ([`SqliteStoreOptions::max_read_connections`]); WAL lets them read while a write
//!   commits.
//! - **Other processes** on the same file are arbitrated by SQLite's lock with
//!   [`SqliteStoreOptions::busy_timeout`] (default 4 s, never more than 4/5 of the
//!   operation timeout, see [Deadlines](#deadlines)): a writer waits for the other
//!   process's write to commit. Single-statement writes take the lock at their start;
//!   multi-statement writes (`record_many`, migrations) begin with
//!   `BEGIN IMMEDIATE`, so no statement inside a transaction can fail with `SQLITE_BUSY`
//!   half-way. Only a lock held longer than the busy timeout surfaces, as
//!   [`StoreError::Backend`](ordermeta_core::StoreError::Backend)
//!   ([`SqliteError::is_busy`] tells).
//! - **Bulk work** (`expire`, `purge`) runs in short batches of [`EXPIRE_BATCH_SIZE`] /
//!   [`PURGE_BATCH_SIZE`] rows, each its own write, with a pause after each full batch long
//!   enough for a process waiting on SQLite's busy handler to get in (40 ms after a batch
//!   that held the lock under 103 ms): another process's write waits for one batch at most.
//!   A store that opens its file also **checkpoints off the write path**, on a connection of
//!   its own: every second, and right after each batch, outside the write lock (`PASSIVE`,
//!   waiting for nobody; a non-waiting `RESTART` once the WAL passes 2,000 pages). Left to
//!   SQLite, the checkpoint runs inside whichever commit finds the WAL past 1,000 pages, and
//!   another process's one-row `record` copied a whole batch's pages and synced them (worst
//!   wait 0.39 s at 1M orders, over a second on a loaded machine). SQLite's automatic
//!   checkpoint stays as a safety net at 10,000 pages, and `journal_size_limit` (64 MiB)
//!   bounds the WAL file. Measured with `tests/bulk.rs` at 1,000,000 open orders (release,
//!   three runs on a 2-core machine shared with other builds): another process recording
//!   every 2 ms had no failure, worst wait 54–56 ms (p99 17–24 ms) during the expire and
//!   55–75 ms (p99 12–13 ms) during the purge, each taking 53–61 s. A store over a pool of
//!   the application's ([`SqliteStoreOptions::with_pool`]) keeps that pool's checkpoint
//!   settings and only checkpoints after its bulk batches. A due order whose version is at
//!   `i64::MAX` cannot be bumped: expire leaves it (logged) and its claim answers
//!   `InvalidMetadata`.
//! - `transition` is one compare-and-set statement,
//!   `UPDATE … WHERE order_id = ? AND status IN (…) [AND <lease condition>] RETURNING …`: of
//!   many concurrent claimers (tasks or processes) exactly one wins. A loser reads the status
//!   and lease it lost to, for `StatusConflict`. A transition's
//!   [`FieldPatch`](ordermeta_core::FieldPatch) is written by the same statement.
//! - `update` is one compare-and-set statement too,
//!   `UPDATE … WHERE order_id = ? AND status IN (…) [AND version = ?] RETURNING …` (no
//!   history entry, lease untouched); a loser reads the status and version it lost to, for
//!   `NotFound` or `StatusConflict`. A version at `i64::MAX` cannot be bumped: such a row
//!   answers `InvalidMetadata`, as a claim of it does.
//! - Network file systems (NFS, SMB) do not give SQLite working locks or shared memory: keep
//!   the file on a local disk. For several machines, use the PostgreSQL or Redis store.
//!
//! ## Performance: group commit
//!
//! Through sqlx every statement costs a hand-off to the connection's worker thread and back,
//! more than SQLite needs to commit a row; one order's life is four writes (record `pending`,
//! `active`, claim, `cancelled`). So concurrent writes are coalesced
//! ([`SqliteStoreOptions::group_commit`], on by default): each call queues its write for the
//! store's writer task, which takes what is queued (up to [`SqliteStoreOptions::max_batch`],
//! default 64) once it holds the write lock, and writes it in one `BEGIN IMMEDIATE`
//! transaction:
//!
//! - the records in one `INSERT … SELECT … FROM (VALUES …) ON CONFLICT (order_id) DO NOTHING
//!   RETURNING order_id`: an id not returned was taken, and its caller alone answers
//!   `AlreadyExists` (of two records of one id in a batch, the first is written);
//! - the transitions and updates in one compare-and-set `UPDATE … FROM (VALUES …) RETURNING …`
//!   per round, one call per order in a round (a second call on the same order runs in the
//!   next round and meets the first's outcome): each row carries its call's conditions
//!   (statuses, lease condition, version) as data, the single statements' conditions as SQL.
//!   A call whose order is returned gets its record; the others are decided from one `SELECT`
//!   of their orders, exactly as the single statements decide them (`NotFound`,
//!   `StatusConflict` with the current status, a corrupt row);
//! - then `COMMIT`, and only then the answers: every call keeps its durability.
//!
//! Statements are built for a power-of-two number of rows, padded with rows of NULLs that
//! change nothing, so that the few sizes stay in the connection's statement cache (preparing a
//! 64-row statement costs more than running it). A row that fails on its own (a record whose
//! version cannot be stored, a corrupt stored row) fails only its call: records are checked
//! before the statement, the compare-and-set skips rows the single statement skips, and a
//! statement that still fails with an error SQLite confines to the statement is run again row
//! by row. An error that may end the transaction (busy beyond `busy_timeout`, I/O, disk full)
//! fails every call of the batch with [`SqliteError::GroupCommit`], nothing written; a failed
//! `COMMIT` leaves the outcome unknown, so each call reads its record back first (found
//! applied: success), as after a missed deadline. Nothing is retried blindly.
//!
//! A call that finds nobody writing and nobody waiting for the task writes its single
//! statement itself, as with group commit off: a lone caller pays nothing. A caller's
//! deadline bounds its wait in the queue and in the batch; a caller that gave up before its
//! batch began is left out (never written), one that gives up later has an unknown outcome,
//! resolved by the read-back as before. The task ends when the last clone of the store is
//! dropped or the store is [closed](SqliteStore::close), and is started again on the caller's
//! runtime if its own runtime has gone. Other processes still wait for one transaction at most
//! (`max_batch` calls), and bulk work (`expire`, `purge`, `record_many`) takes turns with it
//! on the write lock; reads never wait for it.
//!
//! Measured with `benches/lifecycle.rs` (the root package: ours beside bare sqlx running the
//! store's statements one per call on one connection, interleaved rounds, medians of the
//! round ratios) and this crate's `benches/group_commit.rs` (group commit on, off and bare,
//! interleaved) on a 2-core machine shared with other builds (load average 7–9):
//!
//! | synchronous | tasks | ours orders/s | bare orders/s | ours / bare |
//! |---|---|---|---|---|
//! | NORMAL | 1 | 2,153 | 2,267 | 0.97 |
//! | NORMAL | 8 | 3,519 | 2,716 | 1.14 |
//! | NORMAL | 64 | 5,236 | 1,458 | **3.61** |
//! | FULL | 1 | 236 | 440 | 0.54 |
//! | FULL | 8 | 973 | 374 | 2.61 |
//! | FULL | 64 | 2,081 | 383 | **5.51** |
//!
//! With 64 tasks, batches hold up to 63 calls and a write costs about SQLite's own work on the
//! row (its indexes, the JSON history, `RETURNING`), measured at 30–40 µs a row on this
//! machine for the batch `UPDATE`: that, not the statements, is now the limit. A lone caller
//! runs today's statements: interleaved order by order (400 orders), group commit on takes
//! 1.05× the time of off with NORMAL and 0.97× with FULL (two identical stores measured the
//! same way differ by 0.94–1.02×). FULL with one task is noise of `fsync`: the steps' p50 is
//! the same as bare's (481 vs 483 µs) but their p99 is 6–7 ms against 1.3–1.8 ms; not
//! investigated further (the calls are today's single statements).
//!
//! ```text
//! BENCH_ROUNDS=5 BENCH_BACKENDS=sqlite-normal,sqlite-full BENCH_TASKS=1,8,64 \
//!     cargo bench -p ordermeta --bench lifecycle --features sqlite,postgres
//! TASKS=0 ORDERS=400 cargo bench -p ordermeta-sqlite --features bench-internals \
//!     --bench group_commit
//! ```
//!
//! ## Claim leases
//!
//! A `cancelling` record carries its claim's [`Lease`](ordermeta_core::Lease) in two
//! columns: `lease_token` (TEXT, who holds the claim) and `lease_until` (INTEGER
//! microseconds since the epoch, like every timestamp here). Both are NULL when the record
//! holds no lease: any other status, or a claim taken before leases existed, which counts as
//! run out. `record` and `record_many` store the record's lease; `transition` writes the
//! request's lease when entering `cancelling` and clears it otherwise; `expire` clears it.
//!
//! The lease condition of a request is part of the same compare-and-set statement:
//! `require_expired_lease` adds `AND (lease_until IS NULL OR lease_until <= <at>)` (how a
//! stale claim is re-claimed by exactly one canceller), `require_lease(token)` adds
//! `AND lease_token = <token>`. A request whose status or lease condition does not hold
//! answers `StatusConflict` with the current status, and writes nothing. A row with only one
//! of the two columns set, or a lease on an order that is not `cancelling`, is a corrupt row
//! (`InvalidMetadata`).
//!
//! ## Deadlines
//!
//! Every call completes or fails within [`SqliteStoreOptions::operation_timeout`] (default
//! [`DEFAULT_OPERATION_TIMEOUT`](ordermeta_core::backend::DEFAULT_OPERATION_TIMEOUT), 5 s),
//! its wait for the store's write lock and for a connection included; so does opening the
//! store (WAL switch and migrations). SQLite waits for another process's lock *inside* a
//! statement, where the deadline cannot interrupt it, so the busy timeout is capped at 4/5
//! of the operation timeout: a write kept out by another process fails with a busy
//! `Backend` error, nothing written, before the deadline (measured: 0.8 s for a 1 s
//! deadline).
//!
//! A call that misses the deadline fails with
//! [`StoreError::Timeout`](ordermeta_core::StoreError::Timeout). For a write (`record`,
//! `record_many`, `transition`, `update`) the outcome is then **unknown**: a statement already handed
//! to SQLite may still commit (typically a writer that queued behind another one for most of
//! its deadline). The store reads the record back at once, within
//! [`SqliteStoreOptions::read_back_timeout`] (default 1 s): if the write applied, the call
//! succeeds (a transition returns the stored record); if not (yet), or if the read-back
//! fails, the answer stays `Timeout`. It never writes again by itself. A caller resolves a
//! `Timeout` the same way: read the record back (a few seconds later, once any left-over
//! statement has ended) before deciding anything. `expire` is not read back (expiring again
//! is harmless); `purge` applies the deadline to each of its batches.
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
//! | find_by_client_id | `(owner, subaccount_number, clob_pair_id, client_id, placed_at, order_id)`, read backwards from the key's end: one entry, no sort |
//! | find_by_label | `(label, placed_at, order_id)`, partial on `label IS NOT NULL`, likewise |
//!
//! Issue 13's columns: `label`, `indexer_id`, `filled_quantity` (TEXT) and
//! `cancel_confirmed_at` (INTEGER µs), NULL while unknown. The lookups name their index
//! (`INDEXED BY`), so a plan that cannot use it fails instead of scanning.
//!
//! The migrations are embedded (`migrations/*.sql`) and recorded in the store's own
//! [`MIGRATIONS_TABLE`] (`ordermeta_migrations`), never in the `_sqlx_migrations` table the
//! host application's sqlx migrations use (apalis#439 shows what sharing it breaks). They
//! run in one `BEGIN IMMEDIATE` transaction: processes starting together migrate once. A
//! database migrated by a newer ordermeta, or with a modified script, is refused at start.
//!
//! | version | script | what it does |
//! |---|---|---|
//! | 1 | `0001_create_dydx_order_metadata.sql` | the table and its indexes |
//! | 2 | `0002_claim_leases.sql` | adds `lease_token` and `lease_until` (NULL: no lease); no row is rewritten, so it is instant on any table |
//! | 3 | `0003_lookup_and_chain_fields.sql` | adds `label`, `indexer_id`, `filled_quantity`, `cancel_confirmed_at` (NULL) and the two lookup indexes |
//!
//! Migration 3 builds its indexes from the whole table under the write lock (measured:
//! 2.5 s for a million rows), within the opening deadline: open a file of millions of
//! records once with a longer [`SqliteStoreOptions::operation_timeout`] to upgrade it (a
//! migration that misses the deadline is rolled back, nothing changed). Processes built
//! before migration 3 keep working on the migrated file (they neither read nor write its
//! columns; their records have no label), but one started afterwards refuses the file
//! (unknown migration 3).
//!
//! A database from before leases is migrated at its next open; its `cancelling` records then
//! hold no lease, so a canceller may re-claim them at once. Processes built before this
//! migration keep working on the migrated file but neither write nor clear leases: a claim an
//! old process takes looks stale to new ones at once, and an order an old process moves out
//! of `cancelling` keeps its lease, which new processes read as a corrupt row. Upgrade every
//! process sharing a file together.
//!
//! ## Corrupt rows
//!
//! Every column is decoded strictly (base64 OrderId checked against its separate columns,
//! statuses and sides by name, no negative or out-of-range integers, valid JSON history,
//! then [`OrderMetadata::validate`](ordermeta_core::OrderMetadata::validate)). A bad row read
//! by `get`, `transition`, `update` or a lookup is `InvalidMetadata` naming the order; `list`
//! returns it in [`Page::invalid`](ordermeta_core::Page) and reads on. `transition` and
//! `update` are one statement each: on a row whose status is valid and matches but whose
//! other columns are corrupt, the change is applied and the answer is `InvalidMetadata` (the
//! order needs a manual cancel either way).
//!
//! ## Errors
//!
//! Classified by SQLite result code and driver error kind, never by message text: primary-key
//! clash → `AlreadyExists`; undecodable stored rows → `InvalidMetadata`; a missed deadline →
//! `Timeout` (outcome unknown, see [Deadlines](#deadlines)); everything else → `Backend` with
//! a [`SqliteError`] source saying which problem it is (missing directory, unwritable file,
//! failed migration, busy database, I/O error).
#![deny(missing_docs)]

mod error;
mod migrate;
mod options;
mod row;
mod sql;
mod store;
mod wal;
mod write;
mod writer;

pub use error::SqliteError;
pub use migrate::MIGRATIONS_TABLE;
pub use options::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_BUSY_TIMEOUT, DEFAULT_MAX_BATCH, DEFAULT_MAX_READ_CONNECTIONS,
    DEFAULT_READ_BACK_TIMEOUT, MAX_BATCH_LIMIT, SqliteStoreOptions, Synchronous, URL_SCHEMES,
};
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub use sql::bench_sql;
pub use store::{EXPIRE_BATCH_SIZE, PURGE_BATCH_SIZE, SqliteStore, TABLE};

/// The sqlx this crate is built with, so applications use the same version for pools and
/// connect options.
pub use sqlx;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
