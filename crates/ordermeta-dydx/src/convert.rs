//! Every conversion between the chain's protobuf types and core's types, in one place, so the
//! client, the gateway and the tests cannot disagree on how an order is identified.

use dydx_proto::dydxprotocol::clob::{self as proto, msg_cancel_order, order};
use dydx_proto::dydxprotocol::subaccounts::SubaccountId;
use ordermeta_core::{GoodTil, OrderId};

/// Our printable order id: `owner/subaccount/clob_pair/flags/client_id@b<GTB>` for short-term
/// and `…@t<GTBT>` for stateful orders.
///
/// Stable (derived only from what the chain identifies the order by, plus its good-til),
/// unique per placement (re-using a client id needs a new good-til), and readable in logs.
pub fn order_key(id: &OrderId, good_til: GoodTil) -> String {
    match good_til {
        GoodTil::Block(b) => format!("{id}@b{b}"),
        GoodTil::BlockTime(t) => format!("{id}@t{t}"),
    }
}

/// What [`order_key`] produces and [`parse_order_key`] reads, for error messages and docs.
pub const ORDER_KEY_FORMAT: &str = "owner/subaccount/clob_pair/flags/client_id@b<good-til block> \
(short-term, flags 0) or owner/subaccount/clob_pair/flags/client_id@t<good-til block time> \
(stateful), as place_order returns it";

/// A string that is not an ordermeta order id (see [`ORDER_KEY_FORMAT`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an ordermeta order id: {reason}; expected {ORDER_KEY_FORMAT}")]
pub struct InvalidOrderKey {
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Reads back what [`order_key`] printed: the chain's [`OrderId`] and the good-til.
///
/// Total: any input gives either the id or an [`InvalidOrderKey`], never a panic. Strict, so
/// that one order has exactly one printable id: numbers are canonical decimal `u32`s (no
/// sign, no leading zeros), the owner is ASCII letters and digits (a bech32 address), at
/// most [`MAX_ORDER_ID_LEN`](ordermeta_core::MAX_ORDER_ID_LEN) bytes in all, and the
/// good-til's kind matches the flags (`@b` for short-term orders, flags 0; `@t` for
/// stateful ones). `parse_order_key(&order_key(&id, gt)) == Ok((id, gt))` for every id whose
/// owner is such an address.
pub fn parse_order_key(key: &str) -> Result<(OrderId, GoodTil), InvalidOrderKey> {
    let bad = |reason| Err(InvalidOrderKey { reason });
    if key.is_empty() {
        return bad("it is empty");
    }
    if key.len() > ordermeta_core::MAX_ORDER_ID_LEN {
        return bad("it is longer than any order id");
    }
    let Some((id, good_til)) = key.split_once('@') else {
        return bad("it has no @b<block> or @t<time> good-til");
    };
    let good_til = match (good_til.get(..1), good_til.get(1..)) {
        (Some("b"), Some(n)) => GoodTil::Block(match canonical_u32(n) {
            Some(n) => n,
            None => return bad("the good-til block is not a canonical u32"),
        }),
        (Some("t"), Some(n)) => GoodTil::BlockTime(match canonical_u32(n) {
            Some(n) => n,
            None => return bad("the good-til block time is not a canonical u32"),
        }),
        _ => return bad("the good-til does not start with b (block) or t (block time)"),
    };
    let mut parts = id.split('/');
    let (Some(owner), Some(sub), Some(clob), Some(flags), Some(client), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return bad("it does not have the five /-separated parts of an order id");
    };
    if owner.is_empty() || !owner.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return bad("the owner is not an address (ASCII letters and digits)");
    }
    let numbers = (
        canonical_u32(sub),
        canonical_u32(clob),
        canonical_u32(flags),
        canonical_u32(client),
    );
    let (Some(subaccount_number), Some(clob_pair_id), Some(order_flags), Some(client_id)) = numbers
    else {
        return bad("subaccount, clob pair, flags and client id must be canonical u32s");
    };
    let id = OrderId {
        owner: owner.to_owned(),
        subaccount_number,
        client_id,
        order_flags,
        clob_pair_id,
    };
    match (id.is_short_term(), good_til) {
        (true, GoodTil::Block(_)) | (false, GoodTil::BlockTime(_)) => Ok((id, good_til)),
        (true, GoodTil::BlockTime(_)) => bad("a short-term order (flags 0) has a good-til block"),
        (false, GoodTil::Block(_)) => bad("a stateful order has a good-til block time"),
    }
}

/// `text` as a `u32` written the way `Display` writes it: digits only, no leading zero
/// (except `0` itself), in range.
fn canonical_u32(text: &str) -> Option<u32> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

/// The protobuf `OrderId` for a core [`OrderId`].
pub fn to_proto_order_id(id: &OrderId) -> proto::OrderId {
    proto::OrderId {
        subaccount_id: Some(subaccount_id(&id.owner, id.subaccount_number)),
        client_id: id.client_id,
        order_flags: id.order_flags,
        clob_pair_id: id.clob_pair_id,
    }
}

/// The core [`OrderId`] of a protobuf `OrderId`; `None` without a subaccount.
pub fn from_proto_order_id(id: &proto::OrderId) -> Option<OrderId> {
    let sub = id.subaccount_id.as_ref()?;
    Some(OrderId {
        owner: sub.owner.clone(),
        subaccount_number: sub.number,
        client_id: id.client_id,
        order_flags: id.order_flags,
        clob_pair_id: id.clob_pair_id,
    })
}

/// The protobuf subaccount of `owner`.
pub(crate) fn subaccount_id(owner: &str, number: u32) -> SubaccountId {
    SubaccountId {
        owner: owner.to_owned(),
        number,
    }
}

/// The good-til of a placement (`Order.good_til_oneof`). Only tests build orders here; real
/// ones come from `dydx::node::OrderBuilder`.
#[cfg(test)]
pub(crate) fn order_good_til(good_til: GoodTil) -> order::GoodTilOneof {
    match good_til {
        GoodTil::Block(b) => order::GoodTilOneof::GoodTilBlock(b),
        GoodTil::BlockTime(t) => order::GoodTilOneof::GoodTilBlockTime(t),
    }
}

/// The good-til of a cancel (`MsgCancelOrder.good_til_oneof`).
pub(crate) fn cancel_good_til(good_til: GoodTil) -> msg_cancel_order::GoodTilOneof {
    match good_til {
        GoodTil::Block(b) => msg_cancel_order::GoodTilOneof::GoodTilBlock(b),
        GoodTil::BlockTime(t) => msg_cancel_order::GoodTilOneof::GoodTilBlockTime(t),
    }
}

/// The chain identity and good-til of a built order, or why it has none (the placement's
/// `InvalidOrder` reason).
pub(crate) fn describe(order: &proto::Order) -> Result<(OrderId, GoodTil), &'static str> {
    let id = order
        .order_id
        .as_ref()
        .and_then(from_proto_order_id)
        .ok_or("order has no OrderId with a subaccount")?;
    let good_til = match order.good_til_oneof {
        Some(order::GoodTilOneof::GoodTilBlock(b)) => GoodTil::Block(b),
        Some(order::GoodTilOneof::GoodTilBlockTime(t)) => GoodTil::BlockTime(t),
        None => return Err("order has no good-til"),
    };
    Ok((id, good_til))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> OrderId {
        OrderId {
            owner: "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn".into(),
            subaccount_number: 2,
            client_id: 7,
            order_flags: ordermeta_core::ORDER_FLAGS_LONG_TERM,
            clob_pair_id: 1,
        }
    }

    #[test]
    fn order_id_round_trips() {
        let proto = to_proto_order_id(&id());
        assert_eq!(from_proto_order_id(&proto), Some(id()));
        let no_sub = proto::OrderId {
            subaccount_id: None,
            ..proto
        };
        assert_eq!(from_proto_order_id(&no_sub), None);
    }

    #[test]
    fn describe_reads_id_and_good_til() {
        for gt in [GoodTil::Block(120), GoodTil::BlockTime(1_800_000_000)] {
            let order = proto::Order {
                order_id: Some(to_proto_order_id(&id())),
                good_til_oneof: Some(order_good_til(gt)),
                ..proto::Order::default()
            };
            assert_eq!(describe(&order), Ok((id(), gt)));
        }
        let no_good_til = proto::Order {
            order_id: Some(to_proto_order_id(&id())),
            ..proto::Order::default()
        };
        assert_eq!(describe(&no_good_til), Err("order has no good-til"));
        assert!(describe(&proto::Order::default()).is_err());
    }

    #[test]
    fn cancel_good_til_keeps_the_kind() {
        assert_eq!(
            cancel_good_til(GoodTil::Block(5)),
            msg_cancel_order::GoodTilOneof::GoodTilBlock(5)
        );
        assert_eq!(
            cancel_good_til(GoodTil::BlockTime(9)),
            msg_cancel_order::GoodTilOneof::GoodTilBlockTime(9)
        );
        assert_eq!(order_key(&id(), GoodTil::Block(5)), format!("{}@b5", id()));
        assert_eq!(
            order_key(&id(), GoodTil::BlockTime(9)),
            format!("{}@t9", id())
        );
    }

    #[test]
    fn parse_order_key_refuses_what_is_not_an_id() {
        let ok = format!("{}@b5", id_short());
        assert_eq!(parse_order_key(&ok), Ok((id_short(), GoodTil::Block(5))));
        for bad in [
            "",
            "no-such-order",
            "bot-1/0/0/0/42",
            "dydx1abc/0/1/0/7",
            "dydx1abc/0/1/0/7@",
            "dydx1abc/0/1/0/7@x5",
            "dydx1abc/0/1/0/7@b",
            "dydx1abc/0/1/0/7@b-5",
            "dydx1abc/0/1/0/7@b05",
            "dydx1abc/0/1/0/7@b4294967296",
            "dydx1abc/0/1/0/7@t5",
            "dydx1abc/0/1/64/7@b5",
            "dydx1abc/0/1/0/7/8@b5",
            "dydx1abc/0/1/0@b5",
            "/0/1/0/7@b5",
            "dydx 1/0/1/0/7@b5",
            "dydx1abc/+0/1/0/7@b5",
            "dydx1abc/0/1/0/7@b5@b6",
        ] {
            let err = parse_order_key(bad).expect_err(bad);
            assert!(err.to_string().contains("owner/subaccount"), "{err}");
        }
        assert!(parse_order_key(&"a".repeat(300)).is_err());
    }

    fn id_short() -> OrderId {
        OrderId {
            order_flags: 0,
            ..id()
        }
    }

    /// Cases per property: 256, or `ORDERMETA_FUZZ_CASES` (`scripts/soak.sh` runs 1,000,000).
    fn fuzz_config() -> proptest::test_runner::Config {
        proptest::test_runner::Config {
            cases: std::env::var("ORDERMETA_FUZZ_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(256),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        }
    }

    proptest::proptest! {
        #![proptest_config(fuzz_config())]

        #[test]
        fn order_key_round_trips(
            owner in "dydx1[a-z0-9]{38}|[A-Za-z0-9]{1,60}",
            sub: u32, clob: u32, client: u32,
            flags in proptest::prop_oneof![
                proptest::strategy::Just(0u32),
                proptest::strategy::Just(32u32),
                proptest::strategy::Just(64u32),
                proptest::strategy::Just(128u32),
                1u32..,
            ],
            n: u32,
        ) {
            let id = OrderId {
                owner,
                subaccount_number: sub,
                client_id: client,
                order_flags: flags,
                clob_pair_id: clob,
            };
            let gt = if id.is_short_term() { GoodTil::Block(n) } else { GoodTil::BlockTime(n) };
            proptest::prop_assert_eq!(parse_order_key(&order_key(&id, gt)), Ok((id, gt)));
        }

        #[test]
        fn garbage_never_panics(key in proptest::prelude::any::<String>()) {
            let _ = parse_order_key(&key);
        }

        #[test]
        fn near_misses_never_panic(key in "[a-z0-9/@bt+-]{0,80}") {
            if let Ok((id, gt)) = parse_order_key(&key) {
                // Whatever parses prints back to itself: one order, one id.
                proptest::prop_assert_eq!(order_key(&id, gt), key);
            }
        }
    }
}
