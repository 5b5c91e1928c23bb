//! The statements of every operation, built at compile time (or once, for `transition`'s
//! variants), and the compare-and-set's lease condition.

use std::sync::LazyLock;

use ordermeta_core::{LeaseCondition, OrderStatus};

use crate::row::{self, columns};

pub(crate) const INSERT: &str = concat!(
    "INSERT INTO dydx_order_metadata (",
    columns!(),
    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
);

pub(crate) const SELECT_ONE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM dydx_order_metadata WHERE order_id = ?"
);

/// What a lost compare-and-set reads to tell a conflict from a concurrent change.
/// The lease columns are read as stored (`typeof`-checked by the caller through
/// [`crate::row`]'s rules), the version to tell a row that can no longer be bumped.
pub(crate) const SELECT_CLAIM: &str = "SELECT status, lease_token, lease_until, version \
     FROM dydx_order_metadata WHERE order_id = ?";

/// The highest version a row can have and still be bumped: `version + 1` beyond `i64::MAX`
/// is an integer overflow that would fail the whole statement, so every update skips such a
/// row (a claim reports it as `InvalidMetadata`, an expire leaves it and logs it).
macro_rules! bumpable {
    () => {
        "version < 9223372036854775807"
    };
}

pub(crate) const LIST_HEAD: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM dydx_order_metadata WHERE 1 = 1"
);

/// The fields a [`FieldPatch`](ordermeta_core::FieldPatch) sets, three parameters (indexer
/// id, filled quantity, cancel confirmation in µs): NULL keeps the stored value (a patch
/// never erases).
pub(crate) const PATCH: &str = "indexer_id = coalesce(?, indexer_id), \
     filled_quantity = coalesce(?, filled_quantity), \
     cancel_confirmed_at = coalesce(?, cancel_confirmed_at)";

/// The history append of every update: the entry goes to the end of the JSON array. A
/// stored history that is not JSON is left as it is (the update must not fail on it; the
/// read-back then reports the row as InvalidMetadata).
macro_rules! append_history {
    () => {
        "history = CASE WHEN json_valid(history) \
         THEN json_insert(history, '$[#]', json(?)) ELSE history END"
    };
}

/// The lease condition of a compare-and-set, as SQL: nothing, the lease has run out (or
/// there is none) at the request's instant, or the lease is held by a token.
const LEASE_CONDITIONS: [&str; 3] = [
    "",
    " AND (lease_until IS NULL OR lease_until <= ?)",
    " AND lease_token = ?",
];

/// The index in [`TRANSITION`] of a request's lease condition.
pub(crate) fn condition_index(c: Option<&LeaseCondition>) -> usize {
    match c {
        None => 0,
        Some(LeaseCondition::Expired) => 1,
        Some(LeaseCondition::HeldBy(_)) => 2,
    }
}

/// Whether the lease condition holds for the stored lease columns (`until` in µs), exactly as
/// the SQL of [`LEASE_CONDITIONS`] decides it.
pub(crate) fn condition_holds(
    c: Option<&LeaseCondition>,
    token: Option<&str>,
    until: Option<i64>,
    at: i64,
) -> bool {
    match c {
        None => true,
        Some(LeaseCondition::Expired) => until.is_none_or(|u| u <= at),
        Some(LeaseCondition::HeldBy(t)) => token == Some(t.as_str()),
    }
}

/// `transition`, one compare-and-set statement: `[lease condition][distinct from-statuses]`
/// (1..=7 statuses). The lease is written as given (NULL clears it); the patch
/// ([`PATCH`]) follows the lease.
pub(crate) static TRANSITION: LazyLock<Vec<Vec<String>>> = LazyLock::new(|| {
    LEASE_CONDITIONS
        .iter()
        .map(|condition| {
            (0..=OrderStatus::ALL.len())
                .map(|n| {
                    let marks = vec!["?"; n].join(", ");
                    format!(
                        "UPDATE dydx_order_metadata SET status = ?, updated_at = ?, \
                         cancelled_at = coalesce(?, cancelled_at), tx_hash = coalesce(?, tx_hash), \
                         cancel_tx_hash = coalesce(?, cancel_tx_hash), lease_token = ?, \
                         lease_until = ?, {}, version = version + 1, {} \
                         WHERE order_id = ? AND {} AND status IN ({marks}){condition} \
                         RETURNING {}",
                        PATCH,
                        append_history!(),
                        bumpable!(),
                        columns!()
                    )
                })
                .collect()
        })
        .collect()
});

/// `update`, one compare-and-set statement: `[version condition][distinct statuses]`, where
/// 0 statuses means any status and the version condition is `AND version = ?` (last). No
/// history entry (it records statuses) and no lease change.
pub(crate) static UPDATE: LazyLock<Vec<Vec<String>>> = LazyLock::new(|| {
    ["", " AND version = ?"]
        .iter()
        .map(|version| {
            (0..=OrderStatus::ALL.len())
                .map(|n| {
                    let statuses = if n == 0 {
                        String::new()
                    } else {
                        format!(" AND status IN ({})", vec!["?"; n].join(", "))
                    };
                    format!(
                        "UPDATE dydx_order_metadata SET updated_at = ?, {PATCH}, \
                         version = version + 1 \
                         WHERE order_id = ? AND {}{statuses}{version} RETURNING {}",
                        bumpable!(),
                        columns!()
                    )
                })
                .collect()
        })
        .collect()
});

/// `find_by_client_id`: the last entry of the key's range in its index (read backwards), so
/// one entry is read however many records share the client id. `INDEXED BY`: a plan that
/// cannot use the index fails instead of scanning.
pub(crate) const FIND_BY_CLIENT_ID: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM dydx_order_metadata INDEXED BY dydx_order_metadata_client_id_idx \
     WHERE owner = ? AND subaccount_number = ? AND clob_pair_id = ? AND client_id = ? \
     ORDER BY placed_at DESC, order_id DESC LIMIT 1"
);

/// `find_by_label`, likewise on the (partial) label index.
pub(crate) const FIND_BY_LABEL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM dydx_order_metadata INDEXED BY dydx_order_metadata_label_idx \
     WHERE label = ? ORDER BY placed_at DESC, order_id DESC LIMIT 1"
);

/// One batch of `expire` by height: at most `?` (the last parameter) rows, so the write lock
/// is released between batches. An unbound limit (NULL) means no limit (SQLite's `-1`), which
/// is how the benches' bare statement expires a whole sweep at once.
pub(crate) const EXPIRE_BY_BLOCK: &str = concat!(
    "UPDATE dydx_order_metadata SET status = 'expired', updated_at = ?, \
     version = version + 1, lease_token = NULL, lease_until = NULL, ",
    append_history!(),
    " WHERE rowid IN (SELECT rowid FROM dydx_order_metadata \
     INDEXED BY dydx_order_metadata_expire_block_idx \
     WHERE status IN ('pending', 'active', 'cancelling') AND good_until_block IS NOT NULL \
     AND good_until_block <= ? AND ",
    bumpable!(),
    " LIMIT coalesce(?, -1))"
);

/// One batch of `expire` by block time (see [`EXPIRE_BY_BLOCK`]).
pub(crate) const EXPIRE_BY_TIME: &str = concat!(
    "UPDATE dydx_order_metadata SET status = 'expired', updated_at = ?, \
     version = version + 1, lease_token = NULL, lease_until = NULL, ",
    append_history!(),
    " WHERE rowid IN (SELECT rowid FROM dydx_order_metadata \
     INDEXED BY dydx_order_metadata_expire_time_idx \
     WHERE status IN ('pending', 'active', 'cancelling') AND good_til_block_time IS NOT NULL \
     AND good_til_block_time <= ? AND ",
    bumpable!(),
    " LIMIT coalesce(?, -1))"
);

/// The due open orders an expire left because their version cannot be bumped (logged, a
/// few at a time: after the batches only those are left in the partial indexes).
pub(crate) const EXPIRE_STUCK: &str = "SELECT order_id FROM dydx_order_metadata \
     INDEXED BY dydx_order_metadata_expire_block_idx \
     WHERE status IN ('pending', 'active', 'cancelling') AND good_until_block IS NOT NULL \
     AND good_until_block <= ? AND NOT (version < 9223372036854775807) \
     UNION ALL SELECT order_id FROM dydx_order_metadata \
     INDEXED BY dydx_order_metadata_expire_time_idx \
     WHERE status IN ('pending', 'active', 'cancelling') AND good_til_block_time IS NOT NULL \
     AND good_til_block_time <= ? AND NOT (version < 9223372036854775807) LIMIT 20";

pub(crate) const PURGE: &str = "DELETE FROM dydx_order_metadata WHERE rowid IN (\
     SELECT rowid FROM dydx_order_metadata INDEXED BY dydx_order_metadata_purge_idx \
     WHERE status IN ('cancelled', 'expired', 'filled', 'failed') AND updated_at < ? LIMIT ?)";

/// The number of rows the batch statements are built for, `n` rows or more: the next power
/// of two, the rest padded with rows of NULLs that change nothing. Preparing a statement of
/// dozens of rows takes SQLite hundreds of µs (more than it takes to run it); with few sizes,
/// every one stays in the connection's statement cache.
pub(crate) fn rows_for(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// Columns of a record, the parameters of one row of [`insert_rows`].
pub(crate) const RECORD_PARAMS: usize = row::NAMES.len();

/// Group commit: the `record`s of a batch as one INSERT from `n` rows of values (padding rows
/// of NULLs are skipped). A row whose order id is taken is skipped instead of failing the
/// statement, and the ids inserted are returned, so that each caller learns its own outcome
/// (an id not returned already existed).
pub(crate) fn insert_rows(n: usize) -> String {
    let row = format!("({})", vec!["?"; RECORD_PARAMS].join(", "));
    format!(
        "INSERT INTO dydx_order_metadata ({}) SELECT * FROM (VALUES {}) \
         WHERE column1 IS NOT NULL ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
        columns!(),
        vec![row; n].join(", ")
    )
}

/// Parameters of one row of [`cas_rows`], in order: order id, new status (NULL: an `update`,
/// which keeps status, lease and history), instant (µs), cancelled_at, tx_hash,
/// cancel_tx_hash, lease token, lease end, the three [`PATCH`] fields, history entry (JSON),
/// allowed statuses ([`status_mask`]; NULL: any), expired-lease instant (NULL: no such
/// condition), lease holder required (NULL: none), version required (NULL: none).
pub(crate) const CAS_PARAMS: usize = 16;

/// Group commit: the `transition`s and `update`s of a batch (one per order) as one
/// compare-and-set `UPDATE … FROM` a table of [`CAS_PARAMS`] values per row (a padding row of
/// NULLs names no order). Each row's
/// conditions are the single statements' ([`TRANSITION`], [`UPDATE`]), as data; the rows
/// changed are returned whole, so that each caller learns whether its own compare-and-set
/// held (its order id is returned) and gets its record.
pub(crate) fn cas_rows(n: usize) -> String {
    let row = format!("({})", vec!["?"; CAS_PARAMS].join(", "));
    let position = OrderStatus::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| format!(" WHEN '{}' THEN {i}", s.as_str()))
        .collect::<String>();
    format!(
        "WITH v (k_id, k_to, k_at, k_cancelled_at, k_tx_hash, k_cancel_tx_hash, k_lease_token, \
         k_lease_until, k_indexer_id, k_filled_quantity, k_cancel_confirmed_at, k_entry, \
         k_statuses, k_expired_at, k_held_by, k_version) AS (VALUES {rows}) \
         UPDATE dydx_order_metadata SET status = coalesce(v.k_to, status), \
         updated_at = v.k_at, cancelled_at = coalesce(v.k_cancelled_at, cancelled_at), \
         tx_hash = coalesce(v.k_tx_hash, tx_hash), \
         cancel_tx_hash = coalesce(v.k_cancel_tx_hash, cancel_tx_hash), \
         lease_token = CASE WHEN v.k_to IS NULL THEN lease_token ELSE v.k_lease_token END, \
         lease_until = CASE WHEN v.k_to IS NULL THEN lease_until ELSE v.k_lease_until END, \
         indexer_id = coalesce(v.k_indexer_id, indexer_id), \
         filled_quantity = coalesce(v.k_filled_quantity, filled_quantity), \
         cancel_confirmed_at = coalesce(v.k_cancel_confirmed_at, cancel_confirmed_at), \
         version = version + 1, \
         history = CASE WHEN v.k_entry IS NOT NULL AND json_valid(history) \
         THEN json_insert(history, '$[#]', json(v.k_entry)) ELSE history END \
         FROM v WHERE order_id = v.k_id AND {bumpable} \
         AND (v.k_statuses IS NULL OR (v.k_statuses >> (CASE status{position} END)) & 1 = 1) \
         AND (v.k_expired_at IS NULL OR lease_until IS NULL OR lease_until <= v.k_expired_at) \
         AND (v.k_held_by IS NULL OR lease_token = v.k_held_by) \
         AND (v.k_version IS NULL OR version = v.k_version) \
         RETURNING {columns}",
        rows = vec![row; n].join(", "),
        bumpable = bumpable!(),
        columns = columns!(),
    )
}

/// The statuses a [`cas_rows`] row allows, as bits (bit `i` for `OrderStatus::ALL[i]`); a
/// stored status that is none of them (a corrupt row) matches no bit.
pub(crate) fn status_mask(statuses: &[OrderStatus]) -> i64 {
    statuses
        .iter()
        .filter_map(|s| OrderStatus::ALL.iter().position(|a| a == s))
        .fold(0, |mask, i| mask | (1 << i))
}

/// What the losers of a group commit's compare-and-set read ([`SELECT_CLAIM`]'s columns,
/// then the order id), `n` orders at once (a NULL pads).
pub(crate) fn select_claims(n: usize) -> String {
    format!(
        "SELECT status, lease_token, lease_until, version, order_id \
         FROM dydx_order_metadata WHERE order_id IN ({})",
        vec!["?"; n].join(", ")
    )
}

/// Distinct statuses, in the order given.
pub(crate) fn distinct(statuses: &[OrderStatus]) -> Vec<OrderStatus> {
    let mut out: Vec<OrderStatus> = Vec::with_capacity(statuses.len());
    for s in statuses {
        if !out.contains(s) {
            out.push(*s);
        }
    }
    out
}

/// The store's statements, so that the root package's benches run exactly the store's SQL
/// with bare sqlx (feature `bench-internals`; hidden, no stability promise).
#[cfg(feature = "bench-internals")]
pub mod bench_sql {
    /// Inserts one record: one parameter per column, in the order of the columns.
    pub const INSERT: &str = super::INSERT;
    /// Reads one record by `order_id`.
    pub const SELECT_ONE: &str = super::SELECT_ONE;
    /// Expires the open orders whose good-til-block is at or below a height.
    pub const EXPIRE_BY_BLOCK: &str = super::EXPIRE_BY_BLOCK;

    /// The compare-and-set of `transition` from `from` distinct statuses (1..=7), without a
    /// lease condition, returning the updated record.
    pub fn transition(from: usize) -> Option<&'static str> {
        super::TRANSITION
            .first()
            .and_then(|by_from| by_from.get(from))
            .map(String::as_str)
    }
}
