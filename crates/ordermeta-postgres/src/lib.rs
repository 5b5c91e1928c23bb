//! # ordermeta-postgres
//!
//! The PostgreSQL [`MetadataStore`](ordermeta_core::MetadataStore): where a trading firm keeps
//! the order metadata of many bots on many machines. Same semantics as every ordermeta store
//! (the core's conformance suite runs against a real server in this crate's tests).
//!
//! ```no_run
//! use std::sync::Arc;
//! use ordermeta_core::{MetadataStore, MetadataStoreExt};
//! use ordermeta_postgres::PgStore;
//!
//! # #[tokio::main] async fn main() -> Result<(), ordermeta_core::StoreError> {
//! // TLS follows the URL's sslmode; migrations run once, in schema "ordermeta".
//! let store = PgStore::connect("postgres://bot@db.internal/trading?sslmode=verify-full").await?;
//! let store: Arc<dyn MetadataStore> = Arc::new(store);
//! store.health().await?;
//! let claimed = store.claim_for_cancel("bot-1/0/0/0/42").await;
//! # Ok(()) }
//! ```
//!
//! Other schemas, pool sizes and an existing pool:
//!
//! ```no_run
//! # async fn f(pool: ordermeta_postgres::sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! use ordermeta_postgres::{PgStore, PgStoreOptions};
//! let eu = PgStoreOptions::new().schema("bots_eu").max_connections(16)
//!     .connect("postgres://bot@db/trading").await?;
//! let shared = PgStore::options().schema("bots_us").with_pool(pool).await?;
//! // A URL from configuration: `schema=` is ordermeta's, the rest is sqlx's.
//! let (options, url) = PgStoreOptions::from_url("postgres://bot@db/trading?schema=bots_ap")?;
//! let ap = options.max_connections(4).connect(&url).await?;
//! # Ok(()) }
//! ```
//!
//! ## Schema and migrations
//!
//! Everything lives in one schema (default [`DEFAULT_SCHEMA`], set with
//! [`PgStoreOptions::schema`]; validated as an identifier and always quoted; every statement
//! names its table schema-qualified, so a wrapped pool needs no `search_path`). The migrations
//! are embedded (`migrations/*.sql`) and recorded in the schema's own `ordermeta_migrations`
//! table, never in `_sqlx_migrations` that the application may use. They run in one
//! transaction under an advisory lock, so fifty bots starting at once migrate exactly once.
//! An up-to-date schema costs one read at start-up and no DDL privilege: an administrator can
//! migrate (or [`PgStoreOptions::migrate`]`(false)` only checks) and the bots' role needs just
//! `USAGE` on the schema, `SELECT` on `ordermeta_migrations` and
//! `SELECT, INSERT, UPDATE, DELETE` on `dydx_order_metadata`:
//!
//! ```sql
//! GRANT USAGE ON SCHEMA ordermeta TO bot;
//! GRANT SELECT ON ordermeta.ordermeta_migrations TO bot;
//! GRANT SELECT, INSERT, UPDATE, DELETE ON ordermeta.dydx_order_metadata TO bot;
//! ```
//!
//! Table `dydx_order_metadata`: the original design's columns plus the core model's;
//! timestamps `timestamptz` (µs), good-til and the u32 parts of the OrderId `BIGINT`,
//! `history` `jsonb`, `order_id TEXT COLLATE "C"` (byte order for keyset paging). Indexes:
//!
//! | operation | index |
//! |---|---|
//! | get, transition, list (keyset) | primary key `order_id` |
//! | list by owner / subaccount | `(owner, subaccount_number, order_id)` |
//! | expire | `(good_until_block)` and `(good_til_block_time)`, partial on open statuses |
//! | purge | `(updated_at)`, partial on terminal statuses |
//! | find_by_client_id | `(owner, subaccount_number, clob_pair_id, client_id, placed_at, order_id)`, scanned backwards from the key's end: one entry, no sort |
//! | find_by_label | `(label, placed_at, order_id)`, partial on `label IS NOT NULL`, likewise |
//!
//! Issue 13's columns: `label`, `indexer_id`, `filled_quantity` (`text`) and
//! `cancel_confirmed_at` (`timestamptz`, read as microseconds like every timestamp), NULL
//! while unknown. The lookups' plans (generic and custom) are an `Index Scan Backward` under
//! a `Limit 1`, no sort, checked by a test on a table of 5,000 records with statistics.
//!
//! | version | script | what it does |
//! |---|---|---|
//! | 1 | `0001_create_dydx_order_metadata.sql` | the table and its indexes |
//! | 2 | `0002_claim_leases.sql` | adds `lease_token TEXT` and `lease_until TIMESTAMPTZ` (NULL: no lease) |
//! | 3 | `0003_lookup_and_chain_fields.sql` | adds `label`, `indexer_id`, `filled_quantity`, `cancel_confirmed_at` (NULL) and the two lookup indexes |
//!
//! Migration 2 only changes the catalog (nullable columns without a default: no row is
//! rewritten), but it takes the table's `ACCESS EXCLUSIVE` lock for that instant; the
//! migrating connection's `lock_timeout` keeps it from queueing the running bots behind a
//! long transaction (the migration then fails, nothing changed, and the next start retries).
//! A schema from before leases has its `cancelling` records without a lease afterwards: a
//! canceller may re-claim them at once. Bots built before this migration keep working on
//! the migrated table but neither write nor clear leases: a claim an old bot takes looks
//! stale to new bots at once, and an order an old bot moves out of `cancelling` keeps its
//! lease, which new bots read as a corrupt row. Upgrade every bot of a schema together.
//!
//! Migration 3 adds its columns the same instant way, but builds two indexes from the whole
//! table, blocking writes to it meanwhile (measured: 7 s for a million rows), longer than the
//! connect deadline and the default `statement_timeout`: on a table of more than a few
//! hundred thousand records the migration fails (rolled back, nothing changed) at every start.
//! Prepare such a table by hand first, without blocking the bots (`CONCURRENTLY` cannot run
//! in a transaction: one statement at a time); the migration then keeps the indexes and only
//! records itself:
//!
//! ```sql
//! ALTER TABLE ordermeta.dydx_order_metadata ADD COLUMN IF NOT EXISTS label TEXT,
//!     ADD COLUMN IF NOT EXISTS indexer_id TEXT, ADD COLUMN IF NOT EXISTS filled_quantity TEXT,
//!     ADD COLUMN IF NOT EXISTS cancel_confirmed_at TIMESTAMPTZ;
//! CREATE INDEX CONCURRENTLY IF NOT EXISTS dydx_order_metadata_client_id_idx
//!     ON ordermeta.dydx_order_metadata
//!     (owner, subaccount_number, clob_pair_id, client_id, placed_at, order_id);
//! CREATE INDEX CONCURRENTLY IF NOT EXISTS dydx_order_metadata_label_idx
//!     ON ordermeta.dydx_order_metadata (label, placed_at, order_id) WHERE label IS NOT NULL;
//! ```
//!
//! Bots built before migration 3 keep working on the migrated table (they neither read nor
//! write its columns; their records have no label), but one started afterwards refuses the
//! schema (unknown migration 3).
//!
//! ## Claim leases
//!
//! A `cancelling` record carries its claim's [`Lease`](ordermeta_core::Lease) in
//! `lease_token` (who holds the claim) and `lease_until` (`timestamptz`, µs, like
//! `placed_at`); both NULL when it holds none. `record` and `record_many` store the record's
//! lease; `transition` writes the request's lease when entering `cancelling` and clears it
//! otherwise; `expire` clears it. The lease condition of a request is part of the same
//! compare-and-set statement (see below): `require_expired_lease` adds
//! `AND (lease_until IS NULL OR lease_until <= $at)`, `require_lease(token)` adds
//! `AND lease_token = $token`; when status or lease do not allow the transition, nothing is
//! written and the answer is `StatusConflict` with the current status. A row with only one
//! of the two columns set, or a lease on an order that is not `cancelling`, is a corrupt row
//! (`InvalidMetadata`). Lease instants are the callers' clocks (the request's `at`), not the
//! server's.
//!
//! ## Deadlines
//!
//! Nothing waits for ever on a server that stops answering (after login, mid-request, or
//! behind another session's row lock):
//!
//! - **Every call**, its wait for a connection included, and **connecting** (first
//!   connection, role lookup, migrations) complete or fail within
//!   [`PgStoreOptions::operation_timeout`] (default
//!   [`DEFAULT_OPERATION_TIMEOUT`](ordermeta_core::backend::DEFAULT_OPERATION_TIMEOUT),
//!   5 s), with [`StoreError::Timeout`](ordermeta_core::StoreError::Timeout).
//! - **Inside the server**, every connection the store opens has `statement_timeout` (default
//!   4/5 of the operation timeout, 4 s) and `lock_timeout` (3/5, 3 s), set as startup options
//!   ([`PgStoreOptions::statement_timeout`], [`PgStoreOptions::lock_timeout`]). A statement
//!   behind another session's row lock is cancelled by the server at `lock_timeout`: the call
//!   fails with `Backend` / [`PgError::LockTimeout`], **nothing written**, before the deadline
//!   (measured: 0.6 s for a 1 s deadline); a slow statement likewise with
//!   [`PgError::StatementTimeout`].
//! - **Getting a connection** is capped at 4/5 of the operation timeout
//!   ([`PgStoreOptions::acquire_timeout`], default 4 s): a server that accepts TCP but never
//!   answers fails a `connect` with [`PgError::Connect`] naming it, and a call that cannot get
//!   a connection fails with `Backend` (pool timed out), nothing sent.
//!
//! `Timeout` is what remains when the server or the network stops answering while a statement
//! is in flight. For a write (`record`, `record_many`, `transition`, `update`) the outcome is
//! then **unknown**: the server may still execute it when it wakes up (measured: an `INSERT` sent
//! to a SIGSTOPped server applied as soon as it got SIGCONT). The store reads the record back
//! at once, within [`PgStoreOptions::read_back_timeout`] (default 1 s): applied, the call
//! succeeds (a transition returns the stored record); not applied (yet), or read-back
//! impossible, the answer stays `Timeout`, so such a write answers within
//! `operation_timeout + read_back_timeout`. The store never writes again by itself. Callers
//! resolve a `Timeout` the same way: read the record back once the server answers, then
//! decide. `expire` is not read back (expiring again is harmless); `purge` applies the
//! deadline to each of its batches. A connection whose call timed out is pinged by the pool
//! before it is reused; it is reused only if the server answers.
//!
//! A pool given to [`PgStoreOptions::with_pool`] keeps its own connection settings (set
//! `statement_timeout` and `lock_timeout` on it, or on the role); the operation deadline
//! applies all the same. Behind PgBouncer, startup options are refused unless
//! `ignore_startup_parameters` includes `options`; set the two timeouts on the role then
//! (`ALTER ROLE bot SET lock_timeout = '3s'`).
//!
//! ## Operations
//!
//! - `transition` is one
//!   `UPDATE … WHERE order_id = $1 AND status = ANY($2) [AND <lease condition>] RETURNING …`
//!   (or a row of a group commit batch, see [Performance](#performance)).
//!   Under Read Committed a writer that waited for a concurrent one re-checks the condition on
//!   the newest row version, so of many concurrent claimers (threads, processes, machines)
//!   exactly one wins — also of 32 cancellers re-claiming one stale claim. A loser reads the
//!   status and lease it lost to, for `StatusConflict`. A transition's
//!   [`FieldPatch`](ordermeta_core::FieldPatch) is written by the same statement.
//! - `update` is one compare-and-set statement too,
//!   `UPDATE … WHERE order_id = $1 AND (cardinality($6) = 0 OR status = ANY($6)) AND
//!   ($7 IS NULL OR version = $7) RETURNING …` (no history entry, lease untouched), found by
//!   primary key; a loser reads the status and version it lost to, for `NotFound` or
//!   `StatusConflict`. A version at `i64::MAX` cannot be bumped: such a row answers
//!   `InvalidMetadata`, as a claim of it does.
//! - `find_by_client_id` and `find_by_label` alias the table (`FROM … o ORDER BY
//!   o.placed_at DESC, o.order_id DESC LIMIT 1`): ordered by the selected microsecond
//!   expression of the same name instead, PostgreSQL sorted every match (measured).
//! - `record_many` is one `INSERT … SELECT FROM UNNEST($1::text[], …)`: one round trip, and
//!   atomic because it is one statement.
//! - `expire` runs in batches of [`PgStoreOptions::purge_batch_size`] rows, each one `UPDATE`
//!   whose two arms match the two partial indexes (O(expired)), its own commit, with
//!   `SKIP LOCKED`: no sweep holds many row locks for long. A due order whose version is at
//!   `i64::MAX` cannot be bumped: expire leaves it (logged) and its claim answers
//!   `InvalidMetadata`.
//! - Timestamps are read as microseconds (`extract(epoch …)`), never through sqlx's chrono
//!   decode, which panics on `'infinity'` or a time beyond chrono's range: such a value is
//!   `InvalidMetadata` naming the order, and `list` reports that row in `invalid`.
//! - `purge` deletes in batches of [`PgStoreOptions::purge_batch_size`] rows (default
//!   [`DEFAULT_PURGE_BATCH_SIZE`]), oldest first, each its own statement and commit, with
//!   `SKIP LOCKED`: it never holds many row locks nor waits on a canceller. The purge index is
//!   partial on the terminal statuses and ordered by `updated_at` (the conventions' plain
//!   `(status, updated_at)` measured worse: with statistics still counting rows an earlier
//!   purge had deleted, the planner chose a `LIMIT`-ed sequential scan that read the whole
//!   table, 150 ms at 1M rows for a purge with nothing to do; the partial index answers in
//!   about 1 ms).
//!
//! ## Pool sizing
//!
//! Each pooled connection is a server process (a few MB of RAM); the server's
//! `max_connections` (100 by default) is shared by every bot on every machine. Size each
//! process's pool for the store calls it really runs at once, not for its task count: one
//! call holds a connection for one round trip (two on a lost claim).
//!
//! - Default: at most [`DEFAULT_MAX_CONNECTIONS`] (10) connections, none kept when idle,
//!   [`DEFAULT_ACQUIRE_TIMEOUT`] (4 s) to get one. A bot that places and cancels from a few
//!   tasks needs 2–4; a canceller that claims in bursts, about its burst width (8 concurrent
//!   tasks saturate 8 connections, more tasks then queue for a connection rather than fail).
//! - Budget: `bots × max_connections` must stay below the server's `max_connections` minus
//!   its reserved and admin connections. With hundreds of bots, put PgBouncer (transaction
//!   mode, ≥ 1.21 with `max_prepared_statements` set, since sqlx uses prepared statements)
//!   in front and size pools against PgBouncer instead.
//! - `acquire_timeout` is also how long a call waits while the server is down before it fails
//!   with `Backend`; trading code usually prefers a fast failure to a long wait.
//! - `test_before_acquire` (default on) pings a connection idle longer than
//!   [`PgStoreOptions::ping_after_idle`] (default 15 s) before use: a connection used moments
//!   ago costs no extra round trip (sqlx's own check, which pings every idle connection, is
//!   replaced by one that looks at the idle time first; sqlx still checks each connection as
//!   it comes back to the pool, after the call has answered). After a restart, stale
//!   connections idle past the threshold are replaced, not handed out; one used less than
//!   the threshold before the restart fails one call with `Backend` (nothing written).
//! - Group commit's writers (see [Performance](#performance)) each hold one pooled connection
//!   while writes keep coming.
//!
//! ## Performance
//!
//! **Round trips.** A warm `record`, transition or claim is one round trip before it answers:
//! its single statement, in autocommit. The pool pings only a connection idle longer than
//! [`PgStoreOptions::ping_after_idle`] (sqlx's default pinged before every call); sqlx's
//! check of a connection coming back to the pool follows the answer. Counted on the wire by
//! `tests/round_trips.rs`.
//!
//! **Group commit** ([`PgStoreOptions::group_commit`], default on). Writes that start while
//! at least [`PgStoreOptions::group_commit_threshold`] (8) others are in progress are queued to
//! [`PgStoreOptions::group_commit_writers`] (half the pool, at most 8) writer tasks; each takes what has gathered (up
//! to [`PgStoreOptions::group_commit_max_batch`], 64) and runs one statement per kind:
//!
//! - records: `INSERT … SELECT … FROM UNNEST(…) WITH ORDINALITY … ORDER BY ord ON CONFLICT
//!   (order_id) DO NOTHING RETURNING order_id` (a taken id answers that caller
//!   `AlreadyExists`; of ids repeated in one batch the first wins);
//! - transitions: `UPDATE … FROM (SELECT * FROM UNNEST(…)) v WHERE order_id = v_id AND <the
//!   row's own statuses and lease condition> RETURNING …, v_seq`: each caller learns whether
//!   its own compare-and-set held; rows another transaction holds locked are skipped
//!   (`FOR UPDATE SKIP LOCKED`) rather than waited for.
//!
//! A caller is answered only once the statement holding its write has returned (committed).
//! One whose compare-and-set did not hold, or whose row was skipped, resolves alone as after
//! a lost single statement; a batch the server refused (nothing written) sends each caller to
//! its own single statement; a batch cut off mid-statement makes its callers read back. A
//! caller past its deadline before its batch is built is left out of it. Fewer writes in
//! progress than the threshold run their single statement directly, as with group commit off:
//! batches of two or three, one after another, measured slower than parallel statements.
//! [`PgStore::group_commit_stats`] counts batches. Dropping the store's last clone stops the
//! writers.
//!
//! **Measured** (`cargo bench -p ordermeta --bench lifecycle --features sqlite,postgres`,
//! `BENCH_BACKENDS=postgres`: each order's record → active → claim → cancelled, ours beside
//! bare sqlx running the same statements one per call on a pool of 16 without pings, 5
//! interleaved rounds, medians; 2 shared cores, load 7–12 from other builds; a commit costs
//! ~4 ms here, the server's fsync): with 64 tasks 2.01× bare (1,802 vs 838 orders/s; p50 per
//! order 33 vs 74 ms), 1.99× in another run; 1.59–1.82× with 4 writers instead of 8;
//! with 8 tasks 0.84–1.23× (noise: most writes run directly there); with 1 task ours runs the
//! single statement, 0.86–1.12× bare between runs, and 1.01× the throughput of today's
//! settings (group commit off, ping before every call) in the probe
//! (`cargo run --release -p ordermeta-postgres --example group_commit -- 1 5`, which also
//! gives 2.11× today's at 64 tasks). At 64 tasks the limit is commits: each batch statement
//! waits for its own fsync, so throughput is writers × batch size / commit time; more writers
//! than half the pool starve the direct callers of connections.
//!
//! ## Errors
//!
//! Classified by SQLSTATE and driver kind, never by message text: unique violation →
//! `AlreadyExists`; a value PostgreSQL cannot hold (SQLSTATE class 22, e.g. a NUL byte in a
//! text) → `InvalidMetadata`; undecodable stored rows → `InvalidMetadata` naming the order
//! (and [`Page::invalid`](ordermeta_core::Page) in `list`); a missed deadline → `Timeout`
//! (outcome unknown, see [Deadlines](#deadlines)); everything else → `Backend` with a
//! [`PgError`] source that says which problem it is (unreachable server, refused
//! credentials, missing privilege, failed migration, lock or statement timeout, outage).
//!
//! ## Partitioning
//!
//! **Not partitioned, on purpose.** The seed suggested partitioning for high-volume trading;
//! it was measured (`examples/partitioning.rs`, run by hand: it fills two schemas with
//! `generate_series` — 12 months of `placed_at`, open orders only in the last month — and
//! times the store's own calls on the migrated table and on the same table partitioned by
//! month on `placed_at`). Private PostgreSQL 15, `shared_buffers` 1 GB, `max_wal_size` 4 GB,
//! on 2 cores shared with other builds (load average 4–9, so single-call latencies that end
//! in a commit flush are noisy; compare within a row):
//!
//! | | 1M plain | 1M monthly | 10M plain | 10M monthly |
//! |---|---|---|---|---|
//! | size (heap + indexes) | 516 MB | 526 MB | 5,158 MB | 5,246 MB |
//! | get, mean | 0.17–0.19 ms | 0.26–0.34 ms | 0.32 ms | 0.34 ms |
//! | record, mean | 2.2–3.6 ms | 3.5–5.0 ms | 3.3 ms | 1.8 ms |
//! | claim (transition), mean | 2.4–3.2 ms | 3.3–3.8 ms | 4.8 ms | 1.8 ms |
//! | expire, ~3,000 due | 35–80 ms | 46–86 ms | 55 ms | 47 ms |
//! | expire, nothing due | 2.3 ms | 3.5–9 ms | 3.9 ms | 13 ms |
//! | purge one month (85k / 849k rows) | 342–745 ms | 88–135 ms ¹ | 6,478 ms | 595 ms ¹ |
//! | purge one day (2.7k / 27k rows) | 12–23 ms | 613–1,006 ms | 160 ms | 3,074 ms |
//! | purge, nothing due | 1.4–3 ms | 3.3–8 ms | 5.4 ms | 264 ms |
//!
//! ¹ Not the store's purge: a check that the month holds only purgeable rows, then
//! `DETACH PARTITION` + `DROP TABLE` — the one thing partitioning would buy. The store's batched
//! `DELETE` on the partitioned table hash-joins every partition per batch (6.2 s for one month
//! at 1M rows).
//!
//! Why not:
//! - **Expire gains nothing**: the partial indexes over open orders already make it
//!   O(expired) at any table size (tens of ms for thousands of orders, a few ms for a sweep
//!   with nothing due), whereas partitions add per-partition planning and probing.
//! - **Purge's rule does not follow partitions**: it deletes *terminal* orders by
//!   *`updated_at`*; a `placed_at` month can be dropped only once every row in it is terminal
//!   and old enough, which needs the check scan and a row-by-row fallback anyway. Day-to-day
//!   purges got much slower on the partitioned table: a day's worth 19–51×, nothing due up
//!   to 49× (10M rows).
//! - **Batched deletes already keep locks short**: at 10M rows a month's 849k records go in
//!   170 statements of 5,000 rows, ~40 ms each; a daily purge of 27k rows takes 160 ms.
//! - **Correctness**: a partitioned table's primary key must include `placed_at`, so
//!   PostgreSQL would no longer enforce `order_id` uniqueness (`AlreadyExists`), and every `get`
//!   and `transition` by id probes every partition.
//!
//! Revisit when a single store holds far beyond 10M *retained* records and purges by whole
//! months; purging regularly keeps the table at the size of the retention window.
#![deny(missing_docs)]

mod cas;
mod error;
mod group;
mod migrate;
mod options;
mod row;
mod schema;
mod sql;
mod store;

pub use error::PgError;
pub use group::GroupCommitStats;
pub use options::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_GROUP_COMMIT_MAX_BATCH, DEFAULT_GROUP_COMMIT_THRESHOLD,
    DEFAULT_GROUP_COMMIT_WRITERS, DEFAULT_MAX_CONNECTIONS, DEFAULT_PING_AFTER_IDLE,
    DEFAULT_PURGE_BATCH_SIZE, DEFAULT_READ_BACK_TIMEOUT, DEFAULT_SCHEMA, PgStoreOptions,
    URL_SCHEMES,
};
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub use sql::BenchSql;
pub use sql::TABLE;
pub use store::PgStore;

/// The sqlx this crate is built with, so applications use the same version for pools and
/// connect options.
pub use sqlx;

#[cfg(test)]
mod fuzz;
