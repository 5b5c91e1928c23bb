//! Between [`OrderMetadata`] and a `dydx_order_metadata` row: encoding for inserts, strict
//! decoding of what comes back.

use chrono::{DateTime, Utc};
use ordermeta_core::backend::{history_from_json, history_to_json, lease_from_parts};
use ordermeta_core::{GoodTil, Lease, OrderId, OrderMetadata, StoreError, from_micros, to_micros};
use sqlx::Row as _;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};

/// The column list, in the order [`decode`] reads them (a macro so SQL can be built with
/// `concat!` at compile time).
macro_rules! columns {
    () => {
        "order_id, dydx_order_id, good_until_block, good_til_block_time, client_id, \
         subaccount_number, owner, order_flags, clob_pair_id, symbol, side, quantity, price, \
         order_type, placed_at, updated_at, cancelled_at, tx_hash, cancel_tx_hash, status, \
         version, history, lease_token, lease_until, label, indexer_id, filled_quantity, \
         cancel_confirmed_at"
    };
}
pub(crate) use columns;

/// Column names by index, for error messages.
pub(crate) const NAMES: [&str; 28] = ordermeta_core::backend::STORED_FIELDS;

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// The version of `m` as stored (an INTEGER column): one beyond `i64::MAX` cannot be
/// written. The only part of a valid record that cannot be encoded, so checking it first
/// makes [`bind_record`] infallible (what a batch checks before binding a row).
pub(crate) fn db_version(m: &OrderMetadata) -> Result<i64, StoreError> {
    i64::try_from(m.version).map_err(|_| {
        StoreError::invalid(
            Some(&m.order_id),
            format!("version {} does not fit a 64-bit signed integer", m.version),
        )
    })
}

/// Binds every column of `m` (in [`columns!`] order) to `q`. Writes every field as given.
pub(crate) fn bind_record<'q>(q: Query<'q>, m: &'q OrderMetadata) -> Result<Query<'q>, StoreError> {
    Ok(bind_row(q, m, db_version(m)?))
}

/// [`bind_record`] with the version already checked ([`db_version`]).
pub(crate) fn bind_row<'q>(q: Query<'q>, m: &'q OrderMetadata, version: i64) -> Query<'q> {
    let id = &m.dydx_order_id;
    q.bind(m.order_id.as_str())
        .bind(id.to_base64())
        .bind(m.good_til.block().map(i64::from))
        .bind(m.good_til.block_time().map(i64::from))
        .bind(i64::from(id.client_id))
        .bind(i64::from(id.subaccount_number))
        .bind(id.owner.as_str())
        .bind(i64::from(id.order_flags))
        .bind(i64::from(id.clob_pair_id))
        .bind(m.symbol.as_str())
        .bind(m.side.as_str())
        .bind(m.quantity.as_str())
        .bind(m.price.as_deref())
        .bind(m.order_type.as_str())
        .bind(to_micros(m.placed_at))
        .bind(to_micros(m.updated_at))
        .bind(m.cancelled_at.map(to_micros))
        .bind(m.tx_hash.as_deref())
        .bind(m.cancel_tx_hash.as_deref())
        .bind(m.status.as_str())
        .bind(version)
        .bind(history_to_json(&m.history))
        .bind(m.lease.as_ref().map(|l| l.token.as_str()))
        .bind(m.lease.as_ref().map(|l| to_micros(l.until)))
        .bind(m.label.as_deref())
        .bind(m.indexer_id.as_deref())
        .bind(m.filled_quantity.as_deref())
        .bind(m.cancel_confirmed_at.map(to_micros))
}

/// Reads column `i` as `T`; a NULL where none belongs or a value of another type is
/// `InvalidMetadata`.
fn col<'r, T>(row: &'r SqliteRow, i: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get::<T, _>(i)
        .map_err(|e| StoreError::invalid(None, format!("column {}: {e}", NAMES[i])))
}

/// A u32 kept in an INTEGER column: negative or too large is `InvalidMetadata`.
fn u32_col(row: &SqliteRow, i: usize) -> Result<u32, StoreError> {
    let v: i64 = col(row, i)?;
    to_u32(v, i)
}

fn to_u32(v: i64, i: usize) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| {
        StoreError::invalid(None, format!("column {}: {v} is not a valid u32", NAMES[i]))
    })
}

fn parse_col<T>(row: &SqliteRow, i: usize) -> Result<T, StoreError>
where
    T: std::str::FromStr,
    StoreError: From<T::Err>,
{
    let s: &str = col(row, i)?;
    s.parse::<T>()
        .map_err(|e| prefix(StoreError::from(e), NAMES[i]))
}

/// Prefixes the reason of an `InvalidMetadata` with the column it came from.
fn prefix(e: StoreError, column: &str) -> StoreError {
    match e {
        StoreError::InvalidMetadata { order_id, reason } => StoreError::InvalidMetadata {
            order_id,
            reason: format!("column {column}: {reason}"),
        },
        other => other,
    }
}

/// An optional timestamp column (µs); out of range is `InvalidMetadata` naming the column.
fn opt_time(row: &SqliteRow, i: usize) -> Result<Option<DateTime<Utc>>, StoreError> {
    col::<Option<i64>>(row, i)?
        .map(from_micros)
        .transpose()
        .map_err(|e| prefix(e, NAMES[i]))
}

/// The lease columns of a row: both set, or both NULL (no lease).
fn lease(row: &SqliteRow) -> Result<Option<Lease>, StoreError> {
    lease_from_parts(col::<Option<String>>(row, 22)?, opt_time(row, 23)?)
}

/// The `order_id` column of a row (what errors and cursors name).
pub(crate) fn order_id(row: &SqliteRow) -> Result<String, StoreError> {
    col::<String>(row, 0)
}

/// The `order_id` column read as bytes, whatever they are: another tool may have stored an
/// id that is not UTF-8, and an error must still name that row.
pub(crate) fn order_id_lossy(row: &SqliteRow) -> String {
    match row.try_get::<&[u8], _>(0) {
        Ok(bytes) => lossy_id(bytes),
        Err(_) => String::from("<unreadable order_id>"),
    }
}

/// Starts a cursor that holds the bytes of an id that is not UTF-8 (in hex). No order id
/// can start with it: ids have no control characters.
const BYTES_CURSOR: &str = "\u{0}ordermeta-bytes:";

/// The cursor after a row: its id, or, for an id that is not UTF-8, [`BYTES_CURSOR`] and its
/// bytes, so that the next page starts exactly after it (a lossy id would skip or repeat rows).
pub(crate) fn cursor(row: &SqliteRow) -> String {
    match (order_id(row), row.try_get::<&[u8], _>(0)) {
        (Ok(id), _) => id,
        (Err(_), Ok(bytes)) => {
            let mut c = String::from(BYTES_CURSOR);
            for b in bytes {
                c.push_str(&format!("{b:02x}"));
            }
            c
        }
        (Err(_), Err(_)) => order_id_lossy(row),
    }
}

/// The bytes of a cursor made by [`cursor`] for an id that is not UTF-8; `None` for an
/// ordinary cursor (an order id).
pub(crate) fn cursor_bytes(after: &str) -> Option<Vec<u8>> {
    let hex = after.strip_prefix(BYTES_CURSOR)?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An id for messages: the bytes as UTF-8, invalid sequences replaced.
pub(crate) fn lossy_id(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Decodes a full row strictly: every column parsed, the separate OrderId columns checked
/// against the encoded OrderId, then [`OrderMetadata::validate`]. Errors name the order (an
/// id that is not UTF-8 by its lossy form).
pub(crate) fn decode(row: &SqliteRow) -> Result<OrderMetadata, StoreError> {
    let id = order_id(row).map_err(|e| e.for_order(&order_id_lossy(row)))?;
    decode_inner(row, &id).map_err(|e| e.for_order(&id))
}

/// The columns a lost compare-and-set reads ([`crate::sql::SELECT_CLAIM`]): status, lease
/// token, lease end (µs) and version. A value of the wrong type is `InvalidMetadata`.
pub(crate) fn claim(
    row: &SqliteRow,
) -> Result<(String, Option<String>, Option<i64>, i64), StoreError> {
    Ok((
        claim_col(row, 0, "status")?,
        claim_col(row, 1, "lease_token")?,
        claim_col(row, 2, "lease_until")?,
        claim_col(row, 3, "version")?,
    ))
}

fn claim_col<'r, T>(row: &'r SqliteRow, i: usize, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get::<T, _>(i)
        .map_err(|e| StoreError::invalid(None, format!("column {name}: {e}")))
}

fn decode_inner(row: &SqliteRow, order_id: &str) -> Result<OrderMetadata, StoreError> {
    let encoded: &str = col(row, 1)?;
    let dydx_order_id = OrderId::from_base64(encoded).map_err(|e| prefix(e, NAMES[1]))?;

    // The separate columns exist for indexing; they must say what the encoded id says.
    let owner: &str = col(row, 6)?;
    let checks = [
        (4, u32_col(row, 4)?, dydx_order_id.client_id),
        (5, u32_col(row, 5)?, dydx_order_id.subaccount_number),
        (7, u32_col(row, 7)?, dydx_order_id.order_flags),
        (8, u32_col(row, 8)?, dydx_order_id.clob_pair_id),
    ];
    if owner != dydx_order_id.owner {
        return Err(StoreError::invalid(
            None,
            format!(
                "column owner {owner:?} differs from the encoded OrderId's {:?}",
                dydx_order_id.owner
            ),
        ));
    }
    for (i, column, encoded) in checks {
        if column != encoded {
            return Err(StoreError::invalid(
                None,
                format!(
                    "column {} {column} differs from the encoded OrderId's {encoded}",
                    NAMES[i]
                ),
            ));
        }
    }

    let good_til = match (col::<Option<i64>>(row, 2)?, col::<Option<i64>>(row, 3)?) {
        (Some(b), None) => GoodTil::Block(to_u32(b, 2)?),
        (None, Some(t)) => GoodTil::BlockTime(to_u32(t, 3)?),
        (b, t) => {
            return Err(StoreError::invalid(
                None,
                format!(
                    "exactly one of good_until_block ({b:?}) and good_til_block_time ({t:?}) \
                     must be set"
                ),
            ));
        }
    };
    let version: i64 = col(row, 20)?;
    let version = u64::try_from(version)
        .map_err(|_| StoreError::invalid(None, format!("column version: {version} is negative")))?;
    let history_text: &str = col(row, 21)?;
    let history = history_from_json(history_text).map_err(|e| prefix(e, NAMES[21]))?;

    let meta = OrderMetadata {
        order_id: order_id.to_owned(),
        dydx_order_id,
        good_til,
        symbol: col(row, 9)?,
        side: parse_col(row, 10)?,
        quantity: col(row, 11)?,
        price: col(row, 12)?,
        order_type: parse_col(row, 13)?,
        status: parse_col(row, 19)?,
        placed_at: from_micros(col(row, 14)?).map_err(|e| prefix(e, NAMES[14]))?,
        updated_at: from_micros(col(row, 15)?).map_err(|e| prefix(e, NAMES[15]))?,
        cancelled_at: opt_time(row, 16)?,
        tx_hash: col(row, 17)?,
        cancel_tx_hash: col(row, 18)?,
        version,
        history,
        lease: lease(row)?,
        label: col(row, 24)?,
        indexer_id: col(row, 25)?,
        filled_quantity: col(row, 26)?,
        cancel_confirmed_at: opt_time(row, 27)?,
    };
    meta.validate()?;
    Ok(meta)
}
