//! The clob's rules for placing and cancelling: good-til windows, replacements, pre-cancels,
//! stateful cancels and batch cancels, as CheckTx applies them (`x/clob/keeper/orders.go`
//! and `x/clob/memclob/memclob.go`).

use dydx_proto::dydxprotocol::clob::{
    MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder, Order, OrderId, msg_cancel_order, order,
};
use prost::Message;

use super::Chain;
use super::book::{OrderKey, OrderRecord};
use super::events::{ChainEvent, RemovalReason, RemovalStatus};
use crate::config::STATEFUL_ORDER_TIME_WINDOW_SECS;
use crate::error::{ChainError, codes};
use crate::types::{GoodTil, OrderState, OrderStatus, order_flags};

impl Chain {
    /// `x/clob/keeper/orders.go`, `validateGoodTilBlock`: next height <= GTB <= next height +
    /// ShortBlockWindow.
    pub(super) fn validate_good_til_block(&self, gtb: u32) -> Result<(), ChainError> {
        let next = self.next_height();
        if gtb < next {
            return Err(ChainError::clob(
                codes::clob::HEIGHT_EXCEEDS_GOOD_TIL_BLOCK,
                format!("GoodTilBlock {gtb} is less than the current blockHeight {next}"),
            ));
        }
        if gtb > next + self.short_block_window {
            return Err(ChainError::clob(
                codes::clob::GOOD_TIL_BLOCK_EXCEEDS_SHORT_BLOCK_WINDOW,
                format!(
                    "The GoodTilBlock {gtb} exceeds the current blockHeight {next} plus ShortBlockWindow {}",
                    self.short_block_window
                ),
            ));
        }
        Ok(())
    }

    /// Stateful GTBT window against the previous (latest committed) block time:
    /// `x/clob/keeper/orders.go`, `PerformStatefulOrderValidation` and
    /// `PerformOrderCancellationStatefulValidation`.
    pub(super) fn validate_good_til_block_time(&self, gtbt: u32) -> Result<(), ChainError> {
        let prev = self.block_time.timestamp();
        if i64::from(gtbt) <= prev {
            return Err(ChainError::clob(
                codes::clob::TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME,
                format!("GoodTilBlockTime {gtbt} is less than the previous blockTime {prev}"),
            ));
        }
        let end = prev + STATEFUL_ORDER_TIME_WINDOW_SECS;
        if i64::from(gtbt) > end {
            return Err(ChainError::clob(
                codes::clob::GOOD_TIL_BLOCK_TIME_EXCEEDS_STATEFUL_ORDER_TIME_WINDOW,
                format!(
                    "GoodTilBlockTime {gtbt} exceeds the previous blockTime plus StatefulOrderTimeWindow {end}"
                ),
            ));
        }
        Ok(())
    }

    /// Fill amount an id keeps until its good-til passes (a fully filled order's id cannot be
    /// placed again before then).
    fn carried_fill(&self, key: &OrderKey) -> u64 {
        self.orders
            .get(key)
            .filter(|r| r.state.status.is_live() || r.state.status == OrderStatus::Filled)
            .filter(|r| !self.good_til_passed(r.state.good_til))
            .map(|r| r.state.filled_quantums)
            .unwrap_or(0)
    }

    /// The state of a newly placed order (status `Open`), with the fill its id carries.
    pub(super) fn new_order_state(
        &self,
        id: &OrderId,
        order: &Order,
        good_til: GoodTil,
    ) -> OrderState {
        OrderState {
            order_id: id.clone(),
            order: order.clone(),
            status: OrderStatus::Open,
            good_til,
            quantums: order.quantums,
            filled_quantums: self.carried_fill(&OrderKey::new(id)),
            placed_at_height: self.height,
            updated_at_height: self.height,
        }
    }

    /// `x/clob/keeper/orders.go`, `PlaceShortTermOrder` / `PlaceStatefulOrder` →
    /// `PerformStatefulOrderValidation`, and memclob `validateNewOrder` (pre-cancels, fully
    /// filled ids, replacements), as CheckTx runs them. A short-term order rests at once
    /// (IOC finds no liquidity and never rests); a stateful one becomes an uncommitted
    /// placement that the next block executes.
    pub(super) fn place_order(&mut self, msg: &MsgPlaceOrder) -> Result<(), ChainError> {
        let Some(order) = msg.order.as_ref() else {
            return Err(ChainError::clob(
                codes::clob::INVALID_PLACE_ORDER,
                "missing order",
            ));
        };
        let Some(id) = order.order_id.as_ref() else {
            return Err(ChainError::clob(
                codes::clob::INVALID_PLACE_ORDER,
                "missing order id",
            ));
        };
        if matches!(
            id.order_flags,
            order_flags::TWAP | order_flags::TWAP_SUBORDER
        ) {
            return Err(ChainError::sdk(
                codes::sdk::INVALID_REQUEST,
                "TWAP orders pass ValidateBasic but are not simulated by ordermeta-dydx-sim",
            ));
        }
        let key = OrderKey::new(id);
        let good_til = place_good_til(msg).ok_or_else(|| {
            ChainError::clob(codes::clob::INVALID_PLACE_ORDER, "missing good-til")
        })?;
        let existing = self
            .orders
            .get(&key)
            .filter(|r| r.state.status.is_live())
            .map(|r| r.state.clone());

        match good_til {
            GoodTil::Block(gtb) => {
                // PlaceShortTermOrder → PerformStatefulOrderValidation → memclob validateNewOrder.
                self.validate_good_til_block(gtb)?;
                if let Some(cancel_gtb) = self.short_term_cancels.get(&key)
                    && *cancel_gtb >= gtb
                {
                    return Err(ChainError::clob(
                        codes::clob::ORDER_IS_CANCELED,
                        format!("Order: {id:?}, Cancellation GoodTilBlock: {cancel_gtb}"),
                    ));
                }
                if let Some(existing) = &existing {
                    validate_replacement(&existing.order, order)?;
                }
            }
            GoodTil::BlockTime(gtbt) => {
                // PlaceStatefulOrder → PerformStatefulOrderValidation: committed and
                // uncommitted state.
                self.validate_good_til_block_time(gtbt)?;
                if self.pending_stateful_cancels.contains_key(&key) {
                    return Err(ChainError::clob(
                        codes::clob::STATEFUL_ORDER_PREVIOUSLY_CANCELLED,
                        "An uncommitted stateful order cancellation with this OrderId already exists",
                    ));
                }
                if self.uncommitted_placements.contains_key(&key) {
                    return Err(ChainError::clob(
                        codes::clob::STATEFUL_ORDER_ALREADY_EXISTS,
                        "An uncommitted stateful order with this OrderId already exists and stateful order replacement is not supported",
                    ));
                }
                if existing.is_some() {
                    return Err(ChainError::clob(
                        codes::clob::STATEFUL_ORDER_ALREADY_EXISTS,
                        "A stateful order with this OrderId already exists and stateful order replacement is not supported",
                    ));
                }
            }
        }

        let mut state = self.new_order_state(id, order, good_til);
        if state.filled_quantums >= order.quantums {
            return Err(ChainError::clob(
                codes::clob::ORDER_FULLY_FILLED,
                format!(
                    "Order remaining amount is less than `MinOrderBaseQuantums`. Remaining amount: 0. Order: {id:?}"
                ),
            ));
        }

        if let Some(error) = self.reject_next_placement.take() {
            return Err(error);
        }

        if let GoodTil::BlockTime(_) = good_til {
            state.status = OrderStatus::PlacePending;
            self.uncommitted_placements.insert(key, state);
            return Ok(());
        }
        // There is no matching engine: IOC orders find no liquidity and never rest.
        let ioc = order.time_in_force == order::TimeInForce::Ioc as i32;
        if ioc {
            state.status = OrderStatus::Removed;
        }
        // `x/clob/memclob/memclob.go`, `PlaceOrder`: a replacement first removes the resting
        // order, then the order is placed; an IOC order that would rest is removed at once.
        if let Some(existing) = &existing {
            state.placed_at_height = existing.placed_at_height;
            self.emit(ChainEvent::OrderRemoved {
                order_id: id.clone(),
                reason: RemovalReason::Replaced,
                status: RemovalStatus::BestEffortCanceled,
            });
        }
        self.emit(ChainEvent::OrderPlaced {
            order: order.clone(),
        });
        if ioc {
            self.emit(ChainEvent::OrderRemoved {
                order_id: id.clone(),
                reason: RemovalReason::ImmediateOrCancelWouldRestOnBook,
                status: RemovalStatus::BestEffortCanceled,
            });
        }
        self.orders.insert(key, OrderRecord { state });
        Ok(())
    }

    /// `x/clob/keeper/msg_server_cancel_orders.go`, `CancelOrder`: dispatches on the order
    /// flags to the short-term or the stateful cancel.
    pub(super) fn cancel_order(&mut self, msg: &MsgCancelOrder) -> Result<(), ChainError> {
        let Some(id) = msg.order_id.as_ref() else {
            return Err(ChainError::clob(
                codes::clob::INVALID_PLACE_ORDER,
                "missing order id",
            ));
        };
        let key = OrderKey::new(id);
        match msg.good_til_oneof {
            Some(msg_cancel_order::GoodTilOneof::GoodTilBlock(gtb)) if key.is_short_term() => {
                self.cancel_short_term(&key, gtb)
            }
            Some(msg_cancel_order::GoodTilOneof::GoodTilBlockTime(gtbt))
                if !key.is_short_term() =>
            {
                self.cancel_stateful(&key, id, gtbt)
            }
            // validate_basic rejects mismatched good-til kinds before we get here.
            _ => Err(ChainError::clob(
                codes::clob::INVALID_ORDER_GOOD_TIL_BLOCK,
                "good-til does not match the order flags",
            )),
        }
    }

    /// `x/clob/keeper/orders.go`, `CancelShortTermOrder` + `x/clob/memclob/memclob.go`,
    /// `CancelOrder`: the cancel is recorded until its GTB even if no order matches.
    fn cancel_short_term(&mut self, key: &OrderKey, gtb: u32) -> Result<(), ChainError> {
        self.validate_good_til_block(gtb)?;
        if let Some(existing) = self.short_term_cancels.get(key)
            && *existing >= gtb
        {
            return Err(ChainError::clob(
                codes::clob::CANCEL_ALREADY_EXISTS,
                format!("existing cancel GoodTilBlock {existing}, new {gtb}"),
            ));
        }
        let height = self.height;
        // A lower cancel GTB is accepted but leaves the order live.
        if let Some(record) = self.orders.get_mut(key)
            && record.state.status.is_live()
            && let GoodTil::Block(order_gtb) = record.state.good_til
            && gtb >= order_gtb
        {
            record.state.status = OrderStatus::Canceled;
            record.state.updated_at_height = height;
        }
        self.short_term_cancels.insert(key.clone(), gtb);
        // `memclob.go`, `CancelOrder`: best effort, reported whether or not an order matched.
        self.emit(ChainEvent::OrderRemoved {
            order_id: key.to_order_id(),
            reason: RemovalReason::UserCanceled,
            status: RemovalStatus::BestEffortCanceled,
        });
        Ok(())
    }

    /// `x/clob/keeper/orders.go`, `CancelStatefulOrder` →
    /// `PerformOrderCancellationStatefulValidation` at CheckTx: the order must exist in
    /// committed or uncommitted state; the cancel becomes uncommitted until the next block
    /// executes it.
    fn cancel_stateful(
        &mut self,
        key: &OrderKey,
        id: &OrderId,
        gtbt: u32,
    ) -> Result<(), ChainError> {
        self.validate_good_til_block_time(gtbt)?;
        if let Some(existing) = self.pending_stateful_cancels.get(key) {
            return Err(ChainError::clob(
                codes::clob::STATEFUL_ORDER_CANCELLATION_ALREADY_EXISTS,
                format!(
                    "An uncommitted stateful order cancellation with this OrderId already exists and stateful order cancellation replacement is not supported. Existing order cancellation GoodTilBlockTime ({existing}), New order cancellation GoodTilBlockTime ({gtbt})"
                ),
            ));
        }
        let order_good_til = self
            .orders
            .get(key)
            .map(|r| &r.state)
            .filter(|s| s.status.is_live())
            .or_else(|| self.uncommitted_placements.get(key))
            .map(|s| s.good_til);
        let Some(order_good_til) = order_good_til else {
            return Err(ChainError::clob(
                codes::clob::STATEFUL_ORDER_DOES_NOT_EXIST,
                format!("Order Id to cancel does not exist. OrderId : {id:?}"),
            ));
        };
        if let GoodTil::BlockTime(order_gtbt) = order_good_til
            && gtbt < order_gtbt
        {
            return Err(ChainError::clob(
                codes::clob::INVALID_STATEFUL_ORDER_CANCELLATION,
                format!(
                    "cancellation goodTilBlockTime less than stateful order goodTilBlockTime. cancellation {gtbt}, order {order_gtbt}"
                ),
            ));
        }
        self.pending_stateful_cancels.insert(key.clone(), gtbt);
        Ok(())
    }

    /// `x/clob/keeper/orders.go`, `BatchCancelShortTermOrder`: each cancel runs like a
    /// `MsgCancelOrder`; failures are silent unless none succeeded (`x/clob/ante/clob.go`,
    /// `ClobDecorator.AnteHandle`).
    pub(super) fn batch_cancel(&mut self, msg: &MsgBatchCancel) -> Result<(), ChainError> {
        self.validate_good_til_block(msg.good_til_block)?;
        let subaccount = msg.subaccount_id.clone().unwrap_or_default();
        let mut successes = 0usize;
        let mut failures = Vec::new();
        for batch in &msg.short_term_cancels {
            for client_id in &batch.client_ids {
                let key = OrderKey::new(&OrderId {
                    subaccount_id: Some(subaccount.clone()),
                    client_id: *client_id,
                    order_flags: order_flags::SHORT_TERM,
                    clob_pair_id: batch.clob_pair_id,
                });
                match self.cancel_short_term(&key, msg.good_til_block) {
                    Ok(()) => successes += 1,
                    Err(_) => failures.push(*client_id),
                }
            }
        }
        if successes == 0 {
            return Err(ChainError::clob(
                codes::clob::BATCH_CANCEL_FAILED,
                format!("No successful cancellations. Failures: {failures:?}"),
            ));
        }
        Ok(())
    }
}

/// The good-til of a place msg's order, if set.
pub(super) fn place_good_til(msg: &MsgPlaceOrder) -> Option<GoodTil> {
    match msg.order.as_ref()?.good_til_oneof? {
        order::GoodTilOneof::GoodTilBlock(b) => Some(GoodTil::Block(b)),
        order::GoodTilOneof::GoodTilBlockTime(t) => Some(GoodTil::BlockTime(t)),
    }
}

/// Whether a place msg carries a short-term order id.
pub(super) fn place_is_short_term(msg: &MsgPlaceOrder) -> bool {
    msg.order
        .as_ref()
        .and_then(|o| o.order_id.as_ref())
        .is_some_and(|id| id.order_flags == order_flags::SHORT_TERM)
}

/// `x/clob/memclob/memclob.go`, `validateReplacement`, with `x/clob/types/order.go`,
/// `MustCmpReplacementOrder`: the new order must have a
/// strictly later GTB, or the same GTB and a greater SHA-256 of its encoding; and keep side,
/// time-in-force and reduce-only.
fn validate_replacement(existing: &Order, new: &Order) -> Result<(), ChainError> {
    let expiry = |o: &Order| match o.good_til_oneof {
        Some(order::GoodTilOneof::GoodTilBlock(b)) => b,
        Some(order::GoodTilOneof::GoodTilBlockTime(t)) => t,
        None => 0,
    };
    let ordering = expiry(existing).cmp(&expiry(new)).then_with(|| {
        let hash = |o: &Order| {
            use bip32::secp256k1::sha2::{Digest, Sha256};
            Sha256::digest(o.encode_to_vec())
        };
        hash(existing).cmp(&hash(new))
    });
    let invalid = |detail: &str| ChainError::clob(codes::clob::INVALID_REPLACEMENT, detail);
    if ordering.is_ge() {
        return Err(invalid(
            "New order cannot reduce the GoodTilBlock or GoodTilBlockTime of existing order",
        ));
    }
    if existing.side != new.side {
        return Err(invalid(
            "New order cannot change the Side of the existing order",
        ));
    }
    if existing.time_in_force != new.time_in_force {
        return Err(invalid(
            "New order cannot change the TimeInForce of the existing order",
        ));
    }
    if existing.reduce_only != new.reduce_only {
        return Err(invalid(
            "New order cannot change the ReduceOnly field of the existing order",
        ));
    }
    Ok(())
}
