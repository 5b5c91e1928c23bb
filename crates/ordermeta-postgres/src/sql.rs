//! The SQL of every operation, built once per store with its schema-qualified table name.

use std::fmt::Write as _;

use crate::row::{COLUMNS, INSERT_COLUMNS, micros};
use crate::schema::Schema;

/// The table holding the records, inside the store's schema.
pub const TABLE: &str = "dydx_order_metadata";

/// The condition every update puts on a row: `version + 1` beyond `i64::MAX` is an error
/// that would fail the whole statement (every sweep, for ever), so such a row is left; a
/// claim of it answers `InvalidMetadata`.
const BUMPABLE: &str = "version < 9223372036854775807";

/// The patch part of the compare-and-set: indexer id `$11`, filled quantity `$12`, cancel
/// confirmation `$13`.
const PATCH: &str = "indexer_id = COALESCE($11, indexer_id), \
     filled_quantity = COALESCE($12, filled_quantity), \
     cancel_confirmed_at = COALESCE($13, cancel_confirmed_at)";

/// The `IN` list of open statuses, as a literal: partial-index predicates are matched against
/// the query text, so a bound array parameter would not let the planner use them.
const OPEN_STATUSES: &str = "('pending', 'active', 'cancelling')";
/// The `IN` list of terminal statuses, as a literal (see [`OPEN_STATUSES`]).
const TERMINAL_STATUSES: &str = "('cancelled', 'expired', 'filled', 'failed')";

/// The SQL of every operation, built once with the schema-qualified table name.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) insert_one: String,
    pub(crate) insert_many: String,
    pub(crate) select_one: String,
    pub(crate) select_existing: String,
    pub(crate) select_many: String,
    /// The compare-and-set without a lease condition.
    pub(crate) transition: String,
    /// The compare-and-set that also requires the lease to have run out (or to be absent).
    pub(crate) transition_expired: String,
    /// The compare-and-set that also requires the lease to be held by `$14`.
    pub(crate) transition_held: String,
    /// `update`'s compare-and-set.
    pub(crate) update: String,
    /// The newest record of a client id.
    pub(crate) find_by_client_id: String,
    /// The newest record carrying a label.
    pub(crate) find_by_label: String,
    pub(crate) claim_of: String,
    /// One batch of `expire` (`$5` rows at most).
    pub(crate) expire: String,
    /// Due open orders `expire` leaves because their version cannot be bumped.
    pub(crate) expire_stuck: String,
    pub(crate) purge_batch: String,
    pub(crate) list_head: String,
    /// Group commit: many `record`s in one statement, `RETURNING` the ids it inserted.
    pub(crate) record_batch: String,
    /// Group commit: many transitions in one statement, each row with its own
    /// compare-and-set, `RETURNING` the batch position of each one that held.
    pub(crate) transition_batch: String,
}

impl Sql {
    pub(crate) fn new(schema: &Schema) -> Self {
        let t = format!("{}.{TABLE}", schema.quoted());
        let placeholders = (1..=21).fold(String::new(), |mut s, i| {
            let _ = write!(s, "${i}, ");
            s
        });
        // The whole compare-and-set: Read Committed re-evaluates the WHERE clause (status and
        // lease) on the newest row version after waiting for a concurrent writer, so of many
        // concurrent claimers exactly one updates the row. The lease is written as given
        // ($9, $10: NULL clears it); an expired lease is one whose end is at or before the
        // request's instant ($4). The patch ($11..$13) never erases: NULL keeps the value.
        let transition = |condition: &str| {
            format!(
                "UPDATE {t} SET status = $3, updated_at = $4, \
                 cancelled_at = COALESCE($5, cancelled_at), \
                 tx_hash = COALESCE($6, tx_hash), \
                 cancel_tx_hash = COALESCE($7, cancel_tx_hash), \
                 version = version + 1, history = history || $8::jsonb, \
                 lease_token = $9, lease_until = $10, {PATCH} \
                 WHERE order_id = $1 AND {BUMPABLE} AND status = ANY($2){condition} \
                 RETURNING {COLUMNS}"
            )
        };
        Sql {
            insert_one: format!(
                "INSERT INTO {t} ({INSERT_COLUMNS}) \
                 VALUES ({placeholders}$22::jsonb, $23, $24, $25, $26, $27, $28)"
            ),
            insert_many: insert_many(&t),
            select_one: format!("SELECT {COLUMNS} FROM {t} WHERE order_id = $1"),
            select_existing: format!("SELECT order_id FROM {t} WHERE order_id = ANY($1)"),
            select_many: format!("SELECT {COLUMNS} FROM {t} WHERE order_id = ANY($1)"),
            transition: transition(""),
            transition_expired: transition(" AND (lease_until IS NULL OR lease_until <= $4)"),
            transition_held: transition(" AND lease_token = $14"),
            // Statuses ($6, empty: any) and version ($7, NULL: any) in the same WHERE as the
            // primary key: one compare-and-set, re-checked on the newest row version after
            // waiting for a concurrent writer, like `transition`.
            update: format!(
                "UPDATE {t} SET updated_at = $2, \
                 indexer_id = COALESCE($3, indexer_id), \
                 filled_quantity = COALESCE($4, filled_quantity), \
                 cancel_confirmed_at = COALESCE($5, cancel_confirmed_at), \
                 version = version + 1 \
                 WHERE order_id = $1 AND {BUMPABLE} \
                 AND (cardinality($6::text[]) = 0 OR status = ANY($6)) \
                 AND ($7::int8 IS NULL OR version = $7) \
                 RETURNING {COLUMNS}"
            ),
            // The table is aliased so that ORDER BY names its columns, not the selected
            // microsecond expressions of the same names: only then does the index give the
            // order (a backward scan of the key's range, no sort).
            find_by_client_id: format!(
                "SELECT {COLUMNS} FROM {t} o \
                 WHERE o.owner = $1 AND o.subaccount_number = $2 AND o.clob_pair_id = $3 \
                 AND o.client_id = $4 \
                 ORDER BY o.placed_at DESC, o.order_id DESC LIMIT 1"
            ),
            find_by_label: format!(
                "SELECT {COLUMNS} FROM {t} o WHERE o.label = $1 \
                 ORDER BY o.placed_at DESC, o.order_id DESC LIMIT 1"
            ),
            claim_of: format!(
                "SELECT status, lease_token, {}, version FROM {t} WHERE order_id = $1",
                micros!("lease_until")
            ),
            // One batch: each arm matches one partial index (BitmapOr), so only open orders
            // are visited; SKIP LOCKED leaves a row a transition is changing to the next sweep
            // instead of waiting for it; a row whose version cannot be bumped is left (and
            // reported by `expire_stuck`).
            expire: format!(
                "WITH due AS ( \
                 SELECT order_id FROM {t} \
                 WHERE ((status IN {OPEN_STATUSES} AND good_until_block <= $1) \
                 OR (status IN {OPEN_STATUSES} AND good_til_block_time <= $2)) AND {BUMPABLE} \
                 LIMIT $5 FOR UPDATE SKIP LOCKED) \
                 UPDATE {t} e SET status = 'expired', updated_at = $3, \
                 version = e.version + 1, history = e.history || $4::jsonb, \
                 lease_token = NULL, lease_until = NULL \
                 FROM due WHERE e.order_id = due.order_id"
            ),
            expire_stuck: format!(
                "SELECT order_id FROM {t} \
                 WHERE ((status IN {OPEN_STATUSES} AND good_until_block <= $1) \
                 OR (status IN {OPEN_STATUSES} AND good_til_block_time <= $2)) \
                 AND NOT ({BUMPABLE}) LIMIT 20"
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
            record_batch: record_batch(&t),
            transition_batch: transition_batch(&t),
        }
    }
}

/// The 28 `UNNEST` arrays of a multi-row insert, in [`INSERT_COLUMNS`]' order.
const UNNEST_RECORDS: &str = "UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], \
     $5::int8[], $6::int8[], $7::text[], $8::int8[], $9::int8[], $10::text[], $11::text[], \
     $12::text[], $13::text[], $14::text[], $15::timestamptz[], $16::timestamptz[], \
     $17::timestamptz[], $18::text[], $19::text[], $20::text[], $21::int8[], $22::text[], \
     $23::text[], $24::timestamptz[], $25::text[], $26::text[], $27::text[], \
     $28::timestamptz[])";

/// The columns selected from [`UNNEST_RECORDS`] (history cast to jsonb).
const SELECT_RECORDS: &str = "order_id, dydx_order_id, good_until_block, good_til_block_time, \
     client_id, subaccount_number, owner, order_flags, clob_pair_id, symbol, side, \
     quantity, price, order_type, placed_at, updated_at, cancelled_at, tx_hash, \
     cancel_tx_hash, status, version, history::jsonb, lease_token, lease_until, \
     label, indexer_id, filled_quantity, cancel_confirmed_at";

/// `record_many`: all or nothing, a taken or repeated id fails the statement.
fn insert_many(t: &str) -> String {
    format!(
        "INSERT INTO {t} ({INSERT_COLUMNS}) SELECT {SELECT_RECORDS} \
         FROM {UNNEST_RECORDS} AS u({INSERT_COLUMNS})"
    )
}

/// Group commit of independent `record`s: a taken id is skipped, not an error, so one
/// caller's `AlreadyExists` does not fail the others; rows go in batch order, so of ids
/// repeated inside the batch the first wins. `RETURNING` names the ids inserted.
fn record_batch(t: &str) -> String {
    format!(
        "INSERT INTO {t} ({INSERT_COLUMNS}) SELECT {SELECT_RECORDS} \
         FROM {UNNEST_RECORDS} WITH ORDINALITY AS u({INSERT_COLUMNS}, ord) ORDER BY ord \
         ON CONFLICT (order_id) DO NOTHING RETURNING order_id"
    )
}

/// Group commit of independent transitions: one `UPDATE … FROM` the batch's rows, each row
/// with its own compare-and-set (statuses as a comma list `v_from`; lease condition
/// `v_require`: 0 none, 1 expired, 2 held by `v_token`), the same SET as the single
/// statement. Rows another transaction holds locked are skipped (`SKIP LOCKED`), not waited
/// for: their callers resolve alone, so one locked row never holds up the batch. Of several
/// rows for one order at most one applies (PostgreSQL updates a row once per statement);
/// `RETURNING … v_seq` (after the record's columns) says whose. Read Committed re-checks each condition on the newest row
/// version, as for the single statement.
fn transition_batch(t: &str) -> String {
    format!(
        "WITH v AS (SELECT * FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::text[], \
         $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], \
         $10::text[], $11::timestamptz[], $12::text[], $13::text[], $14::timestamptz[], \
         $15::int4[], $16::text[]) AS u(v_seq, v_id, v_from, v_to, v_at, v_cancelled_at, \
         v_tx_hash, v_cancel_tx_hash, v_entry, v_lease_token, v_lease_until, v_indexer_id, \
         v_filled_quantity, v_cancel_confirmed_at, v_require, v_token)), \
         l AS (SELECT order_id FROM {t} WHERE order_id IN (SELECT v_id FROM v) \
         FOR UPDATE SKIP LOCKED) \
         UPDATE {t} SET status = v_to, updated_at = v_at, \
         cancelled_at = COALESCE(v_cancelled_at, cancelled_at), \
         tx_hash = COALESCE(v_tx_hash, tx_hash), \
         cancel_tx_hash = COALESCE(v_cancel_tx_hash, cancel_tx_hash), \
         version = version + 1, history = history || v_entry::jsonb, \
         lease_token = v_lease_token, lease_until = v_lease_until, \
         indexer_id = COALESCE(v_indexer_id, indexer_id), \
         filled_quantity = COALESCE(v_filled_quantity, filled_quantity), \
         cancel_confirmed_at = COALESCE(v_cancel_confirmed_at, cancel_confirmed_at) \
         FROM v WHERE order_id = v_id AND order_id IN (SELECT order_id FROM l) \
         AND {BUMPABLE} AND status = ANY(string_to_array(v_from, ',')) \
         AND (v_require = 0 OR (v_require = 1 AND (lease_until IS NULL OR lease_until <= v_at)) \
         OR (v_require = 2 AND lease_token = v_token)) \
         RETURNING {COLUMNS}, v_seq"
    )
}

/// The statements of a store on a schema, so that the root package's benches run exactly
/// the store's SQL with bare sqlx (feature `bench-internals`; hidden, no stability promise).
#[cfg(feature = "bench-internals")]
#[derive(Clone, Debug)]
pub struct BenchSql {
    /// Inserts one record: 28 parameters, in the order of the insert columns.
    pub insert_one: String,
    /// Inserts a batch: 28 array parameters (`UNNEST`).
    pub insert_many: String,
    /// Reads one record by `order_id` (`$1`).
    pub select_one: String,
    /// The compare-and-set of `transition` (no lease condition; 13 parameters, `$9` and `$10`
    /// the lease written, `$11..$13` the patch), returning the updated record.
    pub transition: String,
    /// The start of `list`'s query; filters, order and limit follow it.
    pub list_head: String,
}

#[cfg(feature = "bench-internals")]
impl BenchSql {
    /// The statements a store on `schema` runs.
    pub fn new(schema: &str) -> Result<Self, crate::PgError> {
        let sql = Sql::new(&Schema::new(schema)?);
        Ok(BenchSql {
            insert_one: sql.insert_one,
            insert_many: sql.insert_many,
            select_one: sql.select_one,
            transition: sql.transition,
            list_head: sql.list_head,
        })
    }
}
