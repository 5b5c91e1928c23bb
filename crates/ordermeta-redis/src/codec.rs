//! One order as a Redis HASH: the shared SQL schema's column names, integers as decimal text,
//! timestamps as integer microseconds, the history as a JSON array.

use std::collections::HashMap;

use ordermeta_core::backend::{STORED_FIELDS, history_from_json, history_to_json};
use ordermeta_core::{
    GoodTil, Lease, ListQuery, OrderId, OrderMetadata, StoreError, from_micros, to_micros,
};

/// A HASH as read from Redis: field name to raw value.
pub(crate) type RawHash = HashMap<Vec<u8>, Vec<u8>>;

/// The field holding the token of the last write (not part of the model).
pub(crate) const OP_FIELD: &str = "op";

/// Every HASH field of the model, whichever `encode` writes for some record (the optional
/// ones are absent when their value is). A transition deletes those of them a record no
/// longer has.
pub(crate) const FIELDS: [&str; 29] = with_op(STORED_FIELDS);

/// The stored fields plus [`OP_FIELD`].
const fn with_op(stored: [&'static str; 28]) -> [&'static str; 29] {
    let mut out = [OP_FIELD; 29];
    let mut i = 0;
    while i < stored.len() {
        out[i] = stored[i];
        i += 1;
    }
    out
}

/// The largest version a record holds: every store keeps versions as a signed 64-bit integer.
pub(crate) const MAX_VERSION: u64 = i64::MAX as u64;

/// The version after `v`: one more, saturating at [`MAX_VERSION`] (only a record written by
/// something else can get there; it stays usable, its version stops counting).
pub(crate) fn next_version(v: u64) -> u64 {
    if v >= MAX_VERSION { v } else { v + 1 }
}

/// The HASH fields `record` writes for `meta` (the [layout](crate#key-layout)), without the
/// internal `op` token. Not part of the API: for the root package's benches, which send the
/// same payload with bare redis-rs (feature `bench-internals`).
#[cfg(feature = "bench-internals")]
pub fn hash_fields(meta: &OrderMetadata) -> Vec<(&'static str, String)> {
    encode(meta)
}

/// The HASH fields of `m`, in a fixed order. Absent optional values are absent fields.
pub(crate) fn encode(m: &OrderMetadata) -> Vec<(&'static str, String)> {
    let mut f = Vec::with_capacity(28);
    encode_fixed(m, &mut f);
    encode_changeable(m, &mut f);
    f
}

/// The fields no transition or update changes (each a function of [`same_fixed`]'s values).
pub(crate) const FIXED_FIELDS: [&str; 15] = [
    "order_id",
    "dydx_order_id",
    "good_until_block",
    "good_til_block_time",
    "client_id",
    "subaccount_number",
    "owner",
    "order_flags",
    "clob_pair_id",
    "symbol",
    "side",
    "quantity",
    "price",
    "order_type",
    "placed_at",
];

/// Whether `a` and `b` hold the same values in every field of [`FIXED_FIELDS`] (so their
/// encodings agree there). `label` is not fixed: it is encoded with the changeable fields.
pub(crate) fn same_fixed(a: &OrderMetadata, b: &OrderMetadata) -> bool {
    a.order_id == b.order_id
        && a.dydx_order_id == b.dydx_order_id
        && a.good_til == b.good_til
        && a.symbol == b.symbol
        && a.side == b.side
        && a.quantity == b.quantity
        && a.price == b.price
        && a.order_type == b.order_type
        && a.placed_at == b.placed_at
}

/// Appends the [`FIXED_FIELDS`] of `m`.
pub(crate) fn encode_fixed(m: &OrderMetadata, f: &mut Vec<(&'static str, String)>) {
    f.push(("order_id", m.order_id.clone()));
    f.push(("dydx_order_id", m.dydx_order_id.to_base64()));
    match m.good_til {
        GoodTil::Block(b) => f.push(("good_until_block", b.to_string())),
        GoodTil::BlockTime(t) => f.push(("good_til_block_time", t.to_string())),
    }
    f.push(("client_id", m.client_id().to_string()));
    f.push(("subaccount_number", m.subaccount_number().to_string()));
    f.push(("owner", m.owner().to_owned()));
    f.push(("order_flags", m.order_flags().to_string()));
    f.push(("clob_pair_id", m.clob_pair_id().to_string()));
    f.push(("symbol", m.symbol.clone()));
    f.push(("side", m.side.as_str().to_owned()));
    f.push(("quantity", m.quantity.clone()));
    if let Some(p) = &m.price {
        f.push(("price", p.clone()));
    }
    f.push(("order_type", m.order_type.as_str().to_owned()));
    f.push(("placed_at", to_micros(m.placed_at).to_string()));
}

/// Appends every field of `m` outside [`FIXED_FIELDS`].
pub(crate) fn encode_changeable(m: &OrderMetadata, f: &mut Vec<(&'static str, String)>) {
    f.push(("updated_at", to_micros(m.updated_at).to_string()));
    if let Some(c) = m.cancelled_at {
        f.push(("cancelled_at", to_micros(c).to_string()));
    }
    if let Some(h) = &m.tx_hash {
        f.push(("tx_hash", h.clone()));
    }
    if let Some(h) = &m.cancel_tx_hash {
        f.push(("cancel_tx_hash", h.clone()));
    }
    f.push(("status", m.status.as_str().to_owned()));
    f.push(("version", m.version.to_string()));
    f.push(("history", history_to_json(&m.history)));
    if let Some(lease) = &m.lease {
        f.push(("lease_token", lease.token.clone()));
        f.push(("lease_until", to_micros(lease.until).to_string()));
    }
    if let Some(l) = &m.label {
        f.push(("label", l.clone()));
    }
    if let Some(i) = &m.indexer_id {
        f.push(("indexer_id", i.clone()));
    }
    if let Some(q) = &m.filled_quantity {
        f.push(("filled_quantity", q.clone()));
    }
    if let Some(t) = m.cancel_confirmed_at {
        f.push(("cancel_confirmed_at", to_micros(t).to_string()));
    }
}

fn bad(reason: String) -> StoreError {
    StoreError::invalid(None, reason)
}

fn text<'a>(h: &'a RawHash, field: &str) -> Result<Option<&'a str>, StoreError> {
    match h.get(field.as_bytes()) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v)
            .map(Some)
            .map_err(|_| bad(format!("{field} is not UTF-8"))),
    }
}

fn required<'a>(h: &'a RawHash, field: &str) -> Result<&'a str, StoreError> {
    text(h, field)?.ok_or_else(|| bad(format!("{field} is missing")))
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_u32(field: &str, s: &str) -> Result<u32, StoreError> {
    if !digits(s) {
        return Err(bad(format!("{field} {s:?} is not an unsigned integer")));
    }
    s.parse()
        .map_err(|_| bad(format!("{field} {s:?} is out of range")))
}

fn parse_u64(field: &str, s: &str) -> Result<u64, StoreError> {
    if !digits(s) {
        return Err(bad(format!("{field} {s:?} is not an unsigned integer")));
    }
    s.parse()
        .map_err(|_| bad(format!("{field} {s:?} is out of range")))
}

fn parse_micros(field: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    if !digits(s.strip_prefix('-').unwrap_or(s)) {
        return Err(bad(format!("{field} {s:?} is not an integer")));
    }
    let us: i64 = s
        .parse()
        .map_err(|_| bad(format!("{field} {s:?} is out of range")))?;
    from_micros(us)
}

fn u32_field(h: &RawHash, field: &str) -> Result<u32, StoreError> {
    parse_u32(field, required(h, field)?)
}

/// Decodes a stored HASH strictly; anything malformed is `InvalidMetadata` naming `order_id`.
pub(crate) fn decode(order_id: &str, h: &RawHash) -> Result<OrderMetadata, StoreError> {
    decode_inner(order_id, h).map_err(|e| e.for_order(order_id))
}

fn decode_inner(order_id: &str, h: &RawHash) -> Result<OrderMetadata, StoreError> {
    let stored_id = required(h, "order_id")?;
    if stored_id != order_id {
        return Err(bad(format!(
            "order_id field {stored_id:?} does not match its key"
        )));
    }
    let dydx_order_id = OrderId::from_base64(required(h, "dydx_order_id")?)?;
    let columns = (
        required(h, "owner")?,
        u32_field(h, "subaccount_number")?,
        u32_field(h, "client_id")?,
        u32_field(h, "order_flags")?,
        u32_field(h, "clob_pair_id")?,
    );
    let encoded = (
        dydx_order_id.owner.as_str(),
        dydx_order_id.subaccount_number,
        dydx_order_id.client_id,
        dydx_order_id.order_flags,
        dydx_order_id.clob_pair_id,
    );
    if columns != encoded {
        return Err(bad(format!(
            "owner/subaccount/client id/flags/clob pair {columns:?} disagree with dydx_order_id {encoded:?}"
        )));
    }
    let good_til = match (
        text(h, "good_until_block")?,
        text(h, "good_til_block_time")?,
    ) {
        (Some(b), None) => GoodTil::Block(parse_u32("good_until_block", b)?),
        (None, Some(t)) => GoodTil::BlockTime(parse_u32("good_til_block_time", t)?),
        (Some(_), Some(_)) => {
            return Err(bad(
                "both good_until_block and good_til_block_time are set".into()
            ));
        }
        (None, None) => {
            return Err(bad(
                "neither good_until_block nor good_til_block_time is set".into(),
            ));
        }
    };
    let meta = OrderMetadata {
        order_id: stored_id.to_owned(),
        dydx_order_id,
        good_til,
        symbol: required(h, "symbol")?.to_owned(),
        side: required(h, "side")?.parse()?,
        quantity: required(h, "quantity")?.to_owned(),
        price: text(h, "price")?.map(str::to_owned),
        order_type: required(h, "order_type")?.parse()?,
        status: required(h, "status")?.parse()?,
        placed_at: parse_micros("placed_at", required(h, "placed_at")?)?,
        updated_at: parse_micros("updated_at", required(h, "updated_at")?)?,
        cancelled_at: text(h, "cancelled_at")?
            .map(|s| parse_micros("cancelled_at", s))
            .transpose()?,
        tx_hash: text(h, "tx_hash")?.map(str::to_owned),
        cancel_tx_hash: text(h, "cancel_tx_hash")?.map(str::to_owned),
        version: parse_u64("version", required(h, "version")?)?,
        history: history_from_json(required(h, "history")?)?,
        lease: match (text(h, "lease_token")?, text(h, "lease_until")?) {
            (None, None) => None,
            (Some(token), Some(until)) => {
                Some(Lease::new(token, parse_micros("lease_until", until)?))
            }
            _ => {
                return Err(bad(
                    "lease_token and lease_until must be set together".into()
                ));
            }
        },
        // Checked by `validate` below (label, indexer id, filled quantity).
        label: text(h, "label")?.map(str::to_owned),
        indexer_id: text(h, "indexer_id")?.map(str::to_owned),
        filled_quantity: text(h, "filled_quantity")?.map(str::to_owned),
        cancel_confirmed_at: text(h, "cancel_confirmed_at")?
            .map(|s| parse_micros("cancel_confirmed_at", s))
            .transpose()?,
    };
    // The version is an i64 in every other store; keep the same range here.
    if meta.version > MAX_VERSION {
        return Err(bad(format!("version {} is out of range", meta.version)));
    }
    meta.validate()?;
    Ok(meta)
}

/// Whether a HASH passes `q`'s filter, judged on the raw fields (as a SQL `WHERE` would), so
/// that a corrupt record is reported by `list` exactly when its columns match.
pub(crate) fn raw_matches(q: &ListQuery, h: &RawHash) -> bool {
    let field = |f: &str| h.get(f.as_bytes()).map(Vec::as_slice);
    (q.statuses.is_empty()
        || q.statuses
            .iter()
            .any(|s| field("status") == Some(s.as_str().as_bytes())))
        && q.owner
            .as_deref()
            .is_none_or(|o| field("owner") == Some(o.as_bytes()))
        && q.subaccount_number
            .is_none_or(|n| field("subaccount_number") == Some(n.to_string().as_bytes()))
        && q.symbol
            .as_deref()
            .is_none_or(|s| field("symbol") == Some(s.as_bytes()))
}

/// One value of a script reply as bytes.
pub(crate) fn bytes(v: redis::Value) -> Result<Vec<u8>, StoreError> {
    match v {
        redis::Value::BulkString(b) => Ok(b),
        redis::Value::SimpleString(s) => Ok(s.into_bytes()),
        redis::Value::Int(i) => Ok(i.to_string().into_bytes()),
        redis::Value::Okay => Ok(b"OK".to_vec()),
        other => Err(StoreError::backend(format!(
            "unexpected reply from a script: {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordermeta_core::{NewOrder, OrderStatus, OrderType, Side, now};

    fn sample() -> OrderMetadata {
        OrderMetadata::new(
            NewOrder {
                order_id: "a".into(),
                dydx_order_id: OrderId {
                    owner: "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn".into(),
                    subaccount_number: u32::MAX,
                    client_id: 1,
                    order_flags: 0,
                    clob_pair_id: 2,
                },
                good_til: GoodTil::Block(u32::MAX),
                symbol: "BTC-USD".into(),
                side: Side::Buy,
                quantity: "1".into(),
                price: None,
                order_type: OrderType::Market,
            },
            OrderStatus::Pending,
            now(),
        )
    }

    fn raw(m: &OrderMetadata) -> RawHash {
        encode(m)
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
            .collect()
    }

    #[test]
    fn fields_name_every_field_encode_writes() {
        let mut m = sample();
        m.status = OrderStatus::Cancelled;
        m.history[0].status = OrderStatus::Cancelled;
        m.price = Some("1".into());
        m.cancelled_at = Some(now());
        m.tx_hash = Some("t".into());
        m.cancel_tx_hash = Some("c".into());
        m.label = Some("l".into());
        m.indexer_id = Some("i".into());
        m.filled_quantity = Some("0".into());
        m.cancel_confirmed_at = Some(now());
        for (f, _) in encode(&m) {
            assert!(FIELDS.contains(&f), "{f}");
        }
        let mut written: Vec<&str> = encode(&m).iter().map(|(f, _)| *f).collect();
        m.good_til = GoodTil::BlockTime(1);
        m.status = OrderStatus::Cancelling;
        m.history[0].status = OrderStatus::Cancelling;
        m.lease = Some(Lease::new("t", now()));
        written.extend(encode(&m).iter().map(|(f, _)| *f));
        for f in STORED_FIELDS {
            assert!(written.contains(&f), "{f} is never written");
        }
    }

    #[test]
    fn versions_saturate() {
        assert_eq!(next_version(1), 2);
        assert_eq!(next_version(MAX_VERSION - 1), MAX_VERSION);
        assert_eq!(next_version(MAX_VERSION), MAX_VERSION);
        let mut m = sample();
        m.version = MAX_VERSION;
        assert_eq!(
            decode("a", &raw(&m))
                .expect("i64::MAX is a version")
                .version,
            MAX_VERSION
        );
    }

    #[test]
    fn the_time_range_is_what_from_micros_reads() {
        let lo = chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp_micros();
        let hi = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_micros();
        assert!(from_micros(lo).is_ok() && from_micros(hi).is_ok());
        assert!(from_micros(lo - 1).is_err() && from_micros(hi + 1).is_err());
    }

    #[test]
    fn round_trips() {
        let mut m = sample();
        m.tx_hash = Some(String::new());
        assert_eq!(decode("a", &raw(&m)).expect("decode"), m);
        m.label = Some("bot-örder 🚀".into());
        m.indexer_id = Some("5f2ba7a4-7dc6-5f6e-8d8a-2a5e3f5d1c42".into());
        m.filled_quantity = Some("0.000000000000000001".into());
        m.cancel_confirmed_at = Some(now());
        assert_eq!(decode("a", &raw(&m)).expect("decode"), m);
    }

    #[test]
    fn leases_round_trip_and_are_read_strictly() {
        let mut m = sample();
        m.status = OrderStatus::Cancelling;
        m.history[0].status = OrderStatus::Cancelling;
        m.lease = Some(ordermeta_core::Lease::new("canceller-1", now()));
        let h = raw(&m);
        assert!(h.contains_key(b"lease_token".as_slice()));
        assert_eq!(decode("a", &h).expect("decode"), m);
        let cases: [(&[u8], Option<&[u8]>); 4] = [
            (b"lease_until", Some(b"soon")),
            (b"lease_until", Some(b"1.5")),
            (b"lease_until", None),
            (b"lease_token", None),
        ];
        for (field, value) in cases {
            let mut h = raw(&m);
            match value {
                Some(v) => h.insert(field.to_vec(), v.to_vec()),
                None => h.remove(field),
            };
            let err = decode("a", &h).expect_err("corrupt lease");
            assert_eq!(err.kind(), ordermeta_core::ErrorKind::InvalidMetadata);
            assert!(err.to_string().contains("order a"), "{err}");
        }
        // Only a cancelling order holds a lease.
        let mut h = raw(&m);
        h.insert(b"status".to_vec(), b"active".to_vec());
        let err = decode("a", &h).expect_err("lease on an active order");
        assert!(err.to_string().contains("lease"), "{err}");
        // No lease: no fields.
        assert!(!raw(&sample()).contains_key(b"lease_until".as_slice()));
    }

    #[test]
    fn corrupt_fields_are_invalid_metadata() {
        let m = sample();
        let cases: [(&str, Option<&[u8]>); 17] = [
            ("label", Some(b"")),
            ("label", Some(b"a\nb")),
            ("label", Some(b"\xff")),
            ("indexer_id", Some(b"has space")),
            ("filled_quantity", Some(b"-1")),
            ("cancel_confirmed_at", Some(b"soon")),
            ("version", Some(b"-1")),
            ("version", Some(b"0")),
            ("version", Some(b"9223372036854775808")),
            ("client_id", Some(b"2")),
            ("subaccount_number", Some(b"4294967296")),
            ("status", Some(b"ACTIVE")),
            ("history", Some(b"[{")),
            ("placed_at", Some(b"+1")),
            ("symbol", Some(b"\xff")),
            ("good_til_block_time", Some(b"5")),
            ("dydx_order_id", None),
        ];
        for (field, value) in cases {
            let mut h = raw(&m);
            match value {
                Some(v) => h.insert(field.as_bytes().to_vec(), v.to_vec()),
                None => h.remove(field.as_bytes()),
            };
            let err = decode("a", &h).expect_err(field);
            assert_eq!(
                err.kind(),
                ordermeta_core::ErrorKind::InvalidMetadata,
                "{field}"
            );
            assert!(err.to_string().contains("order a"), "{err}");
        }
        assert!(decode("b", &raw(&m)).is_err(), "id must match the key");
    }
}
