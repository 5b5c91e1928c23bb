//! The order metadata record and its parts.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::order_id::OrderId;
use crate::status::OrderStatus;

/// Longest order id a store accepts, in bytes (keeps keys and indexes small).
pub const MAX_ORDER_ID_LEN: usize = 256;

/// Longest caller label ([`OrderMetadata::label`]) a store accepts, in bytes.
pub const MAX_LABEL_LEN: usize = 128;

/// Longest indexer order id ([`OrderMetadata::indexer_id`]) a store accepts, in bytes (the
/// indexer's ids are 36-character UUIDs; the margin is for other venues' forms).
pub const MAX_INDEXER_ID_LEN: usize = 64;

/// Truncates a timestamp to whole microseconds: the precision every store keeps.
///
/// Stores of the past and PostgreSQL keep microseconds, so every timestamp ordermeta writes
/// is cut to that first; a record then reads back equal to what was written on every backend.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// Now, truncated to microseconds.
pub fn now() -> DateTime<Utc> {
    truncate_micros(Utc::now())
}

/// Microseconds since the Unix epoch: the integer form stores use for timestamps.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Inverse of [`to_micros`]; out-of-range values are [`StoreError::InvalidMetadata`].
pub fn from_micros(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::<Utc>::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::invalid(None, format!("timestamp {us} µs is out of range")))
}

/// Until when an order may rest on the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum GoodTil {
    /// Short-term orders: the last block height (`good_til_block`) the order may be in.
    Block(u32),
    /// Stateful orders: a unix time in seconds (`good_til_block_time`).
    BlockTime(u32),
}

impl GoodTil {
    /// The good-til block, for short-term orders.
    pub fn block(self) -> Option<u32> {
        match self {
            GoodTil::Block(h) => Some(h),
            GoodTil::BlockTime(_) => None,
        }
    }

    /// The good-til block time (unix seconds), for stateful orders.
    pub fn block_time(self) -> Option<u32> {
        match self {
            GoodTil::BlockTime(t) => Some(t),
            GoodTil::Block(_) => None,
        }
    }

    /// Whether the order can no longer be on the book, given the chain's latest committed
    /// height and block time: `height >= GTB`, or `block_time >= GTBT`. An unknown side of the
    /// chain's clock (None) never expires anything.
    pub fn is_expired(self, height: Option<u32>, block_time: Option<u32>) -> bool {
        match self {
            GoodTil::Block(g) => height.is_some_and(|h| h >= g),
            GoodTil::BlockTime(g) => block_time.is_some_and(|t| t >= g),
        }
    }
}

impl fmt::Display for GoodTil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GoodTil::Block(h) => write!(f, "block {h}"),
            GoodTil::BlockTime(t) => match Utc.timestamp_opt(i64::from(t), 0).single() {
                Some(dt) => write!(f, "block time {} ({t})", dt.to_rfc3339()),
                None => write!(f, "block time {t}"),
            },
        }
    }
}

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Side {
    /// `"buy"` or `"sell"`, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Side {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "buy" => Ok(Side::Buy),
            "sell" => Ok(Side::Sell),
            _ => Err(StoreError::invalid(None, format!("unknown side {s:?}"))),
        }
    }
}

/// The order type, as the trader chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OrderType {
    /// Market order.
    Market,
    /// Limit order.
    Limit,
    /// Conditional stop-limit.
    StopLimit,
    /// Conditional stop-market.
    StopMarket,
    /// Conditional take-profit limit.
    TakeProfitLimit,
    /// Conditional take-profit market.
    TakeProfitMarket,
}

impl OrderType {
    /// Every order type.
    pub const ALL: [OrderType; 6] = [
        OrderType::Market,
        OrderType::Limit,
        OrderType::StopLimit,
        OrderType::StopMarket,
        OrderType::TakeProfitLimit,
        OrderType::TakeProfitMarket,
    ];

    /// The snake_case name, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
            OrderType::StopLimit => "stop_limit",
            OrderType::StopMarket => "stop_market",
            OrderType::TakeProfitLimit => "take_profit_limit",
            OrderType::TakeProfitMarket => "take_profit_market",
        }
    }
}

impl fmt::Display for OrderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for OrderType {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        OrderType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| StoreError::invalid(None, format!("unknown order type {s:?}")))
    }
}

/// One step of an order's history: the status it entered, when, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The status entered.
    pub status: OrderStatus,
    /// When (microsecond precision).
    pub at: DateTime<Utc>,
    /// Why, for the audit log (a chain answer, an error kind, "recorded", …).
    pub reason: Option<String>,
}

impl HistoryEntry {
    /// JSON text of one entry, as SQL stores append it to the stored array.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Serializes a history to the JSON array stored by the backends.
pub fn history_to_json(history: &[HistoryEntry]) -> String {
    // Serializing plain structs of strings and timestamps cannot fail.
    serde_json::to_string(history).unwrap_or_else(|_| "[]".to_owned())
}

/// Parses a stored JSON history; anything malformed is [`StoreError::InvalidMetadata`].
pub fn history_from_json(text: &str) -> Result<Vec<HistoryEntry>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::invalid(None, format!("history: {e}")))
}

/// Longest claim token a [`Lease`] may carry, in bytes.
pub const MAX_LEASE_TOKEN_LEN: usize = 128;

/// The claim one canceller holds on a `cancelling` order: who holds it (a token per
/// canceller instance) and until when.
///
/// A canceller that dies after claiming leaves its lease behind; once `until` has passed,
/// another canceller may re-claim the order atomically
/// ([`TransitionRequest::require_expired_lease`](crate::TransitionRequest::require_expired_lease))
/// and re-send the cancel with the stored id and good-til — a re-sent cancel is harmless on
/// chain. A lease that has not run out is never taken over.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds the claim: one token per canceller instance (1..=128 bytes, no control
    /// characters).
    pub token: String,
    /// When the claim runs out (microsecond precision). At or after this instant the order
    /// may be re-claimed.
    pub until: DateTime<Utc>,
}

impl Lease {
    /// A lease held by `token` until `until` (truncated to microseconds, as stored).
    pub fn new(token: impl Into<String>, until: DateTime<Utc>) -> Self {
        Lease {
            token: token.into(),
            until: truncate_micros(until),
        }
    }

    /// Whether the lease has run out at `at`: `until <= at`.
    pub fn is_expired_at(&self, at: DateTime<Utc>) -> bool {
        self.until <= at
    }

    /// Checks the token's length and characters.
    pub fn validate(&self) -> Result<(), String> {
        if self.token.is_empty() || self.token.len() > MAX_LEASE_TOKEN_LEN {
            return Err(format!(
                "lease token must be 1..={MAX_LEASE_TOKEN_LEN} bytes, got {}",
                self.token.len()
            ));
        }
        if self.token.chars().any(char::is_control) {
            return Err("lease token contains control characters".into());
        }
        Ok(())
    }
}

/// What the caller knows about an order before it is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    /// Our order id: unique, stable, printable; what cancel-by-id takes.
    pub order_id: String,
    /// The chain's order identity.
    pub dydx_order_id: OrderId,
    /// The order's good-til (block for short-term, block time for stateful).
    pub good_til: GoodTil,
    /// Market symbol, e.g. `BTC-USD`.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Quantity as exact decimal text.
    pub quantity: String,
    /// Price as exact decimal text; `None` for market orders.
    pub price: Option<String>,
    /// Order type.
    pub order_type: OrderType,
}

/// Everything ordermeta keeps about one order: the original design's `dydx_order_metadata`
/// row, plus what a correct cancel and an audit need.
///
/// The subaccount number, client id, owner, order flags and market are fields of
/// [`dydx_order_id`](Self::dydx_order_id); stores keep them in their own columns too, for
/// indexing, and check them against the encoded id when reading back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderMetadata {
    /// Our order id (primary key).
    pub order_id: String,
    /// The chain's `OrderId`, stored as base64 of its protobuf bytes.
    pub dydx_order_id: OrderId,
    /// Good-til block (short-term) or block time (stateful).
    pub good_til: GoodTil,
    /// Market symbol, e.g. `BTC-USD` (any unicode).
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Quantity, exact decimal text.
    pub quantity: String,
    /// Price, exact decimal text; `None` for market orders.
    pub price: Option<String>,
    /// Order type.
    pub order_type: OrderType,
    /// Current status.
    pub status: OrderStatus,
    /// When the metadata was recorded (just before broadcast).
    pub placed_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
    /// When the cancel was accepted.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Hash of the placement transaction.
    pub tx_hash: Option<String>,
    /// Hash of the cancel transaction.
    pub cancel_tx_hash: Option<String>,
    /// Incremented by every transition; 1 when recorded.
    pub version: u64,
    /// Every status the order entered, oldest first; the last is `status`.
    pub history: Vec<HistoryEntry>,
    /// The claim of the canceller working on this order: `Some` only while the order is
    /// `cancelling` (a `cancelling` record without one, e.g. written before leases existed,
    /// counts as unclaimed and may be re-claimed at once).
    pub lease: Option<Lease>,
    /// The caller's own name for the order (a bot's order id or UUID): 1..=128 bytes, no
    /// control characters. Indexed: [`find_by_label`](crate::MetadataStore::find_by_label)
    /// returns the newest record carrying it. Not unique: a bot may reuse labels.
    pub label: Option<String>,
    /// The indexer's id of the order (a UUID), once known.
    pub indexer_id: Option<String>,
    /// How much of the order has filled, exact decimal text, as last reported by the chain
    /// or the indexer; `None` while nothing is known to have filled.
    pub filled_quantity: Option<String>,
    /// When the chain confirmed the order gone after a cancel (the indexer's `CANCELED`, or
    /// the order absent from the book at a committed block). `cancelled_at` is when the node
    /// *accepted* the cancel: a short-term cancel is best effort until this is set.
    pub cancel_confirmed_at: Option<DateTime<Utc>>,
}

impl OrderMetadata {
    /// A fresh record in `status` (normally [`OrderStatus::Pending`]) at time `at`.
    pub fn new(order: NewOrder, status: OrderStatus, at: DateTime<Utc>) -> Self {
        let at = truncate_micros(at);
        OrderMetadata {
            order_id: order.order_id,
            dydx_order_id: order.dydx_order_id,
            good_til: order.good_til,
            symbol: order.symbol,
            side: order.side,
            quantity: order.quantity,
            price: order.price,
            order_type: order.order_type,
            status,
            placed_at: at,
            updated_at: at,
            cancelled_at: None,
            tx_hash: None,
            cancel_tx_hash: None,
            version: 1,
            history: vec![HistoryEntry {
                status,
                at,
                reason: Some("recorded".to_owned()),
            }],
            lease: None,
            label: None,
            indexer_id: None,
            filled_quantity: None,
            cancel_confirmed_at: None,
        }
    }

    /// The same record carrying the caller's `label` (see [`label`](Self::label)).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Owner address of the order's subaccount.
    pub fn owner(&self) -> &str {
        &self.dydx_order_id.owner
    }

    /// Subaccount number.
    pub fn subaccount_number(&self) -> u32 {
        self.dydx_order_id.subaccount_number
    }

    /// Client id.
    pub fn client_id(&self) -> u32 {
        self.dydx_order_id.client_id
    }

    /// Order flags.
    pub fn order_flags(&self) -> u32 {
        self.dydx_order_id.order_flags
    }

    /// Market (CLOB pair) id.
    pub fn clob_pair_id(&self) -> u32 {
        self.dydx_order_id.clob_pair_id
    }

    /// Checks the record is well formed; every store calls this before writing and after
    /// reading, so a corrupt row surfaces as [`StoreError::InvalidMetadata`] naming the order.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |reason: String| Err(StoreError::invalid(Some(&self.order_id), reason));
        if self.order_id.is_empty() || self.order_id.len() > MAX_ORDER_ID_LEN {
            return bad(format!(
                "order id must be 1..={MAX_ORDER_ID_LEN} bytes, got {}",
                self.order_id.len()
            ));
        }
        if self.order_id.chars().any(char::is_control) {
            return bad("order id contains control characters".into());
        }
        if self.dydx_order_id.owner.is_empty() {
            return bad("owner address is empty".into());
        }
        match (self.dydx_order_id.is_short_term(), self.good_til) {
            (true, GoodTil::Block(_)) | (false, GoodTil::BlockTime(_)) => {}
            (true, GoodTil::BlockTime(_)) => {
                return bad("a short-term order (flags 0) needs a good-til block".into());
            }
            (false, GoodTil::Block(_)) => {
                return bad(format!(
                    "a stateful order (flags {}) needs a good-til block time",
                    self.dydx_order_id.order_flags
                ));
            }
        }
        if self.symbol.is_empty() {
            return bad("symbol is empty".into());
        }
        if !is_decimal(&self.quantity) {
            return bad(format!(
                "quantity {:?} is not a decimal number",
                self.quantity
            ));
        }
        if let Some(p) = &self.price
            && !is_decimal(p)
        {
            return bad(format!("price {p:?} is not a decimal number"));
        }
        if self.version == 0 {
            return bad("version must be at least 1".into());
        }
        if let Some(label) = &self.label {
            check_label(label).or_else(bad)?;
        }
        if let Some(id) = &self.indexer_id {
            check_indexer_id(id).or_else(bad)?;
        }
        if let Some(q) = &self.filled_quantity {
            check_filled_quantity(q).or_else(bad)?;
        }
        if let Some(lease) = &self.lease {
            if self.status != OrderStatus::Cancelling {
                return bad(format!(
                    "only a cancelling order holds a lease, this one is {}",
                    self.status
                ));
            }
            lease.validate().or_else(bad)?;
        }
        match self.history.last() {
            None => return bad("history is empty".into()),
            Some(last) if last.status != self.status => {
                return bad(format!(
                    "history ends in {} but status is {}",
                    last.status, self.status
                ));
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// Checks a caller label: 1..=[`MAX_LABEL_LEN`] bytes, no control characters.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "label must be 1..={MAX_LABEL_LEN} bytes, got {}",
            label.len()
        ));
    }
    if label.chars().any(char::is_control) {
        return Err("label contains control characters".into());
    }
    Ok(())
}

/// Checks an indexer order id: 1..=[`MAX_INDEXER_ID_LEN`] bytes of printable ASCII.
pub fn check_indexer_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_INDEXER_ID_LEN {
        return Err(format!(
            "indexer id must be 1..={MAX_INDEXER_ID_LEN} bytes, got {}",
            id.len()
        ));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("indexer id must be printable ASCII".into());
    }
    Ok(())
}

/// Checks a filled quantity: non-negative plain decimal text.
pub fn check_filled_quantity(q: &str) -> Result<(), String> {
    if !is_decimal(q) || q.starts_with('-') {
        return Err(format!(
            "filled quantity {q:?} is not a non-negative decimal number"
        ));
    }
    Ok(())
}

/// Plain decimal text: digits, optionally a dot and more digits, optionally a leading minus.
/// No exponent, no spaces, no NaN: exactly what `Decimal` parsers round-trip.
fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for ok in ["0", "1", "0.001", "123456789.123456789", "-1.5"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", ".", "1.", ".5", "1e5", "NaN", " 1", "1,5", "--1", "+1"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn expiry_rule() {
        assert!(!GoodTil::Block(10).is_expired(Some(9), None));
        assert!(GoodTil::Block(10).is_expired(Some(10), None));
        assert!(!GoodTil::Block(10).is_expired(None, Some(u32::MAX)));
        assert!(GoodTil::BlockTime(100).is_expired(None, Some(100)));
        assert!(!GoodTil::BlockTime(100).is_expired(Some(u32::MAX), Some(99)));
    }

    #[test]
    fn history_json_round_trips_and_rejects_garbage() {
        let h = vec![HistoryEntry {
            status: OrderStatus::Pending,
            at: now(),
            reason: Some("ünïcode".into()),
        }];
        assert_eq!(history_from_json(&history_to_json(&h)).expect("parse"), h);
        assert!(history_from_json("[{").is_err());
        assert!(history_from_json(r#"[{"status":"bogus","at":"2020-01-01T00:00:00Z"}]"#).is_err());
    }
}
