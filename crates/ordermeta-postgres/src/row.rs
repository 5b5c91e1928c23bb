//! Rows to records and back. Decoding is strict: every column is checked, and the separate
//! OrderId columns must agree with the encoded id.

use chrono::{DateTime, Utc};
use ordermeta_core::backend::{history_from_json, history_to_json, lease_from_parts};
use ordermeta_core::{GoodTil, Lease, OrderId, OrderMetadata, StoreError, from_micros};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Decode, Postgres, Row, Type};

/// A timestamp column as whole microseconds since the epoch, in a form whose decode cannot
/// fail: sqlx's chrono decode panics on `infinity` or on a value beyond chrono's range, and
/// PostgreSQL accepts both. `-infinity` reads as `i64::MIN`, `infinity` and anything past
/// year 262000 (chrono ends at 262143) as `i64::MAX`; [`from_micros`] then refuses those as
/// `InvalidMetadata`. `extract` is exact (numeric) on PostgreSQL 14+.
macro_rules! micros {
    ($c:literal) => {
        concat!(
            "CASE WHEN ",
            $c,
            " = '-infinity' THEN (-9223372036854775807 - 1)::int8 WHEN ",
            $c,
            " = 'infinity' OR ",
            $c,
            " >= '262000-01-01 00:00:00+00' THEN 9223372036854775807::int8 ELSE (extract(epoch FROM ",
            $c,
            ") * 1000000)::int8 END AS ",
            $c
        )
    };
}
pub(crate) use micros;

/// The columns every query selects, in [`decode`]'s order. `history` is read as text: the
/// core's JSON codec parses it, so a jsonb value that is not a valid history is reported.
/// Timestamps are read as microseconds (see [`micros!`]).
pub(crate) const COLUMNS: &str = concat!(
    "order_id, dydx_order_id, good_until_block, \
    good_til_block_time, client_id, subaccount_number, owner, order_flags, clob_pair_id, \
    symbol, side, quantity, price, order_type, ",
    micros!("placed_at"),
    ", ",
    micros!("updated_at"),
    ", ",
    micros!("cancelled_at"),
    ", tx_hash, cancel_tx_hash, status, version, history::text AS history, lease_token, ",
    micros!("lease_until"),
    ", label, indexer_id, filled_quantity, ",
    micros!("cancel_confirmed_at")
);

/// How many columns [`COLUMNS`] selects.
pub(crate) const COLUMN_COUNT: usize = 28;

/// The columns an insert writes, in [`Encoded`]'s order.
pub(crate) const INSERT_COLUMNS: &str = "order_id, dydx_order_id, good_until_block, \
    good_til_block_time, client_id, subaccount_number, owner, order_flags, clob_pair_id, \
    symbol, side, quantity, price, order_type, placed_at, updated_at, cancelled_at, tx_hash, \
    cancel_tx_hash, status, version, history, lease_token, lease_until, label, indexer_id, \
    filled_quantity, cancel_confirmed_at";

fn col<'r, T>(row: &'r PgRow, idx: usize, name: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(idx)
        .map_err(|e| StoreError::invalid(None, format!("column {name}: {e}")))
}

fn to_u32(v: i64, name: &str) -> Result<u32, StoreError> {
    u32::try_from(v)
        .map_err(|_| StoreError::invalid(None, format!("column {name}: {v} is not a u32")))
}

/// A timestamp read as microseconds (see [`micros!`]); out of range is `InvalidMetadata`.
fn time(row: &PgRow, idx: usize, name: &str) -> Result<DateTime<Utc>, StoreError> {
    time_from_micros(col(row, idx, name)?, name)
}

fn opt_time(row: &PgRow, idx: usize, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    col::<Option<i64>>(row, idx, name)?
        .map(|us| time_from_micros(us, name))
        .transpose()
}

/// Microseconds since the epoch to a time, the column named in the error.
pub(crate) fn time_from_micros(us: i64, name: &str) -> Result<DateTime<Utc>, StoreError> {
    from_micros(us).map_err(|_| match us {
        i64::MIN => StoreError::invalid(None, format!("column {name}: -infinity")),
        i64::MAX => StoreError::invalid(
            None,
            format!("column {name}: infinity or a time beyond the year 262000"),
        ),
        _ => StoreError::invalid(None, format!("column {name}: {us} µs is out of range")),
    })
}

/// The lease columns of a row: both set, or both NULL (no lease).
fn lease(row: &PgRow) -> Result<Option<Lease>, StoreError> {
    lease_from_parts(
        col::<Option<String>>(row, 22, "lease_token")?,
        opt_time(row, 23, "lease_until")?,
    )
}

/// The order id of a row, for naming it in errors (the primary key is never NULL).
pub(crate) fn order_id(row: &PgRow) -> Result<String, StoreError> {
    col(row, 0, "order_id")
}

/// Decodes one row selected with [`COLUMNS`]. Errors carry no order id; callers attach it.
pub(crate) fn decode(row: &PgRow) -> Result<OrderMetadata, StoreError> {
    // Text that is parsed further is borrowed from the row, not copied.
    let order_id: String = col(row, 0, "order_id")?;
    let encoded: &str = col(row, 1, "dydx_order_id")?;
    let gtb: Option<i64> = col(row, 2, "good_until_block")?;
    let gtbt: Option<i64> = col(row, 3, "good_til_block_time")?;
    let dydx_order_id = OrderId::from_base64(encoded)?;
    let client_id = to_u32(col(row, 4, "client_id")?, "client_id")?;
    let subaccount_number = to_u32(col(row, 5, "subaccount_number")?, "subaccount_number")?;
    let owner: &str = col(row, 6, "owner")?;
    let order_flags = to_u32(col(row, 7, "order_flags")?, "order_flags")?;
    let clob_pair_id = to_u32(col(row, 8, "clob_pair_id")?, "clob_pair_id")?;
    if (
        owner,
        subaccount_number,
        client_id,
        order_flags,
        clob_pair_id,
    ) != (
        dydx_order_id.owner.as_str(),
        dydx_order_id.subaccount_number,
        dydx_order_id.client_id,
        dydx_order_id.order_flags,
        dydx_order_id.clob_pair_id,
    ) {
        return Err(StoreError::invalid(
            None,
            format!(
                "the OrderId columns (owner {owner}, subaccount {subaccount_number}, client id \
                 {client_id}, flags {order_flags}, clob pair {clob_pair_id}) disagree with \
                 dydx_order_id {dydx_order_id:?}"
            ),
        ));
    }
    let good_til = match (gtb, gtbt) {
        (Some(b), None) => GoodTil::Block(to_u32(b, "good_until_block")?),
        (None, Some(t)) => GoodTil::BlockTime(to_u32(t, "good_til_block_time")?),
        (None, None) => return Err(StoreError::invalid(None, "no good-til block or time")),
        (Some(_), Some(_)) => {
            return Err(StoreError::invalid(
                None,
                "both a good-til block and a good-til block time",
            ));
        }
    };
    let side: &str = col(row, 10, "side")?;
    let order_type: &str = col(row, 13, "order_type")?;
    let status: &str = col(row, 19, "status")?;
    let version: i64 = col(row, 20, "version")?;
    let history: &str = col(row, 21, "history")?;
    let meta = OrderMetadata {
        order_id,
        dydx_order_id,
        good_til,
        symbol: col(row, 9, "symbol")?,
        side: side.parse()?,
        quantity: col(row, 11, "quantity")?,
        price: col(row, 12, "price")?,
        order_type: order_type.parse()?,
        placed_at: time(row, 14, "placed_at")?,
        updated_at: time(row, 15, "updated_at")?,
        cancelled_at: opt_time(row, 16, "cancelled_at")?,
        tx_hash: col(row, 17, "tx_hash")?,
        cancel_tx_hash: col(row, 18, "cancel_tx_hash")?,
        status: status.parse()?,
        version: u64::try_from(version).map_err(|_| {
            StoreError::invalid(None, format!("column version: {version} is negative"))
        })?,
        history: history_from_json(history)?,
        lease: lease(row)?,
        label: col(row, 24, "label")?,
        indexer_id: col(row, 25, "indexer_id")?,
        filled_quantity: col(row, 26, "filled_quantity")?,
        cancel_confirmed_at: opt_time(row, 27, "cancel_confirmed_at")?,
    };
    meta.validate()?;
    Ok(meta)
}

/// One record's column values, ready to bind.
pub(crate) struct Encoded<'a> {
    pub order_id: &'a str,
    pub dydx_order_id: String,
    pub good_until_block: Option<i64>,
    pub good_til_block_time: Option<i64>,
    pub client_id: i64,
    pub subaccount_number: i64,
    pub owner: &'a str,
    pub order_flags: i64,
    pub clob_pair_id: i64,
    pub symbol: &'a str,
    pub side: &'static str,
    pub quantity: &'a str,
    pub price: Option<&'a str>,
    pub order_type: &'static str,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub tx_hash: Option<&'a str>,
    pub cancel_tx_hash: Option<&'a str>,
    pub status: &'static str,
    pub version: i64,
    pub history: String,
    pub lease_token: Option<&'a str>,
    pub lease_until: Option<DateTime<Utc>>,
    pub label: Option<&'a str>,
    pub indexer_id: Option<&'a str>,
    pub filled_quantity: Option<&'a str>,
    pub cancel_confirmed_at: Option<DateTime<Utc>>,
}

impl Encoded<'_> {
    /// Binds the 28 values to `insert_one`.
    pub(crate) fn bind<'q>(
        &'q self,
        q: Query<'q, Postgres, PgArguments>,
    ) -> Query<'q, Postgres, PgArguments> {
        q.bind(self.order_id)
            .bind(&self.dydx_order_id)
            .bind(self.good_until_block)
            .bind(self.good_til_block_time)
            .bind(self.client_id)
            .bind(self.subaccount_number)
            .bind(self.owner)
            .bind(self.order_flags)
            .bind(self.clob_pair_id)
            .bind(self.symbol)
            .bind(self.side)
            .bind(self.quantity)
            .bind(self.price)
            .bind(self.order_type)
            .bind(self.placed_at)
            .bind(self.updated_at)
            .bind(self.cancelled_at)
            .bind(self.tx_hash)
            .bind(self.cancel_tx_hash)
            .bind(self.status)
            .bind(self.version)
            .bind(&self.history)
            .bind(self.lease_token)
            .bind(self.lease_until)
            .bind(self.label)
            .bind(self.indexer_id)
            .bind(self.filled_quantity)
            .bind(self.cancel_confirmed_at)
    }
}

/// Encodes a record already validated. A version beyond `i64::MAX` cannot be stored.
pub(crate) fn encode(m: &OrderMetadata) -> Result<Encoded<'_>, StoreError> {
    let id = &m.dydx_order_id;
    Ok(Encoded {
        order_id: &m.order_id,
        dydx_order_id: id.to_base64(),
        good_until_block: m.good_til.block().map(i64::from),
        good_til_block_time: m.good_til.block_time().map(i64::from),
        client_id: i64::from(id.client_id),
        subaccount_number: i64::from(id.subaccount_number),
        owner: &id.owner,
        order_flags: i64::from(id.order_flags),
        clob_pair_id: i64::from(id.clob_pair_id),
        symbol: &m.symbol,
        side: m.side.as_str(),
        quantity: &m.quantity,
        price: m.price.as_deref(),
        order_type: m.order_type.as_str(),
        placed_at: m.placed_at,
        updated_at: m.updated_at,
        cancelled_at: m.cancelled_at,
        tx_hash: m.tx_hash.as_deref(),
        cancel_tx_hash: m.cancel_tx_hash.as_deref(),
        status: m.status.as_str(),
        version: i64::try_from(m.version).map_err(|_| {
            StoreError::invalid(
                Some(&m.order_id),
                format!("version {} does not fit a BIGINT", m.version),
            )
        })?,
        history: history_to_json(&m.history),
        lease_token: m.lease.as_ref().map(|l| l.token.as_str()),
        lease_until: m.lease.as_ref().map(|l| l.until),
        label: m.label.as_deref(),
        indexer_id: m.indexer_id.as_deref(),
        filled_quantity: m.filled_quantity.as_deref(),
        cancel_confirmed_at: m.cancel_confirmed_at,
    })
}

/// A batch as one array per column, for `UNNEST`.
pub(crate) struct Columns<'a> {
    pub(crate) order_id: Vec<&'a str>,
    pub(crate) dydx_order_id: Vec<String>,
    pub(crate) good_until_block: Vec<Option<i64>>,
    pub(crate) good_til_block_time: Vec<Option<i64>>,
    pub(crate) client_id: Vec<i64>,
    pub(crate) subaccount_number: Vec<i64>,
    pub(crate) owner: Vec<&'a str>,
    pub(crate) order_flags: Vec<i64>,
    pub(crate) clob_pair_id: Vec<i64>,
    pub(crate) symbol: Vec<&'a str>,
    pub(crate) side: Vec<&'static str>,
    pub(crate) quantity: Vec<&'a str>,
    pub(crate) price: Vec<Option<&'a str>>,
    pub(crate) order_type: Vec<&'static str>,
    pub(crate) placed_at: Vec<DateTime<Utc>>,
    pub(crate) updated_at: Vec<DateTime<Utc>>,
    pub(crate) cancelled_at: Vec<Option<DateTime<Utc>>>,
    pub(crate) tx_hash: Vec<Option<&'a str>>,
    pub(crate) cancel_tx_hash: Vec<Option<&'a str>>,
    pub(crate) status: Vec<&'static str>,
    pub(crate) version: Vec<i64>,
    pub(crate) history: Vec<String>,
    pub(crate) lease_token: Vec<Option<&'a str>>,
    pub(crate) lease_until: Vec<Option<DateTime<Utc>>>,
    pub(crate) label: Vec<Option<&'a str>>,
    pub(crate) indexer_id: Vec<Option<&'a str>>,
    pub(crate) filled_quantity: Vec<Option<&'a str>>,
    pub(crate) cancel_confirmed_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> Columns<'a> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Columns {
            order_id: Vec::with_capacity(n),
            dydx_order_id: Vec::with_capacity(n),
            good_until_block: Vec::with_capacity(n),
            good_til_block_time: Vec::with_capacity(n),
            client_id: Vec::with_capacity(n),
            subaccount_number: Vec::with_capacity(n),
            owner: Vec::with_capacity(n),
            order_flags: Vec::with_capacity(n),
            clob_pair_id: Vec::with_capacity(n),
            symbol: Vec::with_capacity(n),
            side: Vec::with_capacity(n),
            quantity: Vec::with_capacity(n),
            price: Vec::with_capacity(n),
            order_type: Vec::with_capacity(n),
            placed_at: Vec::with_capacity(n),
            updated_at: Vec::with_capacity(n),
            cancelled_at: Vec::with_capacity(n),
            tx_hash: Vec::with_capacity(n),
            cancel_tx_hash: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            history: Vec::with_capacity(n),
            lease_token: Vec::with_capacity(n),
            lease_until: Vec::with_capacity(n),
            label: Vec::with_capacity(n),
            indexer_id: Vec::with_capacity(n),
            filled_quantity: Vec::with_capacity(n),
            cancel_confirmed_at: Vec::with_capacity(n),
        }
    }

    pub(crate) fn push(&mut self, e: Encoded<'a>) {
        self.order_id.push(e.order_id);
        self.dydx_order_id.push(e.dydx_order_id);
        self.good_until_block.push(e.good_until_block);
        self.good_til_block_time.push(e.good_til_block_time);
        self.client_id.push(e.client_id);
        self.subaccount_number.push(e.subaccount_number);
        self.owner.push(e.owner);
        self.order_flags.push(e.order_flags);
        self.clob_pair_id.push(e.clob_pair_id);
        self.symbol.push(e.symbol);
        self.side.push(e.side);
        self.quantity.push(e.quantity);
        self.price.push(e.price);
        self.order_type.push(e.order_type);
        self.placed_at.push(e.placed_at);
        self.updated_at.push(e.updated_at);
        self.cancelled_at.push(e.cancelled_at);
        self.tx_hash.push(e.tx_hash);
        self.cancel_tx_hash.push(e.cancel_tx_hash);
        self.status.push(e.status);
        self.version.push(e.version);
        self.history.push(e.history);
        self.lease_token.push(e.lease_token);
        self.lease_until.push(e.lease_until);
        self.label.push(e.label);
        self.indexer_id.push(e.indexer_id);
        self.filled_quantity.push(e.filled_quantity);
        self.cancel_confirmed_at.push(e.cancel_confirmed_at);
    }

    /// Binds the 28 arrays to a statement over `UNNEST` (`insert_many`, `record_batch`).
    pub(crate) fn bind<'q>(
        &'q self,
        q: Query<'q, Postgres, PgArguments>,
    ) -> Query<'q, Postgres, PgArguments> {
        q.bind(&self.order_id)
            .bind(&self.dydx_order_id)
            .bind(&self.good_until_block)
            .bind(&self.good_til_block_time)
            .bind(&self.client_id)
            .bind(&self.subaccount_number)
            .bind(&self.owner)
            .bind(&self.order_flags)
            .bind(&self.clob_pair_id)
            .bind(&self.symbol)
            .bind(&self.side)
            .bind(&self.quantity)
            .bind(&self.price)
            .bind(&self.order_type)
            .bind(&self.placed_at)
            .bind(&self.updated_at)
            .bind(&self.cancelled_at)
            .bind(&self.tx_hash)
            .bind(&self.cancel_tx_hash)
            .bind(&self.status)
            .bind(&self.version)
            .bind(&self.history)
            .bind(&self.lease_token)
            .bind(&self.lease_until)
            .bind(&self.label)
            .bind(&self.indexer_id)
            .bind(&self.filled_quantity)
            .bind(&self.cancel_confirmed_at)
    }
}
