//! The order book as far as the rules need it: resting orders by their full `OrderId`, the
//! recorded cancels, their expiry at each block, and fills.
//!
//! There is no matching engine: orders rest until cancelled, expired, removed or filled by
//! the test through [`SimHandle::fill`](crate::SimHandle::fill). A fill or removal of a
//! stateful order counts as part of the next block's operations (its
//! `RemovedStatefulOrderIds` once fully filled), which run before that block's txs.
//!
//! The control view of an order overlays the uncommitted state on the committed book: an
//! uncommitted placement shows as `PlacePending`, an order with an uncommitted cancel as
//! `CancelPending`.

use dydx_proto::dydxprotocol::clob::OrderId;
use dydx_proto::dydxprotocol::subaccounts::SubaccountId;

use super::Chain;
use super::events::{ChainEvent, RemovalReason, RemovalStatus};
use crate::error::SimError;
use crate::types::{Fill, GoodTil, OrderState, OrderStatus, order_flags};

/// `OrderId` as a hashable key: the chain identifies an order by exactly these fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct OrderKey {
    owner: String,
    number: u32,
    client_id: u32,
    order_flags: u32,
    clob_pair_id: u32,
}

impl OrderKey {
    pub(super) fn new(id: &OrderId) -> Self {
        let (owner, number) = id
            .subaccount_id
            .as_ref()
            .map(|s| (s.owner.clone(), s.number))
            .unwrap_or_default();
        Self {
            owner,
            number,
            client_id: id.client_id,
            order_flags: id.order_flags,
            clob_pair_id: id.clob_pair_id,
        }
    }

    pub(super) fn is_short_term(&self) -> bool {
        self.order_flags == order_flags::SHORT_TERM
    }

    /// The `OrderId` this key stands for.
    pub(super) fn to_order_id(&self) -> OrderId {
        OrderId {
            subaccount_id: Some(SubaccountId {
                owner: self.owner.clone(),
                number: self.number,
            }),
            client_id: self.client_id,
            order_flags: self.order_flags,
            clob_pair_id: self.clob_pair_id,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct OrderRecord {
    pub(super) state: OrderState,
}

impl Chain {
    /// The book's part of a new block at `height` and `block_time_unix`, after its txs:
    /// expires stateful orders (`x/clob/keeper/stateful_order_state.go`,
    /// `RemoveExpiredStatefulOrders`, from `x/clob/abci.go`, `EndBlocker`) and short-term
    /// orders and cancels (`x/clob/memclob/memclob.go`, `PurgeInvalidMemclobState`).
    ///
    /// The indexer hears of a stateful expiry on chain (`StatefulOrderRemovalEvent` from the
    /// EndBlocker) and of a short-term one off chain (`OrderRemove` with status `CANCELED`).
    pub(super) fn end_block_book(&mut self, height: u32, block_time_unix: i64) {
        let mut expired_keys = Vec::new();
        for (key, record) in self.orders.iter_mut() {
            let expired = match record.state.good_til {
                GoodTil::Block(gtb) => key.is_short_term() && height >= gtb,
                GoodTil::BlockTime(gtbt) => {
                    !key.is_short_term() && block_time_unix >= i64::from(gtbt)
                }
            };
            if expired && record.state.status.is_live() {
                record.state.status = OrderStatus::Expired;
                record.state.updated_at_height = height;
                expired_keys.push(key.clone());
            }
        }
        self.short_term_cancels.retain(|_, gtb| *gtb > height);
        // Stateful first (EndBlocker), then short-term (memclob purge after the commit).
        expired_keys.sort_by_key(|k| (k.is_short_term(), k.clone()));
        for key in expired_keys {
            let order_id = key.to_order_id();
            if key.is_short_term() {
                self.emit(ChainEvent::OrderRemoved {
                    order_id,
                    reason: RemovalReason::Expired,
                    status: RemovalStatus::Canceled,
                });
            } else {
                self.emit(ChainEvent::StatefulRemoved {
                    order_id,
                    reason: RemovalReason::Expired,
                });
            }
        }
    }

    /// Whether `good_til` has passed at the latest block (the order's state may be pruned).
    pub(super) fn good_til_passed(&self, good_til: GoodTil) -> bool {
        match good_til {
            GoodTil::Block(gtb) => self.height >= gtb,
            GoodTil::BlockTime(gtbt) => self.block_time.timestamp() >= i64::from(gtbt),
        }
    }

    /// The control view of one order: an uncommitted placement over the committed record,
    /// and `CancelPending` over either while an uncommitted cancel waits.
    fn view(&self, key: &OrderKey) -> Option<OrderState> {
        let mut state = self
            .uncommitted_placements
            .get(key)
            .or_else(|| self.orders.get(key).map(|r| &r.state))
            .cloned()?;
        if self.pending_stateful_cancels.contains_key(key)
            && matches!(state.status, OrderStatus::Open | OrderStatus::PlacePending)
        {
            state.status = OrderStatus::CancelPending;
        }
        Some(state)
    }

    pub(crate) fn order(&self, id: &OrderId) -> Option<OrderState> {
        self.view(&OrderKey::new(id))
    }

    pub(crate) fn orders(&self) -> Vec<OrderState> {
        let mut keys: Vec<&OrderKey> = self
            .orders
            .keys()
            .chain(self.uncommitted_placements.keys())
            .collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().filter_map(|k| self.view(k)).collect()
    }

    pub(crate) fn short_term_cancel(&self, id: &OrderId) -> Option<u32> {
        self.short_term_cancels.get(&OrderKey::new(id)).copied()
    }

    /// Fills a live committed order (or a short-term one); a stateful order fully filled
    /// joins the next block's removed orders.
    pub(crate) fn fill(&mut self, id: &OrderId, fill: Fill) -> Result<OrderState, SimError> {
        let height = self.height;
        let key = OrderKey::new(id);
        if let Some(pending) = self.uncommitted_placements.get(&key) {
            return Err(SimError::OrderNotOpen(pending.status));
        }
        let record = self.orders.get_mut(&key).ok_or(SimError::OrderNotFound)?;
        let state = &mut record.state;
        if !state.status.is_live() {
            return Err(SimError::OrderNotOpen(state.status));
        }
        let remaining = state.quantums.saturating_sub(state.filled_quantums);
        let amount = match fill {
            Fill::Full => remaining,
            Fill::Quantums(q) if q == 0 || q > remaining => {
                return Err(SimError::InvalidArgument(format!(
                    "fill of {q} quantums, remaining {remaining}"
                )));
            }
            Fill::Quantums(q) => q,
        };
        state.filled_quantums += amount;
        if state.filled_quantums >= state.quantums {
            state.status = OrderStatus::Filled;
            if !key.is_short_term() {
                self.removed_since_block.insert(key.clone());
            }
        }
        state.updated_at_height = height;
        let filled = state.clone();
        // The memclob reports the new total at once (`OrderUpdate`); the fill itself is an
        // `OrderFillEvent` of the next block.
        self.emit(ChainEvent::OrderMatched {
            order_id: id.clone(),
            total_filled: filled.filled_quantums,
        });
        self.emit_in_next_block(ChainEvent::Fill {
            order: filled.order.clone(),
            fill_quantums: amount,
            total_filled: filled.filled_quantums,
        });
        Ok(self.view(&key).unwrap_or(filled))
    }

    /// Removes a live order without a cancel, as the chain does after e.g. a failed
    /// collateral check.
    pub(crate) fn remove_order(&mut self, id: &OrderId) -> Result<OrderState, SimError> {
        let height = self.height;
        let key = OrderKey::new(id);
        if let Some(pending) = self.uncommitted_placements.get(&key) {
            return Err(SimError::OrderNotOpen(pending.status));
        }
        let record = self.orders.get_mut(&key).ok_or(SimError::OrderNotFound)?;
        if !record.state.status.is_live() {
            return Err(SimError::OrderNotOpen(record.state.status));
        }
        record.state.status = OrderStatus::Removed;
        record.state.updated_at_height = height;
        let removed = record.state.clone();
        // The memclob drops it at once (best effort); a stateful order's removal is committed
        // by the next block (`StatefulOrderRemovalEvent`).
        self.emit(ChainEvent::OrderRemoved {
            order_id: id.clone(),
            reason: RemovalReason::Undercollateralized,
            status: RemovalStatus::BestEffortCanceled,
        });
        if !key.is_short_term() {
            self.removed_since_block.insert(key);
            self.emit_in_next_block(ChainEvent::StatefulRemoved {
                order_id: id.clone(),
                reason: RemovalReason::Undercollateralized,
            });
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;

    #[test]
    fn blocks_expire_short_term_cancels_at_their_gtb() {
        let mut chain = Chain::new(&SimConfig::default()).expect("chain");
        let key = OrderKey {
            owner: "x".into(),
            number: 0,
            client_id: 1,
            order_flags: order_flags::SHORT_TERM,
            clob_pair_id: 0,
        };
        chain.short_term_cancels.insert(key.clone(), 3);
        chain.produce_block();
        assert!(chain.short_term_cancels.contains_key(&key));
        chain.produce_block();
        assert_eq!(chain.height, 3);
        assert!(!chain.short_term_cancels.contains_key(&key));
    }
}
