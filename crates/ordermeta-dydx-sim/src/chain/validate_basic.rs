//! Stateless checks of each clob msg (`ValidateBasic`).
//!
//! On the chain, baseapp runs every msg's `ValidateBasic` before the ante handlers
//! (cosmos-sdk `baseapp/baseapp.go`, `validateBasicTxMsgs`), so these answers come before any
//! signature, sequence or state check; the `Simulate` RPC runs them too. The first failing rule
//! decides the code, so the checks run in the chain's order. Each rule cites its v4-chain file
//! (under `protocol/`):
//!
//! | Rule | Code | v4-chain file |
//! |---|---|---|
//! | place: fill-or-kill is deprecated (checked first) | clob/48 | `x/clob/types/message_place_order.go` |
//! | subaccount owner must be a `dydx1…` address | subaccounts/201 | `x/subaccounts/types/subaccount.go`, `SubaccountId.Validate` |
//! | subaccount number <= 128 000 | subaccounts/200 | same |
//! | place: side, time in force, condition type inside their enums; side set | clob/3, 44, 6000, 3 | `x/clob/types/message_place_order.go` |
//! | place: quantums > 0 | clob/4 | same |
//! | place: order router address, if set, valid | clob/11000 | same |
//! | place: short-term needs GTB > 0, stateful GTBT > 0; flags 0/32/64/128/256 only | clob/5, 3001, 3000 | same; flags in `x/clob/types/order_id.go` |
//! | place: long-term cannot be IOC | clob/3002 | same |
//! | place: reduce-only only on IOC | clob/9003 | same |
//! | place: subticks > 0 (except TWAP) | clob/6 | same |
//! | place: conditional needs a condition type and trigger subticks; others neither | clob/6000, 6001 | same |
//! | place: builder code address valid, fee ppm in (0, 10 000] | clob/50 | same |
//! | place: TWAP needs parameters: interval 30–3600 s, duration 300–86 400 s and a multiple of it, tolerance < 1 000 000 ppm | clob/12 | same |
//! | cancel: valid subaccount, known flags | subaccounts/201, 200; clob/3000 | `x/clob/types/message_cancel_order.go` → `x/clob/types/order_id.go`, `OrderId.Validate` |
//! | cancel: stateful needs GTBT > 0, short-term GTB > 0 | clob/3001, 5 | `x/clob/types/message_cancel_order.go` |
//! | batch: valid subaccount | subaccounts/201, 200 | `x/clob/types/message_batch_cancel.go` |
//! | batch: >= 1 batch; no duplicate clob pair; no empty batch; no duplicate client id; <= 100 ids | clob/45 | same |
//!
//! A batch with GTB 0 passes `ValidateBasic`: its GTB is checked statefully (clob/10).

use std::collections::HashSet;

use dydx_proto::dydxprotocol::clob::{
    MsgBatchCancel, MsgCancelOrder, Order, OrderId, msg_cancel_order, order,
};
use dydx_proto::dydxprotocol::subaccounts::SubaccountId;

use crate::config::MAX_BATCH_CANCEL_SIZE;
use crate::error::{ChainError, codes};
use crate::tx::{self, TxMsg};
use crate::types::order_flags;

/// `MaxSubaccountIdNumber` (`x/subaccounts/types/subaccount.go`).
const MAX_SUBACCOUNT_ID_NUMBER: u32 = 128_000;
/// `MaxBuilderCodeFeePpm` (`x/clob/types/message_place_order.go`).
const MAX_BUILDER_CODE_FEE_PPM: u32 = 10_000;
/// TWAP bounds (`x/clob/types/message_place_order.go`): interval and duration in seconds,
/// price tolerance in ppm.
const TWAP_INTERVAL_SECS: (u32, u32) = (30, 3_600);
const TWAP_DURATION_SECS: (u32, u32) = (300, 86_400);
const MAX_TWAP_PRICE_TOLERANCE_PPM: u32 = 1_000_000;

/// Stateless checks of one msg: `MsgPlaceOrder.ValidateBasic`, `MsgCancelOrder.ValidateBasic`
/// or `MsgBatchCancel.ValidateBasic`. Other msg types have no rules here.
pub(super) fn validate_basic(msg: &TxMsg) -> Result<(), ChainError> {
    match msg {
        // gogoproto fields are non-nullable on chain: a missing order decodes as the default
        // (empty owner), which fails the subaccount check like on chain.
        TxMsg::Place(place) => validate_place(place.order.as_ref().unwrap_or(&Order::default())),
        TxMsg::Cancel(cancel) => validate_cancel(cancel),
        TxMsg::Batch(batch) => validate_batch(batch),
        TxMsg::Other(_) => Ok(()),
    }
}

/// `x/subaccounts/types/subaccount.go`, `SubaccountId.Validate`: a bech32 `dydx1…` owner and
/// a number up to 128 000.
fn validate_subaccount(id: Option<&SubaccountId>) -> Result<(), ChainError> {
    let (owner, number) = id.map_or(("", 0), |s| (s.owner.as_str(), s.number));
    tx::validate_address(owner).map_err(|e| {
        ChainError::subaccounts(
            codes::subaccounts::INVALID_SUBACCOUNT_ID_OWNER,
            format!("invalid SubaccountId Owner address ({owner}). Error: ({e})"),
        )
    })?;
    if number > MAX_SUBACCOUNT_ID_NUMBER {
        return Err(ChainError::subaccounts(
            codes::subaccounts::INVALID_SUBACCOUNT_ID_NUMBER,
            "",
        ));
    }
    Ok(())
}

/// `Order.RequiresImmediateExecution` (`x/clob/types/order.go`): IOC or fill-or-kill.
fn requires_immediate_execution(order: &Order) -> bool {
    matches!(
        order::TimeInForce::try_from(order.time_in_force),
        Ok(order::TimeInForce::Ioc | order::TimeInForce::FillOrKill)
    )
}

/// `MsgPlaceOrder.ValidateBasic` (`x/clob/types/message_place_order.go`), rule by rule in the
/// chain's order.
fn validate_place(order: &Order) -> Result<(), ChainError> {
    use codes::clob;
    fn err(code: u32, detail: impl std::fmt::Display) -> ChainError {
        ChainError::clob(code, detail)
    }
    // Deprecated fields come first.
    if order.time_in_force == order::TimeInForce::FillOrKill as i32 {
        return Err(err(
            clob::DEPRECATED_FIELD,
            "Fill-or-kill has been deprecated",
        ));
    }
    let default_id = OrderId::default();
    let id = order.order_id.as_ref().unwrap_or(&default_id);
    validate_subaccount(id.subaccount_id.as_ref())?;

    // Enum values must be known.
    if order::Side::try_from(order.side).is_err() {
        return Err(err(
            clob::INVALID_ORDER_SIDE,
            format!("invalid order side ({})", order.side),
        ));
    }
    if order::TimeInForce::try_from(order.time_in_force).is_err() {
        return Err(err(
            clob::INVALID_TIME_IN_FORCE,
            format!("invalid time in force ({})", order.time_in_force),
        ));
    }
    if order::ConditionType::try_from(order.condition_type).is_err() {
        return Err(err(
            clob::INVALID_CONDITION_TYPE,
            format!("invalid condition type ({})", order.condition_type),
        ));
    }
    if order.side == order::Side::Unspecified as i32 {
        return Err(err(
            clob::INVALID_ORDER_SIDE,
            "UNSPECIFIED is not a valid order side",
        ));
    }
    if order.quantums == 0 {
        return Err(err(
            clob::INVALID_ORDER_QUANTUMS,
            "order size quantums cannot be 0",
        ));
    }
    if !order.order_router_address.is_empty()
        && let Err(e) = tx::validate_address(&order.order_router_address)
    {
        return Err(err(
            clob::INVALID_ORDER_ROUTER_ADDRESS,
            format!(
                "order router address '{}' must be a valid bech32 address, but got error '{e}'",
                order.order_router_address
            ),
        ));
    }

    // Good-til by kind; unknown flags (`x/clob/types/order_id.go`).
    let gtb = match order.good_til_oneof {
        Some(order::GoodTilOneof::GoodTilBlock(b)) => b,
        _ => 0,
    };
    let gtbt = match order.good_til_oneof {
        Some(order::GoodTilOneof::GoodTilBlockTime(t)) => t,
        _ => 0,
    };
    if id.order_flags == order_flags::SHORT_TERM {
        if gtb == 0 {
            return Err(err(
                clob::INVALID_ORDER_GOOD_TIL_BLOCK,
                "order goodTilBlock cannot be 0",
            ));
        }
    } else if order_flags::is_stateful(id.order_flags) {
        if gtbt == 0 {
            return Err(err(
                clob::INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME,
                "stateful order goodTilBlockTime cannot be 0",
            ));
        }
    } else {
        return Err(err(
            clob::INVALID_ORDER_FLAG,
            format!("invalid order flag {}", id.order_flags),
        ));
    }

    if id.order_flags == order_flags::LONG_TERM && requires_immediate_execution(order) {
        return Err(err(
            clob::LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION,
            "",
        ));
    }
    if order.reduce_only && !requires_immediate_execution(order) {
        return Err(err(
            clob::REDUCE_ONLY_DISABLED,
            "reduce only orders must be short term IOC orders",
        ));
    }
    // A TWAP with subticks 0 is a market TWAP.
    if order.subticks == 0 && id.order_flags != order_flags::TWAP {
        return Err(err(
            clob::INVALID_ORDER_SUBTICKS,
            "order subticks cannot be 0 for this order type",
        ));
    }

    let unspecified = order::ConditionType::Unspecified as i32;
    if id.order_flags == order_flags::CONDITIONAL {
        if order.condition_type == unspecified {
            return Err(err(
                clob::INVALID_CONDITION_TYPE,
                "condition type cannot be unspecified",
            ));
        }
        if order.conditional_order_trigger_subticks == 0 {
            return Err(err(
                clob::INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS,
                "conditional order trigger subticks cannot be 0",
            ));
        }
    } else {
        if order.condition_type != unspecified {
            return Err(err(
                clob::INVALID_CONDITION_TYPE,
                "condition type specified for non-conditional order",
            ));
        }
        if order.conditional_order_trigger_subticks != 0 {
            return Err(err(
                clob::INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS,
                "conditional order trigger subticks greater than 0 for non-conditional order",
            ));
        }
    }

    if let Some(builder) = &order.builder_code_parameters {
        if let Err(e) = tx::validate_address(&builder.builder_address) {
            return Err(err(
                clob::INVALID_BUILDER_CODE,
                format!(
                    "builder code address '{}' must be a valid bech32 address, but got error '{e}'",
                    builder.builder_address
                ),
            ));
        }
        if builder.fee_ppm == 0 || builder.fee_ppm > MAX_BUILDER_CODE_FEE_PPM {
            return Err(err(
                clob::INVALID_BUILDER_CODE,
                format!(
                    "builder code fee ppm '{}' must be in the range (0, {MAX_BUILDER_CODE_FEE_PPM}]",
                    builder.fee_ppm
                ),
            ));
        }
    }

    if id.order_flags == order_flags::TWAP {
        let Some(twap) = &order.twap_parameters else {
            return Err(err(
                clob::INVALID_PLACE_ORDER,
                "TWAP order must have a TWAP config",
            ));
        };
        let within = |v: u32, (lo, hi): (u32, u32)| (lo..=hi).contains(&v);
        if !within(twap.interval, TWAP_INTERVAL_SECS) {
            return Err(err(
                clob::INVALID_PLACE_ORDER,
                "TWAP order interval must be in the range [30 seconds, 3600 seconds]",
            ));
        }
        if !within(twap.duration, TWAP_DURATION_SECS) {
            return Err(err(
                clob::INVALID_PLACE_ORDER,
                "TWAP order duration must be in the range [300 seconds, 86400 seconds]",
            ));
        }
        // The interval is >= 30 here, so the remainder is defined.
        if twap.duration % twap.interval != 0 {
            return Err(err(
                clob::INVALID_PLACE_ORDER,
                "TWAP order duration must be a multiple of the interval",
            ));
        }
        if twap.price_tolerance >= MAX_TWAP_PRICE_TOLERANCE_PPM {
            return Err(err(
                clob::INVALID_PLACE_ORDER,
                "TWAP order price tolerance must be in the range [0, 1000000)",
            ));
        }
    }
    Ok(())
}

/// `MsgCancelOrder.ValidateBasic` (`x/clob/types/message_cancel_order.go`): `OrderId.Validate`
/// (`x/clob/types/order_id.go`: subaccount, known flags), then the good-til of its kind.
fn validate_cancel(cancel: &MsgCancelOrder) -> Result<(), ChainError> {
    let default_id = OrderId::default();
    let id = cancel.order_id.as_ref().unwrap_or(&default_id);
    validate_subaccount(id.subaccount_id.as_ref())?;
    let short_term = id.order_flags == order_flags::SHORT_TERM;
    if !short_term && !order_flags::is_stateful(id.order_flags) {
        return Err(ChainError::clob(
            codes::clob::INVALID_ORDER_FLAG,
            format!("orderId: {id:?}"),
        ));
    }
    if short_term {
        match cancel.good_til_oneof {
            Some(msg_cancel_order::GoodTilOneof::GoodTilBlock(b)) if b > 0 => Ok(()),
            _ => Err(ChainError::clob(
                codes::clob::INVALID_ORDER_GOOD_TIL_BLOCK,
                format!("cancellation goodTilBlock cannot be 0, orderId {id:?}"),
            )),
        }
    } else {
        match cancel.good_til_oneof {
            Some(msg_cancel_order::GoodTilOneof::GoodTilBlockTime(t)) if t > 0 => Ok(()),
            _ => Err(ChainError::clob(
                codes::clob::INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME,
                format!("stateful cancellation goodTilBlockTime cannot be 0, {id:?}"),
            )),
        }
    }
}

/// `MsgBatchCancel.ValidateBasic` (`x/clob/types/message_batch_cancel.go`).
fn validate_batch(batch: &MsgBatchCancel) -> Result<(), ChainError> {
    validate_subaccount(batch.subaccount_id.as_ref())?;
    let invalid = |detail: String| ChainError::clob(codes::clob::INVALID_BATCH_CANCEL, detail);
    if batch.short_term_cancels.is_empty() {
        return Err(invalid(
            "Batch cancel cannot have zero orders specified.".into(),
        ));
    }
    let mut total = 0usize;
    let mut seen_pairs = HashSet::new();
    for b in &batch.short_term_cancels {
        if !seen_pairs.insert(b.clob_pair_id) {
            return Err(invalid(format!(
                "Batch cancel cannot have 2 order batches with the same clob pair id: {}",
                b.clob_pair_id
            )));
        }
        if b.client_ids.is_empty() {
            return Err(invalid("Order Batch cannot have zero client ids.".into()));
        }
        total += b.client_ids.len();
        let mut seen_ids = HashSet::new();
        for id in &b.client_ids {
            if !seen_ids.insert(*id) {
                return Err(invalid(format!(
                    "Batch Cancel Clob pair id {} has duplicate client ids: {id}",
                    b.clob_pair_id
                )));
            }
        }
    }
    if total > MAX_BATCH_CANCEL_SIZE {
        return Err(invalid(format!(
            "Batch cancel cannot have over {MAX_BATCH_CANCEL_SIZE} orders. Order count: {total}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dydx_proto::dydxprotocol::clob::{BuilderCodeParameters, OrderBatch, TwapParameters};

    fn owner() -> String {
        tx::derive_from_mnemonic(crate::fixtures::MNEMONIC, 0)
            .expect("fixture account")
            .0
    }

    fn order(flags: u32) -> Order {
        let stateful = order_flags::is_stateful(flags);
        Order {
            order_id: Some(OrderId {
                subaccount_id: Some(SubaccountId {
                    owner: owner(),
                    number: 0,
                }),
                client_id: 1,
                order_flags: flags,
                clob_pair_id: 0,
            }),
            side: order::Side::Buy as i32,
            quantums: 1_000_000,
            subticks: 100_000,
            good_til_oneof: Some(if stateful {
                order::GoodTilOneof::GoodTilBlockTime(1_000)
            } else {
                order::GoodTilOneof::GoodTilBlock(10)
            }),
            ..Order::default()
        }
    }

    fn code(order: Order) -> (String, u32) {
        let msg =
            TxMsg::Place(dydx_proto::dydxprotocol::clob::MsgPlaceOrder { order: Some(order) });
        match validate_basic(&msg) {
            Ok(()) => (String::new(), 0),
            Err(e) => (e.codespace, e.code),
        }
    }

    #[test]
    fn rules_not_reachable_through_the_client_builder() {
        let clob = |c: u32| ("clob".to_owned(), c);
        assert_eq!(code(order(order_flags::LONG_TERM)), (String::new(), 0));
        let mut o = order(0);
        o.side = 7;
        assert_eq!(code(o), clob(3));
        let mut o = order(0);
        o.time_in_force = 9;
        assert_eq!(code(o), clob(44));
        let mut o = order(0);
        o.condition_type = 9;
        assert_eq!(code(o), clob(6000));
        let mut o = order(0);
        o.quantums = 0;
        assert_eq!(code(o), clob(4));
        let mut o = order(0);
        o.order_router_address = "nope".into();
        assert_eq!(code(o), clob(11000));
        let mut o = order(0);
        o.order_id.as_mut().expect("id").subaccount_id = Some(SubaccountId {
            owner: owner(),
            number: 128_001,
        });
        assert_eq!(code(o), ("subaccounts".to_owned(), 200));
        let mut o = order(0);
        o.builder_code_parameters = Some(BuilderCodeParameters {
            builder_address: owner(),
            fee_ppm: 10_001,
        });
        assert_eq!(code(o), clob(50));
        // TWAP: market TWAP (subticks 0) is fine with valid parameters.
        let mut o = order(order_flags::TWAP);
        o.subticks = 0;
        assert_eq!(code(o.clone()), clob(12), "no parameters");
        o.twap_parameters = Some(TwapParameters {
            duration: 300,
            interval: 30,
            price_tolerance: 0,
        });
        assert_eq!(code(o.clone()), (String::new(), 0));
        o.twap_parameters = Some(TwapParameters {
            duration: 310,
            interval: 30,
            price_tolerance: 0,
        });
        assert_eq!(code(o), clob(12), "duration not a multiple");
    }

    #[test]
    fn batch_with_an_empty_order_batch_is_45() {
        let msg = TxMsg::Batch(MsgBatchCancel {
            subaccount_id: Some(SubaccountId {
                owner: owner(),
                number: 0,
            }),
            short_term_cancels: vec![OrderBatch {
                clob_pair_id: 0,
                client_ids: vec![],
            }],
            good_til_block: 0,
        });
        let err = validate_basic(&msg).expect_err("empty batch");
        assert!(err.is("clob", 45));
    }
}
