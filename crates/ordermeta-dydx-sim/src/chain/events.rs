//! What the chain tells an indexer, in the order it happens: the full node's off-chain updates
//! (`protocol/indexer/off_chain_updates/off_chain_updates.go`, sent by the memclob at CheckTx
//! and at the end of each block) and its on-chain indexer events (`protocol/indexer/events`,
//! emitted while a block executes).
//!
//! The chain only records events; whoever drains them ([`SharedChain`](super::SharedChain)'s
//! sink) turns them into an indexer. Genesis emits nothing: a sink seeds itself from the chain.

use chrono::{DateTime, Utc};
use dydx_proto::dydxprotocol::clob::{Order, OrderId};

use super::Chain;

/// `OrderRemovalReason` of `protocol/indexer/shared/types/removal_reason.pb.go`: only those the
/// simulator produces. The indexer sends the name as `removalReason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RemovalReason {
    UserCanceled,
    Expired,
    Replaced,
    FullyFilled,
    ImmediateOrCancelWouldRestOnBook,
    Undercollateralized,
}

impl RemovalReason {
    /// The enum name as the indexer sends it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::UserCanceled => "ORDER_REMOVAL_REASON_USER_CANCELED",
            Self::Expired => "ORDER_REMOVAL_REASON_EXPIRED",
            Self::Replaced => "ORDER_REMOVAL_REASON_REPLACED",
            Self::FullyFilled => "ORDER_REMOVAL_REASON_FULLY_FILLED",
            Self::ImmediateOrCancelWouldRestOnBook => {
                "ORDER_REMOVAL_REASON_IMMEDIATE_OR_CANCEL_WOULD_REST_ON_BOOK"
            }
            Self::Undercollateralized => "ORDER_REMOVAL_REASON_UNDERCOLLATERALIZED",
        }
    }
}

/// `OrderRemoveV1_OrderRemovalStatus`: how sure the node is that the order is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RemovalStatus {
    /// Removed from this node's memclob only (a short-term cancel, a match failure).
    BestEffortCanceled,
    /// Removed for good (expiry, a committed removal).
    Canceled,
}

/// One thing the indexer learns from the chain.
#[derive(Clone, Debug)]
pub(crate) enum ChainEvent {
    /// A new funded account (its subaccount 0 exists), e.g. from `SimHandle::add_account`.
    Account { address: String },
    /// Off-chain, at CheckTx: a short-term order was placed (or replaced) on the memclob; the
    /// node always reports `BEST_EFFORT_OPENED`.
    OrderPlaced { order: Order },
    /// Off-chain: an order left the memclob, or a short-term cancel was recorded (the node
    /// reports one even when no order matched).
    OrderRemoved {
        order_id: OrderId,
        reason: RemovalReason,
        status: RemovalStatus,
    },
    /// Off-chain: the memclob matched the order; `total_filled` base quantums so far.
    OrderMatched {
        order_id: OrderId,
        total_filled: u64,
    },
    /// A block begins: the on-chain events after it belong to it.
    Block { height: u32, time: DateTime<Utc> },
    /// On-chain (`OrderFillEventV1`): `order` filled `fill_quantums` in this block, at its own
    /// price as the maker; `total_filled` after the fill.
    Fill {
        order: Order,
        fill_quantums: u64,
        total_filled: u64,
    },
    /// On-chain (`StatefulOrderEventV1`): a long-term or conditional order was placed.
    StatefulPlaced { order: Order },
    /// On-chain (`StatefulOrderEventV1.orderRemoval`): a stateful order was cancelled, expired
    /// or removed.
    StatefulRemoved {
        order_id: OrderId,
        reason: RemovalReason,
    },
}

impl Chain {
    /// Records an event for the sink, now.
    pub(super) fn emit(&mut self, event: ChainEvent) {
        self.events.push(event);
    }

    /// Records an on-chain event of the next block (a match or removal made between blocks
    /// counts among that block's operations, which run before its txs).
    pub(super) fn emit_in_next_block(&mut self, event: ChainEvent) {
        self.next_block_events.push(event);
    }

    /// The events recorded since the last call.
    pub(crate) fn take_events(&mut self) -> Vec<ChainEvent> {
        std::mem::take(&mut self.events)
    }
}
