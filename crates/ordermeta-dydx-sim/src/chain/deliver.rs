//! Stateful txs after CheckTx: the mempool, their execution in the next block (DeliverTx),
//! forced failures, and the results queryable by hash.
//!
//! A stateful place or cancel admitted by CheckTx waits in the mempool; the next block executes
//! every waiting tx in admission order. Execution re-runs replay protection on committed state
//! at the new block time (a timestamp nonce can fall out of its 30 s window here), then the
//! msg: `x/clob/keeper/msg_server_place_order.go`, `HandleMsgPlaceOrder`, and
//! `x/clob/keeper/msg_server_cancel_orders.go`, `HandleMsgCancelOrder`. Either can fail although
//! CheckTx accepted it:
//!
//! | Case | Result |
//! |---|---|
//! | cancel of an order fully filled or removed since the latest block (the block's `RemovedStatefulOrderIds`) | clob/3010 |
//! | cancel of an order otherwise gone (e.g. expired, cancelled earlier in the block) | clob/3006 |
//! | place of an id cancelled earlier in the same block | clob/3008 |
//! | place of an id removed since the latest block | clob/3009 |
//! | place of an id already live | clob/3005 |
//! | timestamp nonce outside 30 s of the new block time, or sequence mismatch | sdk/32 (ante) |
//! | [`SimHandle::fail_next_block_execution`](crate::SimHandle::fail_next_block_execution) / [`SimHandle::fail_block_execution_of`](crate::SimHandle::fail_block_execution_of) | the given error |
//!
//! A msg failure still consumes the tx's sequence (the ante succeeded), as on chain. Its log is
//! wrapped like cosmos-sdk `baseapp/baseapp.go`, `runMsgs`. The tx and its result are then
//! served by `GetTx`; short-term txs never enter a block, so `GetTx` never finds them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use dydx_proto::dydxprotocol::clob::{
    MsgCancelOrder, MsgPlaceOrder, OrderId, msg_cancel_order, order,
};

use super::Chain;
use super::book::{OrderKey, OrderRecord};
use super::events::{ChainEvent, RemovalReason};
use crate::error::{ChainError, codes};
use crate::tx::TxMsg;
use crate::types::{GoodTil, OrderStatus, TxResult};

/// A stateful tx admitted by CheckTx, waiting for the next block.
#[derive(Clone, Debug)]
pub(super) struct PendingTx {
    pub hash: String,
    pub bytes: Vec<u8>,
    pub signer: String,
    /// The signed sequence or timestamp nonce.
    pub signed: u64,
    pub msg: TxMsg,
    /// Position of its entry in the message log, to record the execution result there.
    pub log_index: u64,
}

/// A tx included in a block, with its execution result.
#[derive(Clone, Debug)]
pub(crate) struct IncludedTx {
    pub bytes: Vec<u8>,
    pub result: TxResult,
    pub block_time: DateTime<Utc>,
}

/// Failures of block execution requested through the control API.
#[derive(Debug, Default)]
pub(super) struct FailureHooks {
    next: Option<ChainError>,
    by_order: HashMap<OrderKey, ChainError>,
}

impl FailureHooks {
    /// The forced failure for the next executed msg about `key`, if any: one for that order
    /// first, else the one for the next msg.
    fn take(&mut self, key: Option<&OrderKey>) -> Option<ChainError> {
        key.and_then(|k| self.by_order.remove(k))
            .or_else(|| self.next.take())
    }
}

/// The order id a stateful msg is about.
fn order_id_of(msg: &TxMsg) -> Option<&OrderId> {
    match msg {
        TxMsg::Place(place) => place.order.as_ref()?.order_id.as_ref(),
        TxMsg::Cancel(cancel) => cancel.order_id.as_ref(),
        TxMsg::Batch(_) | TxMsg::Other(_) => None,
    }
}

impl Chain {
    /// Queues a stateful tx accepted by CheckTx for the next block.
    pub(super) fn admit_to_mempool(&mut self, tx: PendingTx) {
        self.mempool.push(tx);
    }

    /// Hashes of the stateful txs waiting for the next block, in order.
    pub(crate) fn pending_txs(&self) -> Vec<String> {
        self.mempool.iter().map(|tx| tx.hash.clone()).collect()
    }

    /// The tx with this hash, if a block included it.
    pub(crate) fn included_tx(&self, hash: &str) -> Option<&IncludedTx> {
        self.included.get(&hash.to_ascii_uppercase())
    }

    pub(crate) fn fail_next_block_execution(&mut self, error: ChainError) {
        self.failures.next = Some(error);
    }

    pub(crate) fn fail_block_execution_of(&mut self, id: &OrderId, error: ChainError) {
        self.failures.by_order.insert(OrderKey::new(id), error);
    }

    /// DeliverTx of the whole mempool in the block at `height` and `time`. Runs before the
    /// chain's height and time advance, so `self.block_time` is the previous block's time that
    /// the GTBT windows are checked against.
    pub(super) fn deliver_mempool(&mut self, height: u32, time: DateTime<Utc>) {
        let time_ms = u64::try_from(time.timestamp_millis()).unwrap_or(0);
        let mut cancelled_in_block = HashSet::new();
        for tx in std::mem::take(&mut self.mempool) {
            let result = self.deliver_tx(&tx, height, time_ms, &mut cancelled_in_block);
            let result = TxResult {
                tx_hash: tx.hash.clone(),
                height,
                result,
            };
            tracing::debug!(hash = %tx.hash, height, code = result.code(), "DeliverTx");
            if let Some(entry) = usize::try_from(tx.log_index)
                .ok()
                .and_then(|i| self.messages.get_mut(i))
                .filter(|m| m.tx_hash == tx.hash)
            {
                entry.delivered = Some(result.clone());
            }
            self.included.insert(
                tx.hash.clone(),
                IncludedTx {
                    bytes: tx.bytes,
                    result,
                    block_time: time,
                },
            );
        }
    }

    fn deliver_tx(
        &mut self,
        tx: &PendingTx,
        height: u32,
        time_ms: u64,
        cancelled_in_block: &mut HashSet<OrderKey>,
    ) -> Result<(), ChainError> {
        // The ante again, on committed state at this block's time: replay protection.
        let mut account = self.accounts.get(&tx.signer).cloned().ok_or_else(|| {
            ChainError::sdk(
                codes::sdk::UNKNOWN_ADDRESS,
                format!("account {} does not exist", tx.signer),
            )
        })?;
        account.consume(tx.signed, time_ms)?;
        self.accounts.insert(tx.signer.clone(), account);

        let key = order_id_of(&tx.msg).map(OrderKey::new);
        let executed = match self.failures.take(key.as_ref()) {
            Some(forced) => Err(forced),
            None => match &tx.msg {
                TxMsg::Place(place) => self.deliver_place(place, height, cancelled_in_block),
                TxMsg::Cancel(cancel) => self.deliver_cancel(cancel, height, cancelled_in_block),
                TxMsg::Batch(_) | TxMsg::Other(_) => Ok(()),
            },
        };
        executed.map_err(|e| ChainError {
            log: format!("failed to execute message; message index: 0: {}", e.log),
            ..e
        })
    }

    /// `HandleMsgPlaceOrder` → `PlaceStatefulOrder` in DeliverTx: the order is written to
    /// committed state and rests on the book.
    fn deliver_place(
        &mut self,
        msg: &MsgPlaceOrder,
        height: u32,
        cancelled_in_block: &HashSet<OrderKey>,
    ) -> Result<(), ChainError> {
        let (Some(order), Some(id)) = (
            msg.order.as_ref(),
            msg.order.as_ref().and_then(|o| o.order_id.as_ref()),
        ) else {
            return Err(ChainError::clob(
                codes::clob::INVALID_PLACE_ORDER,
                "missing order",
            ));
        };
        let key = OrderKey::new(id);
        if cancelled_in_block.contains(&key) {
            return Err(ChainError::clob(
                codes::clob::STATEFUL_ORDER_PREVIOUSLY_CANCELLED,
                format!("PlaceOrder: order ({id:?})"),
            ));
        }
        if self.removed_since_block.contains(&key) {
            return Err(ChainError::clob(
                codes::clob::STATEFUL_ORDER_PREVIOUSLY_REMOVED,
                format!("PlaceOrder: order ({id:?})"),
            ));
        }
        let gtbt = match order.good_til_oneof {
            Some(order::GoodTilOneof::GoodTilBlockTime(t)) => t,
            _ => 0,
        };
        self.validate_good_til_block_time(gtbt)?;
        if self
            .orders
            .get(&key)
            .is_some_and(|r| r.state.status.is_live())
        {
            return Err(ChainError::clob(
                codes::clob::STATEFUL_ORDER_ALREADY_EXISTS,
                "A stateful order with this OrderId already exists and stateful order replacement is not supported",
            ));
        }
        let mut state = self
            .uncommitted_placements
            .remove(&key)
            .unwrap_or_else(|| self.new_order_state(id, order, GoodTil::BlockTime(gtbt)));
        state.status = OrderStatus::Open;
        state.placed_at_height = height;
        state.updated_at_height = height;
        self.emit(ChainEvent::StatefulPlaced {
            order: state.order.clone(),
        });
        self.orders.insert(key, OrderRecord { state });
        Ok(())
    }

    /// `HandleMsgCancelOrder` → `CancelStatefulOrder` in DeliverTx: the order must still exist
    /// in committed state; it is removed.
    fn deliver_cancel(
        &mut self,
        msg: &MsgCancelOrder,
        height: u32,
        cancelled_in_block: &mut HashSet<OrderKey>,
    ) -> Result<(), ChainError> {
        let Some(id) = msg.order_id.as_ref() else {
            return Err(ChainError::clob(
                codes::clob::INVALID_PLACE_ORDER,
                "missing order id",
            ));
        };
        let gtbt = match msg.good_til_oneof {
            Some(msg_cancel_order::GoodTilOneof::GoodTilBlockTime(t)) => t,
            _ => 0,
        };
        self.validate_good_til_block_time(gtbt)?;
        let key = OrderKey::new(id);
        let removed_in_block = self.removed_since_block.contains(&key);
        let Some(record) = self
            .orders
            .get_mut(&key)
            .filter(|r| r.state.status.is_live())
        else {
            let missing = ChainError::clob(
                codes::clob::STATEFUL_ORDER_DOES_NOT_EXIST,
                format!("Order Id to cancel does not exist. OrderId : {id:?}"),
            );
            // `HandleMsgCancelOrder` tells apart an order removed by this block's operations.
            return Err(if removed_in_block {
                ChainError::clob(
                    codes::clob::STATEFUL_ORDER_CANCELLATION_FAILED_FOR_ALREADY_REMOVED_ORDER,
                    format!("Error: {}", missing.log),
                )
            } else {
                missing
            });
        };
        if let GoodTil::BlockTime(order_gtbt) = record.state.good_til
            && gtbt < order_gtbt
        {
            return Err(ChainError::clob(
                codes::clob::INVALID_STATEFUL_ORDER_CANCELLATION,
                format!(
                    "cancellation goodTilBlockTime less than stateful order goodTilBlockTime. cancellation {gtbt}, order {order_gtbt}"
                ),
            ));
        }
        record.state.status = OrderStatus::Canceled;
        record.state.updated_at_height = height;
        cancelled_in_block.insert(key);
        self.emit(ChainEvent::StatefulRemoved {
            order_id: id.clone(),
            reason: RemovalReason::UserCanceled,
        });
        Ok(())
    }
}
