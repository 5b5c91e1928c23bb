//! One order as a Redis HASH: the shared SQL schema's column names, integers as decimal text,
//! timestamps as integer microseconds, the history as a JSON array.

use std::collections::HashMap;

use ordermeta_core::model::{history_from_json, history_to_json};
use ordermeta_core::{
    GoodTil, ListQuery, OrderId, OrderMetadata, StoreError, from_micros, to_micros,
};

/// A HASH as read from Redis: field name to raw value.
pub(crate) type RawHash = HashMap<Vec<u8>, Vec<u8>>;

/// The field holding the token of the last write (not part of the model).
pub(crate) const OP_FIELD: &str = "op";

/// The HASH fields of `m`, in a fixed order. Absent optional values are absent fields.
pub(crate) fn encode(m: &OrderMetadata) -> Vec<(&'static str, String)> {
    let mut f = Vec::with_capacity(22);
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
    f
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
    };
    // The version is an i64 in every other store; keep the same range here.
    if i64::try_from(meta.version).is_err() {
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

/// Collects a flat `field, value, …` array (HGETALL's RESP2 shape, as scripts return it).
pub(crate) fn hash_from_flat(values: Vec<redis::Value>) -> Result<RawHash, StoreError> {
    let mut h = RawHash::with_capacity(values.len() / 2);
    let mut it = values.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        h.insert(bytes(k)?, bytes(v)?);
    }
    Ok(h)
}

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
    fn round_trips() {
        let mut m = sample();
        m.tx_hash = Some(String::new());
        assert_eq!(decode("a", &raw(&m)).expect("decode"), m);
    }

    #[test]
    fn corrupt_fields_are_invalid_metadata() {
        let m = sample();
        let cases: [(&str, Option<&[u8]>); 11] = [
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
