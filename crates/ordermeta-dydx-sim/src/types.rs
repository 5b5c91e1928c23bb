//! Public data types of the control API.

use dydx_proto::dydxprotocol::clob::{Order, OrderId, msg_cancel_order, order};
use dydx_proto::dydxprotocol::subaccounts::SubaccountId;

use crate::error::ChainError;
use crate::tx::TxMsg;

/// `OrderId.order_flags` values.
pub mod order_flags {
    /// Short-term order (good-til-block).
    pub const SHORT_TERM: u32 = 0;
    /// Conditional order (stateful, good-til-block-time).
    pub const CONDITIONAL: u32 = 32;
    /// Long-term order (stateful, good-til-block-time).
    pub const LONG_TERM: u32 = 64;
    /// TWAP order (stateful). Passes `ValidateBasic`; not simulated beyond it.
    pub const TWAP: u32 = 128;
    /// TWAP suborder (stateful). Passes `ValidateBasic`; not simulated beyond it.
    pub const TWAP_SUBORDER: u32 = 256;

    /// Whether `flags` is one of the stateful kinds (conditional, long-term, TWAP, TWAP suborder),
    /// as `OrderId.IsStatefulOrder` (v4-chain `protocol/x/clob/types/order_id.go`).
    pub fn is_stateful(flags: u32) -> bool {
        matches!(flags, CONDITIONAL | LONG_TERM | TWAP | TWAP_SUBORDER)
    }
}

/// An order's or cancel's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoodTil {
    /// `good_til_block`: a block height (short-term).
    Block(u32),
    /// `good_til_block_time`: unix seconds (stateful).
    BlockTime(u32),
}

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// Stateful order accepted by CheckTx and waiting in the mempool: it is executed (and, if
    /// that succeeds, rests on the book) when the next block is produced. Cannot fill yet.
    PlacePending,
    /// Resting on the book, can fill.
    Open,
    /// Stateful order with an accepted but uncommitted cancel: the cancel is executed at the
    /// next block (and can still fail there, e.g. if the order fills first).
    CancelPending,
    /// Removed by a cancel.
    Canceled,
    /// Fully filled.
    Filled,
    /// Short-term: the current height reached its GTB. Stateful: a block time reached its GTBT.
    Expired,
    /// Removed by the chain without a cancel: IOC/FOK orders (the simulator has no liquidity),
    /// or [`SimHandle::remove_order`](crate::SimHandle::remove_order).
    Removed,
}

impl OrderStatus {
    /// `true` while the order can still fill (`Open` or `CancelPending`).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Open | Self::CancelPending)
    }
}

/// The simulator's view of one order, keyed by its full `OrderId`.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderState {
    /// The order id.
    pub order_id: OrderId,
    /// The order as last placed (a short-term replacement overwrites it).
    pub order: Order,
    /// Current status.
    pub status: OrderStatus,
    /// Expiry of the order.
    pub good_til: GoodTil,
    /// Order size in base quantums.
    pub quantums: u64,
    /// Filled amount in base quantums.
    pub filled_quantums: u64,
    /// Latest block height when first placed.
    pub placed_at_height: u32,
    /// Latest block height at the last status change.
    pub updated_at_height: u32,
}

/// How much of an order [`SimHandle::fill`](crate::SimHandle::fill) fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// The whole remaining size.
    Full,
    /// This many base quantums (at most the remaining size).
    Quantums(u64),
}

/// An account as the node knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    /// Bech32 address.
    pub address: String,
    /// Account number (part of every signature).
    pub account_number: u64,
    /// Sequence in **committed** state (what `cosmos.auth.v1beta1.Query/Account` serves): it
    /// counts the stateful txs signed with a plain sequence that blocks have included.
    pub sequence: u64,
    /// Sequence in the CheckTx copy of the state: the next plain sequence a stateful tx must
    /// carry to be admitted now. Equals `sequence` plus the accepted stateful txs still waiting
    /// for a block.
    pub check_tx_sequence: u64,
    /// The account's accepted timestamp nonces in committed state (at most 20, ascending).
    pub timestamp_nonces: Vec<u64>,
    /// The highest timestamp nonce ejected from that list (committed state); a new nonce must
    /// be above it. `None` until the account first uses a timestamp nonce.
    pub max_ejected_nonce: Option<u64>,
    /// Compressed secp256k1 public key, once known.
    pub pubkey: Option<Vec<u8>>,
}

/// The result of executing a tx in a block (DeliverTx), as `GetTx` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxResult {
    /// Hash of the tx (upper-case hex).
    pub tx_hash: String,
    /// Height of the block that included it.
    pub height: u32,
    /// `Ok` for code 0, else the error the execution ended with.
    pub result: Result<(), ChainError>,
}

impl TxResult {
    /// The code (0 on success).
    pub fn code(&self) -> u32 {
        self.result.as_ref().err().map_or(0, |e| e.code)
    }

    /// The codespace (empty on success).
    pub fn codespace(&self) -> &str {
        self.result
            .as_ref()
            .err()
            .map_or("", |e| e.codespace.as_str())
    }
}

/// What a received message was, with its decoded fields.
#[derive(Clone, Debug, PartialEq)]
pub enum MsgKind {
    /// `MsgPlaceOrder`.
    PlaceOrder {
        /// Order id.
        order_id: Option<OrderId>,
        /// Good-til of the order.
        good_til: Option<GoodTil>,
        /// Side (`order::Side` as i32).
        side: i32,
        /// Size in base quantums.
        quantums: u64,
        /// Price in subticks.
        subticks: u64,
        /// Time in force (`order::TimeInForce` as i32).
        time_in_force: i32,
    },
    /// `MsgCancelOrder`.
    CancelOrder {
        /// Order id to cancel.
        order_id: Option<OrderId>,
        /// Good-til of the cancel.
        good_til: Option<GoodTil>,
    },
    /// `MsgBatchCancel`.
    BatchCancel {
        /// Subaccount whose short-term orders are cancelled.
        subaccount_id: Option<SubaccountId>,
        /// `(clob_pair_id, client_ids)` per batch.
        batches: Vec<(u32, Vec<u32>)>,
        /// Good-til-block of every cancel.
        good_til_block: u32,
    },
    /// A message type the simulator does not implement (rejected).
    Other {
        /// Its type URL.
        type_url: String,
    },
    /// Bytes that did not decode as a tx.
    Undecodable,
}

impl MsgKind {
    pub(crate) fn from_msg(msg: &TxMsg) -> Self {
        match msg {
            TxMsg::Place(place) => {
                let order = place.order.clone().unwrap_or_default();
                Self::PlaceOrder {
                    order_id: order.order_id.clone(),
                    good_til: order.good_til_oneof.map(|g| match g {
                        order::GoodTilOneof::GoodTilBlock(b) => GoodTil::Block(b),
                        order::GoodTilOneof::GoodTilBlockTime(t) => GoodTil::BlockTime(t),
                    }),
                    side: order.side,
                    quantums: order.quantums,
                    subticks: order.subticks,
                    time_in_force: order.time_in_force,
                }
            }
            TxMsg::Cancel(cancel) => Self::CancelOrder {
                order_id: cancel.order_id.clone(),
                good_til: cancel.good_til_oneof.map(|g| match g {
                    msg_cancel_order::GoodTilOneof::GoodTilBlock(b) => GoodTil::Block(b),
                    msg_cancel_order::GoodTilOneof::GoodTilBlockTime(t) => GoodTil::BlockTime(t),
                }),
            },
            TxMsg::Batch(batch) => Self::BatchCancel {
                subaccount_id: batch.subaccount_id.clone(),
                batches: batch
                    .short_term_cancels
                    .iter()
                    .map(|b| (b.clob_pair_id, b.client_ids.clone()))
                    .collect(),
                good_til_block: batch.good_til_block,
            },
            TxMsg::Other(type_url) => Self::Other {
                type_url: type_url.clone(),
            },
        }
    }

    /// The order id of a place or cancel.
    pub fn order_id(&self) -> Option<&OrderId> {
        match self {
            Self::PlaceOrder { order_id, .. } | Self::CancelOrder { order_id, .. } => {
                order_id.as_ref()
            }
            _ => None,
        }
    }
}

/// One message received through `BroadcastTx`, with the result the node returned.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMsg {
    /// Position in the log, from 0.
    pub index: u64,
    /// Latest block height when received.
    pub height: u32,
    /// Hash of the carrying tx.
    pub tx_hash: String,
    /// Signer address (subaccount owner), if the tx decoded.
    pub signer: Option<String>,
    /// Sequence in the tx's signer info, if the tx decoded.
    pub tx_sequence: Option<u64>,
    /// The message and its decoded fields.
    pub kind: MsgKind,
    /// The CheckTx answer `BroadcastTx` returned: `Ok` for code 0, else the chain error.
    pub result: Result<(), ChainError>,
    /// For a stateful message accepted by CheckTx: its execution in the block that included
    /// it (`None` until that block is produced). Always `None` for short-term messages, which
    /// never go into a block, and for rejected ones.
    pub delivered: Option<TxResult>,
}

impl ReceivedMsg {
    /// Whether the message is stateful (a place or cancel of a conditional, long-term or
    /// TWAP order id): it is executed in a block after CheckTx.
    pub fn is_stateful(&self) -> bool {
        self.kind
            .order_id()
            .is_some_and(|id| order_flags::is_stateful(id.order_flags))
    }

    /// The final outcome: a CheckTx rejection, a short-term message's CheckTx success, or a
    /// stateful message's block execution result; `None` while a stateful message accepted by
    /// CheckTx waits for its block.
    pub fn final_result(&self) -> Option<&Result<(), ChainError>> {
        match (&self.result, &self.delivered) {
            (Err(_), _) => Some(&self.result),
            (Ok(()), Some(delivered)) => Some(&delivered.result),
            (Ok(()), None) if self.is_stateful() => None,
            (Ok(()), None) => Some(&self.result),
        }
    }

    /// The returned code (0 on success).
    pub fn code(&self) -> u32 {
        self.result.as_ref().err().map_or(0, |e| e.code)
    }

    /// The returned codespace (empty on success).
    pub fn codespace(&self) -> &str {
        self.result
            .as_ref()
            .err()
            .map_or("", |e| e.codespace.as_str())
    }
}
