//! Property tests of the HASH decoder over outside bytes: whatever a HASH holds (any field
//! names, any values, UTF-8 or not), decoding returns a record or `InvalidMetadata` naming the
//! order, and never panics; what it accepts is a valid record that round-trips. Records carry
//! every field of [`STORED_FIELDS`](ordermeta_core::backend::STORED_FIELDS), the label,
//! indexer id, filled quantity and cancel confirmation included; the lookup-key derivation of
//! `purge` is total over the same bytes.
//!
//! Cases per property: 256, or `ORDERMETA_FUZZ_CASES` (`scripts/soak.sh` runs 1,000,000).

use chrono::{DateTime, Utc};
use ordermeta_core::{
    ErrorKind, GoodTil, Lease, ListQuery, NewOrder, OrderId, OrderMetadata, OrderStatus, OrderType,
    Side, from_micros,
};
use proptest::prelude::*;

use crate::codec::{self, FIELDS, MAX_VERSION, RawHash};
use crate::keys::KeyLayout;
use crate::ops::purge::LookupFields;

/// Cases per property: `ORDERMETA_FUZZ_CASES`, else 256.
fn cases() -> u32 {
    std::env::var("ORDERMETA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // A soak runs far more cases than a regression file is worth keeping.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Values that sit on the edges of what the decoder parses.
const EDGES: &[&[u8]] = &[
    b"",
    b"0",
    b"-0",
    b"+1",
    b"1",
    b" 1",
    b"1 ",
    b"01",
    b"nan",
    b"NaN",
    b"inf",
    b"-inf",
    b"1e3",
    b"0x10",
    b"1.5",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"8210298412799999999",
    b"8210298412800000000",
    b"-8334632851200000000",
    b"-8334632851200000001",
    b"99999999999999999999999999999",
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"[]",
    b"[{",
    b"{}",
    b"null",
    b"[null]",
    br#"[{"status":"active","at":0}]"#,
    br#"[{"status":"active","at":"x"}]"#,
    b"CAEQAhgDIAQ=",
    b"!!!",
    b"====",
    b"buy",
    b"sell",
    b"limit",
    b"active",
    b"cancelling",
    b"cancelled",
    b"a",
    // Edges of the fields learnt after placement: labels, indexer ids, filled quantities.
    b"0.0",
    b"-0.1",
    b".5",
    b"5.",
    b"a\nb",
    b"a b",
    b"\xc3\xbc\xf0\x9f\x9a\x80",
    b"5f2ba7a4-7dc6-5f6e-8d8a-2a5e3f5d1c42",
];

fn arb_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::sample::select(EDGES).prop_map(<[u8]>::to_vec),
        proptest::collection::vec(any::<u8>(), 0..48),
        "[0-9]{0,30}".prop_map(String::into_bytes),
        "-?[0-9]{1,22}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
    ]
}

fn arb_field() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::sample::select(FIELDS.to_vec()).prop_map(|f| f.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

fn arb_time() -> impl Strategy<Value = DateTime<Utc>> {
    // From before the epoch to the far future: microseconds past 2^53 included.
    (-62_135_596_800_000_000i64..253_402_300_799_000_000i64)
        .prop_map(|us| from_micros(us).unwrap_or_default())
}

fn arb_status() -> impl Strategy<Value = OrderStatus> {
    proptest::sample::select(OrderStatus::ALL.to_vec())
}

/// A valid record, of any shape the model allows.
fn arb_meta() -> impl Strategy<Value = OrderMetadata> {
    let ids = (
        "[^\\p{Cc}]{1,40}",
        "[^\\p{Cc}]{1,50}",
        any::<u32>(),
        any::<u32>(),
        proptest::sample::select(vec![0u32, 32, 64, 128, 256]),
        any::<u32>(),
        any::<u32>(),
    );
    let body = (
        "[^\\p{Cc}]{1,20}",
        proptest::sample::select(vec![Side::Buy, Side::Sell]),
        "-?[0-9]{1,12}(\\.[0-9]{1,8})?",
        proptest::option::of("[0-9]{1,12}(\\.[0-9]{1,8})?"),
        proptest::sample::select(vec![
            OrderType::Market,
            OrderType::Limit,
            OrderType::StopLimit,
            OrderType::StopMarket,
            OrderType::TakeProfitLimit,
            OrderType::TakeProfitMarket,
        ]),
    );
    let state = (
        arb_status(),
        arb_time(),
        arb_time(),
        1..=MAX_VERSION,
        proptest::option::of("[^\\p{Cc}]{0,70}"),
        proptest::option::of(("[^\\p{Cc}]{1,32}", arb_time())),
    );
    // Learnt after placement (issue 13): each may be absent.
    let learnt = (
        // At most 30 characters of at most 4 bytes: within the 128-byte limit.
        proptest::option::of("[^\\p{Cc}]{1,30}"),
        proptest::option::of("[!-~]{1,64}"),
        proptest::option::of("[0-9]{1,12}(\\.[0-9]{1,18})?"),
        proptest::option::of(arb_time()),
    );
    (ids, body, state, learnt).prop_map(
        |(
            (order_id, owner, sub, client, flags, clob, good_til),
            (symbol, side, quantity, price, order_type),
            (status, placed, updated, version, tx_hash, lease),
            (label, indexer_id, filled_quantity, cancel_confirmed_at),
        )| {
            let order = NewOrder {
                order_id,
                dydx_order_id: OrderId {
                    owner,
                    subaccount_number: sub,
                    client_id: client,
                    order_flags: flags,
                    clob_pair_id: clob,
                },
                good_til: if flags == 0 {
                    GoodTil::Block(good_til)
                } else {
                    GoodTil::BlockTime(good_til)
                },
                symbol,
                side,
                quantity,
                price,
                order_type,
            };
            let mut m = OrderMetadata::new(order, status, placed);
            m.updated_at = updated;
            m.version = version;
            m.tx_hash = tx_hash;
            if status == OrderStatus::Cancelling {
                m.lease = lease.map(|(token, until)| Lease::new(token, until));
            }
            if status == OrderStatus::Cancelled {
                m.cancelled_at = Some(updated);
            }
            m.label = label;
            m.indexer_id = indexer_id;
            m.filled_quantity = filled_quantity;
            m.cancel_confirmed_at = cancel_confirmed_at;
            m
        },
    )
}

fn raw(m: &OrderMetadata) -> RawHash {
    codec::encode(m)
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.into_bytes()))
        .collect()
}

/// One change to a stored HASH: a field deleted (`None`) or set to some bytes.
fn arb_mutation() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
    (arb_field(), proptest::option::weighted(0.85, arb_value()))
}

/// What every decode must satisfy, whatever it was given.
fn check(order_id: &str, h: &RawHash) -> Result<(), TestCaseError> {
    match codec::decode(order_id, h) {
        Ok(m) => {
            prop_assert_eq!(&m.order_id, order_id);
            prop_assert!(m.version >= 1 && m.version <= MAX_VERSION);
            prop_assert!(m.validate().is_ok(), "decoded an invalid record: {:?}", m);
            // What was accepted is stored back unchanged and read back the same.
            prop_assert_eq!(codec::decode(order_id, &raw(&m)).ok(), Some(m.clone()));
            // What a compare-and-set over it writes turns it into the encoding of the record.
            let snap = crate::known::Snapshot::read(order_id, h)
                .map_err(|e| TestCaseError::fail(format!("decoded, then no snapshot: {e}")))?;
            let (set, delete) = snap.changes(&m);
            prop_assert!(
                set.iter().all(|(f, _)| FIELDS.contains(f))
                    && delete.iter().all(|f| FIELDS.contains(f))
            );
            let after = snap.after(m.clone(), "t", &set, &delete);
            prop_assert_eq!(
                after.fields,
                crate::known::Snapshot::recorded(&m, "t").fields
            );
        }
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidMetadata, "{}", e);
            let named = format!("order {order_id}");
            prop_assert!(e.to_string().contains(&named), "{}", e);
        }
    }
    // The raw filter of `list` is total too.
    let q = ListQuery {
        statuses: vec![OrderStatus::Active],
        owner: Some("x".into()),
        subaccount_number: Some(0),
        symbol: Some("BTC-USD".into()),
        ..ListQuery::default()
    };
    let _ = codec::raw_matches(&q, h);
    let _ = codec::raw_matches(&ListQuery::default(), h);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any HASH at all, under any order id.
    #[test]
    fn decoding_any_hash_is_total(
        order_id in any::<String>(),
        h in proptest::collection::hash_map(arb_field(), arb_value(), 0..32),
    ) {
        check(&order_id, &h)?;
    }

    /// A valid record round-trips; the same record with a few fields deleted or overwritten
    /// with anything decodes or is `InvalidMetadata` naming it.
    #[test]
    fn decoding_a_damaged_record_is_total(
        m in arb_meta(),
        damage in proptest::collection::vec(arb_mutation(), 0..5),
    ) {
        let mut h = raw(&m);
        prop_assert_eq!(codec::decode(&m.order_id, &h).ok(), Some(m.clone()));
        // `purge` finds, from the stored bytes, exactly the lookup keys `record` wrote.
        let layout = KeyLayout::new("fuzz").expect("namespace");
        let derived = LookupFields::from_hash(&h).keys(&layout);
        let written: Vec<Vec<u8>> =
            layout.lookups_of(&m).into_iter().map(String::into_bytes).collect();
        prop_assert_eq!(derived, written);
        for (field, value) in damage {
            match value {
                Some(v) => h.insert(field, v),
                None => h.remove(&field),
            };
        }
        check(&m.order_id, &h)?;
        // And derives some keys (or none) from whatever is left, without failing.
        let fields = LookupFields::from_hash(&h);
        prop_assert!(fields.keys(&layout).len() <= 2);
        prop_assert!(!fields.fingerprint().is_empty());
    }

    /// Script replies of any shape become a value or an error, never a panic.
    #[test]
    fn reading_script_replies_is_total(
        tag in arb_value(),
        rest in proptest::collection::vec(
            prop_oneof![
                arb_value().prop_map(redis::Value::BulkString),
                any::<i64>().prop_map(redis::Value::Int),
                Just(redis::Value::Nil),
                Just(redis::Value::Okay),
            ],
            0..6,
        ),
    ) {
        let mut reply = vec![redis::Value::BulkString(tag)];
        reply.extend(rest);
        if let Ok((_, rest)) = crate::ops::tagged(reply) {
            let mut it = rest.clone().into_iter();
            let _ = crate::ops::int(it.next());
            let _ = crate::ops::report_skipped("fuzz", it);
            let _ = crate::ops::index_reply(rest);
        }
    }
}
