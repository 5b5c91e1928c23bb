//! The chain's stateless rules of an order (`MsgPlaceOrder.ValidateBasic`), checked by the
//! client before it records anything: an order the node would refuse on these grounds is
//! refused with the chain's own codespace and code
//! ([`PlaceError::Invalid`](crate::PlaceError::Invalid)), so no `pending` or `active` record
//! exists for it.
//!
//! The rules and their order follow dydxprotocol/v4-chain `protocol/x/clob/types/
//! message_place_order.go` (`MsgPlaceOrder.ValidateBasic`), with `SubaccountId.Validate`
//! (`protocol/x/subaccounts/types/subaccount.go`) and the order flags of
//! `protocol/x/clob/types/order_id.go`. The first failing rule decides the code, as on chain:
//!
//! | Rule | Code |
//! |---|---|
//! | fill-or-kill is deprecated (checked first) | clob/48 |
//! | subaccount owner a `dydx1…` address; number <= 128 000 | subaccounts/201, 200 |
//! | side, time in force, condition type inside their enums; side set | clob/3, 44, 6000, 3 |
//! | quantums > 0 | clob/4 |
//! | order router address, if set, valid | clob/11000 |
//! | short-term: GTB > 0; stateful: GTBT > 0; flags 0/32/64/128/256 only | clob/5, 3001, 3000 |
//! | long-term cannot be IOC | clob/3002 |
//! | reduce-only only on IOC | clob/9003 |
//! | subticks > 0 (except TWAP) | clob/6 |
//! | conditional: condition type and trigger set; others: neither | clob/6000, 6001 |
//! | builder code: valid address, fee ppm in (0, 10 000] | clob/50 |
//! | TWAP: parameters present, interval 30–3600 s, duration 300–86 400 s and a multiple of it, price tolerance < 1 000 000 ppm | clob/12 |

use dydx_proto::dydxprotocol::clob::{Order, OrderId, order};
use ordermeta_core::{
    ORDER_FLAGS_CONDITIONAL, ORDER_FLAGS_LONG_TERM, ORDER_FLAGS_SHORT_TERM, ORDER_FLAGS_TWAP,
    ORDER_FLAGS_TWAP_SUBORDER,
};

use crate::gateway::{ChainError, codes};

/// `MaxSubaccountIdNumber`.
const MAX_SUBACCOUNT_NUMBER: u32 = 128_000;
/// `MaxBuilderCodeFeePpm`.
const MAX_BUILDER_FEE_PPM: u32 = 10_000;

/// Checks `order` against the chain's stateless rules; the error is the chain's answer.
pub(crate) fn validate_place(order: &Order) -> Result<(), ChainError> {
    use codes::*;
    let tif = order::TimeInForce::try_from(order.time_in_force);
    if tif == Ok(order::TimeInForce::FillOrKill) {
        return Err(clob(DEPRECATED_FIELD, "fill-or-kill has been deprecated"));
    }
    let default_id = OrderId::default();
    let id = order.order_id.as_ref().unwrap_or(&default_id);
    let (owner, number) = id
        .subaccount_id
        .as_ref()
        .map_or(("", 0), |s| (s.owner.as_str(), s.number));
    if !is_dydx_address(owner) {
        return Err(ChainError {
            codespace: CODESPACE_SUBACCOUNTS.to_owned(),
            code: INVALID_SUBACCOUNT_ID_OWNER,
            log: format!("invalid subaccount owner address ({owner})"),
        });
    }
    if number > MAX_SUBACCOUNT_NUMBER {
        return Err(ChainError {
            codespace: CODESPACE_SUBACCOUNTS.to_owned(),
            code: INVALID_SUBACCOUNT_ID_NUMBER,
            log: format!("subaccount number {number} above {MAX_SUBACCOUNT_NUMBER}"),
        });
    }
    if order::Side::try_from(order.side).is_err() {
        return Err(clob(INVALID_ORDER_SIDE, "invalid order side"));
    }
    if tif.is_err() {
        return Err(clob(INVALID_TIME_IN_FORCE, "invalid time in force"));
    }
    if order::ConditionType::try_from(order.condition_type).is_err() {
        return Err(clob(INVALID_CONDITION_TYPE, "invalid condition type"));
    }
    if order.side == order::Side::Unspecified as i32 {
        return Err(clob(
            INVALID_ORDER_SIDE,
            "UNSPECIFIED is not a valid order side",
        ));
    }
    if order.quantums == 0 {
        return Err(clob(
            INVALID_ORDER_QUANTUMS,
            "order size quantums cannot be 0",
        ));
    }
    if !order.order_router_address.is_empty() && !is_dydx_address(&order.order_router_address) {
        return Err(clob(
            INVALID_ORDER_ROUTER_ADDRESS,
            "invalid order router address",
        ));
    }
    let flags = id.order_flags;
    match (flags, order.good_til_oneof) {
        (ORDER_FLAGS_SHORT_TERM, Some(order::GoodTilOneof::GoodTilBlock(b))) if b > 0 => {}
        (ORDER_FLAGS_SHORT_TERM, _) => {
            return Err(clob(
                INVALID_ORDER_GOOD_TIL_BLOCK,
                "order goodTilBlock cannot be 0",
            ));
        }
        (f, Some(order::GoodTilOneof::GoodTilBlockTime(t))) if is_stateful(f) && t > 0 => {}
        (f, _) if is_stateful(f) => {
            return Err(clob(
                INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME,
                "stateful order goodTilBlockTime cannot be 0",
            ));
        }
        (f, _) => return Err(clob(INVALID_ORDER_FLAG, format!("invalid order flag {f}"))),
    }
    let immediate = matches!(
        tif,
        Ok(order::TimeInForce::Ioc | order::TimeInForce::FillOrKill)
    );
    if flags == ORDER_FLAGS_LONG_TERM && immediate {
        return Err(clob(
            LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION,
            "long-term orders cannot be IOC",
        ));
    }
    if order.reduce_only && !immediate {
        return Err(clob(
            REDUCE_ONLY_DISABLED,
            "reduce only orders must be short term IOC orders",
        ));
    }
    if order.subticks == 0 && flags != ORDER_FLAGS_TWAP {
        return Err(clob(
            INVALID_ORDER_SUBTICKS,
            "order subticks cannot be 0 for this order type",
        ));
    }
    let has_condition = order.condition_type != order::ConditionType::Unspecified as i32;
    let has_trigger = order.conditional_order_trigger_subticks != 0;
    if flags == ORDER_FLAGS_CONDITIONAL {
        if !has_condition {
            return Err(clob(
                INVALID_CONDITION_TYPE,
                "condition type cannot be unspecified",
            ));
        }
        if !has_trigger {
            return Err(clob(
                INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS,
                "conditional order trigger subticks cannot be 0",
            ));
        }
    } else {
        if has_condition {
            return Err(clob(
                INVALID_CONDITION_TYPE,
                "condition type specified for non-conditional order",
            ));
        }
        if has_trigger {
            return Err(clob(
                INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS,
                "conditional order trigger subticks greater than 0 for non-conditional order",
            ));
        }
    }
    if let Some(builder) = &order.builder_code_parameters
        && (!is_dydx_address(&builder.builder_address)
            || builder.fee_ppm == 0
            || builder.fee_ppm > MAX_BUILDER_FEE_PPM)
    {
        return Err(clob(
            INVALID_BUILDER_CODE,
            "builder code needs a valid address and a fee ppm in (0, 10000]",
        ));
    }
    if flags == ORDER_FLAGS_TWAP {
        let valid = order.twap_parameters.as_ref().is_some_and(|t| {
            (30..=3_600).contains(&t.interval)
                && (300..=86_400).contains(&t.duration)
                && t.duration % t.interval == 0
                && t.price_tolerance < 1_000_000
        });
        if !valid {
            return Err(clob(
                INVALID_PLACE_ORDER,
                "TWAP order parameters missing or out of range",
            ));
        }
    }
    Ok(())
}

fn clob(code: u32, log: impl Into<String>) -> ChainError {
    ChainError {
        codespace: codes::CODESPACE_CLOB.to_owned(),
        code,
        log: log.into(),
    }
}

/// Conditional, long-term, TWAP or TWAP suborder (`OrderId.IsStatefulOrder`).
fn is_stateful(flags: u32) -> bool {
    matches!(
        flags,
        ORDER_FLAGS_CONDITIONAL
            | ORDER_FLAGS_LONG_TERM
            | ORDER_FLAGS_TWAP
            | ORDER_FLAGS_TWAP_SUBORDER
    )
}

/// Whether `address` is a valid bech32 `dydx` account address (`sdk.AccAddressFromBech32`).
fn is_dydx_address(address: &str) -> bool {
    address.starts_with("dydx1") && address.parse::<dydx::node::Address>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dydx_proto::dydxprotocol::clob::{BuilderCodeParameters, TwapParameters};
    use dydx_proto::dydxprotocol::subaccounts::SubaccountId;

    const OWNER: &str = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn20l73w";

    fn order(flags: u32) -> Order {
        Order {
            order_id: Some(OrderId {
                subaccount_id: Some(SubaccountId {
                    owner: OWNER.into(),
                    number: 0,
                }),
                client_id: 1,
                order_flags: flags,
                clob_pair_id: 0,
            }),
            side: order::Side::Buy as i32,
            quantums: 1_000_000,
            subticks: 100_000,
            good_til_oneof: Some(if is_stateful(flags) {
                order::GoodTilOneof::GoodTilBlockTime(1_000)
            } else {
                order::GoodTilOneof::GoodTilBlock(10)
            }),
            ..Order::default()
        }
    }

    fn code(order: &Order) -> (String, u32) {
        match validate_place(order) {
            Ok(()) => (String::new(), 0),
            Err(e) => (e.codespace, e.code),
        }
    }

    fn with(flags: u32, edit: impl Fn(&mut Order)) -> Order {
        let mut o = order(flags);
        edit(&mut o);
        o
    }

    /// Every rule, including those a builder cannot produce; the end-to-end table against
    /// the simulator covers the ones it can.
    #[test]
    fn every_rule_answers_the_chains_code() {
        let clob = |c: u32| ("clob".to_owned(), c);
        let ok = (String::new(), 0);
        assert_eq!(code(&order(ORDER_FLAGS_SHORT_TERM)), ok);
        assert_eq!(code(&order(ORDER_FLAGS_LONG_TERM)), ok);
        let fok = order::TimeInForce::FillOrKill as i32;
        let cases: Vec<(Order, (String, u32))> = vec![
            (with(0, |o| o.time_in_force = fok), clob(48)),
            (
                with(7, |o| {
                    o.time_in_force = fok;
                    o.quantums = 0;
                }),
                clob(48),
            ),
            (
                with(0, |o| {
                    o.order_id.as_mut().expect("id").subaccount_id = Some(SubaccountId {
                        owner: "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn".into(), // bad checksum
                        number: 0,
                    })
                }),
                ("subaccounts".to_owned(), 201),
            ),
            (
                with(0, |o| o.order_id = None),
                ("subaccounts".to_owned(), 201),
            ),
            (
                with(0, |o| {
                    o.order_id.as_mut().expect("id").subaccount_id = Some(SubaccountId {
                        owner: OWNER.into(),
                        number: 128_001,
                    })
                }),
                ("subaccounts".to_owned(), 200),
            ),
            (with(0, |o| o.side = 7), clob(3)),
            (with(0, |o| o.time_in_force = 9), clob(44)),
            (with(0, |o| o.condition_type = 9), clob(6000)),
            (with(0, |o| o.side = 0), clob(3)),
            (with(0, |o| o.quantums = 0), clob(4)),
            (
                with(0, |o| o.order_router_address = "nope".into()),
                clob(11000),
            ),
            (with(0, |o| o.good_til_oneof = None), clob(5)),
            (
                with(0, |o| {
                    o.good_til_oneof = Some(order::GoodTilOneof::GoodTilBlockTime(5))
                }),
                clob(5),
            ),
            (
                with(ORDER_FLAGS_LONG_TERM, |o| {
                    o.good_til_oneof = Some(order::GoodTilOneof::GoodTilBlockTime(0))
                }),
                clob(3001),
            ),
            (with(7, |_| {}), clob(3000)),
            (
                with(ORDER_FLAGS_LONG_TERM, |o| {
                    o.time_in_force = order::TimeInForce::Ioc as i32
                }),
                clob(3002),
            ),
            (with(0, |o| o.reduce_only = true), clob(9003)),
            (with(0, |o| o.subticks = 0), clob(6)),
            (with(ORDER_FLAGS_CONDITIONAL, |_| {}), clob(6000)),
            (
                with(ORDER_FLAGS_CONDITIONAL, |o| {
                    o.condition_type = order::ConditionType::StopLoss as i32
                }),
                clob(6001),
            ),
            (
                with(0, |o| {
                    o.condition_type = order::ConditionType::TakeProfit as i32
                }),
                clob(6000),
            ),
            (
                with(ORDER_FLAGS_LONG_TERM, |o| {
                    o.conditional_order_trigger_subticks = 5
                }),
                clob(6001),
            ),
            (
                with(0, |o| {
                    o.builder_code_parameters = Some(BuilderCodeParameters {
                        builder_address: OWNER.into(),
                        fee_ppm: 10_001,
                    })
                }),
                clob(50),
            ),
            (with(ORDER_FLAGS_TWAP, |o| o.subticks = 0), clob(12)),
        ];
        for (i, (o, expected)) in cases.iter().enumerate() {
            assert_eq!(&code(o), expected, "case {i}: {o:?}");
        }
        // What passes: reduce-only IOC, a stop-limit, a market TWAP with parameters.
        let passing = [
            with(0, |o| {
                o.reduce_only = true;
                o.time_in_force = order::TimeInForce::Ioc as i32;
            }),
            with(ORDER_FLAGS_CONDITIONAL, |o| {
                o.condition_type = order::ConditionType::StopLoss as i32;
                o.conditional_order_trigger_subticks = 90_000;
            }),
            with(ORDER_FLAGS_TWAP, |o| {
                o.subticks = 0;
                o.twap_parameters = Some(TwapParameters {
                    duration: 300,
                    interval: 30,
                    price_tolerance: 0,
                });
            }),
        ];
        for o in passing {
            assert_eq!(code(&o), ok, "{o:?}");
        }
    }
}
