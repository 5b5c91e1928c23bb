//! [`OrderGateway`]: what the client needs from the chain, the chain's answers
//! ([`ChainError`], [`codes`], [`TxOutcome`]), and [`DydxGateway`], the real implementation
//! over the `dydx` client crate (in `dydx.rs`), with its [`NonceMode`] (in `nonces.rs`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta_core::{BoxError, GoodTil, OrderId};

mod dydx;
mod nonces;

pub use self::dydx::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DydxGateway, GatewayOptions, MISMATCH_RETRIES,
    install_crypto_provider,
};
pub use self::nonces::{NonceMode, TIMESTAMP_NONCE_CUTOFF};

/// Chain error codes ordermeta acts on, with their codespace. From v4-chain
/// `protocol/x/clob/types/errors.go` and cosmos-sdk `types/errors/errors.go`.
pub mod codes {
    /// Codespace of the dYdX order book module.
    pub const CODESPACE_CLOB: &str = "clob";
    /// Codespace of the Cosmos SDK core errors.
    pub const CODESPACE_SDK: &str = "sdk";
    /// clob 7 `ErrOrderIsCanceled`: re-placement at or below a recorded cancel's GTB.
    pub const ORDER_IS_CANCELED: u32 = 7;
    /// clob 9 `ErrMemClobCancelAlreadyExists`: a short-term cancel with a GTB <= an earlier one.
    pub const CANCEL_ALREADY_EXISTS: u32 = 9;
    /// clob 10 `ErrHeightExceedsGoodTilBlock`: the GTB is below the next block height.
    pub const HEIGHT_EXCEEDS_GOOD_TIL_BLOCK: u32 = 10;
    /// clob 11 `ErrGoodTilBlockExceedsShortBlockWindow`.
    pub const GOOD_TIL_BLOCK_EXCEEDS_SHORT_BLOCK_WINDOW: u32 = 11;
    /// clob 29 `ErrInvalidStatefulOrderCancellation`: cancel GTBT below the order's.
    pub const INVALID_STATEFUL_ORDER_CANCELLATION: u32 = 29;
    /// clob 32 `ErrStatefulOrderCancellationAlreadyExists`: a duplicate uncommitted cancel.
    pub const STATEFUL_CANCEL_ALREADY_EXISTS: u32 = 32;
    /// clob 3003 `ErrTimeExceedsGoodTilBlockTime`: the GTBT is not after the previous block time.
    pub const TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME: u32 = 3003;
    /// clob 3004 `ErrGoodTilBlockTimeExceedsStatefulOrderTimeWindow` (95 days).
    pub const GOOD_TIL_BLOCK_TIME_EXCEEDS_WINDOW: u32 = 3004;
    /// clob 3006 `ErrStatefulOrderDoesNotExist`: filled, expired, cancelled or never placed.
    pub const STATEFUL_ORDER_DOES_NOT_EXIST: u32 = 3006;
    /// clob 3010 `ErrStatefulOrderCancellationFailedForAlreadyRemovedOrder`: a stateful cancel
    /// failed in its block because the order was fully filled or removed since the previous
    /// block (`x/clob/keeper/msg_server_cancel_orders.go`).
    pub const STATEFUL_CANCEL_FAILED_ORDER_REMOVED: u32 = 3010;
    /// clob 5001 `ErrBlockRateLimitExceeded`.
    pub const BLOCK_RATE_LIMIT_EXCEEDED: u32 = 5001;
    /// sdk 32 `ErrWrongSequence`: account sequence mismatch, or a timestamp nonce refused.
    pub const SDK_WRONG_SEQUENCE: u32 = 32;

    // `MsgPlaceOrder.ValidateBasic` (`x/clob/types/message_place_order.go`): refused by the
    // client before anything is recorded (see `PlaceError::Invalid`).

    /// Codespace of the subaccounts module.
    pub const CODESPACE_SUBACCOUNTS: &str = "subaccounts";
    /// subaccounts 200 `ErrInvalidSubaccountIdNumber`: subaccount number above 128 000.
    pub const INVALID_SUBACCOUNT_ID_NUMBER: u32 = 200;
    /// subaccounts 201 `ErrInvalidSubaccountIdOwner`: the owner is not a `dydx1…` address.
    pub const INVALID_SUBACCOUNT_ID_OWNER: u32 = 201;
    /// clob 3 `ErrInvalidOrderSide`.
    pub const INVALID_ORDER_SIDE: u32 = 3;
    /// clob 4 `ErrInvalidOrderQuantums`: quantums 0.
    pub const INVALID_ORDER_QUANTUMS: u32 = 4;
    /// clob 5 `ErrInvalidOrderGoodTilBlock`: a short-term order with GTB 0.
    pub const INVALID_ORDER_GOOD_TIL_BLOCK: u32 = 5;
    /// clob 6 `ErrInvalidOrderSubticks`: subticks 0 (except TWAP).
    pub const INVALID_ORDER_SUBTICKS: u32 = 6;
    /// clob 12 `ErrInvalidPlaceOrder`: TWAP parameters missing or out of range.
    pub const INVALID_PLACE_ORDER: u32 = 12;
    /// clob 44 `ErrInvalidTimeInForce`.
    pub const INVALID_TIME_IN_FORCE: u32 = 44;
    /// clob 48 `ErrDeprecatedField`: fill-or-kill (checked first).
    pub const DEPRECATED_FIELD: u32 = 48;
    /// clob 50 `ErrInvalidBuilderCode`.
    pub const INVALID_BUILDER_CODE: u32 = 50;
    /// clob 3000 `ErrInvalidOrderFlag`: flags other than 0/32/64/128/256.
    pub const INVALID_ORDER_FLAG: u32 = 3000;
    /// clob 3001 `ErrInvalidStatefulOrderGoodTilBlockTime`: a stateful order with GTBT 0.
    pub const INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME: u32 = 3001;
    /// clob 3002 `ErrLongTermOrdersCannotRequireImmediateExecution`: long-term IOC.
    pub const LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION: u32 = 3002;
    /// clob 6000 `ErrInvalidConditionType`: conditional without a condition type, or a
    /// non-conditional order with one.
    pub const INVALID_CONDITION_TYPE: u32 = 6000;
    /// clob 6001 `ErrInvalidConditionalOrderTriggerSubticks`: conditional with trigger 0, or a
    /// non-conditional order with a trigger.
    pub const INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS: u32 = 6001;
    /// clob 9003 `ErrReduceOnlyDisabled`: reduce-only on an order that is not IOC.
    pub const REDUCE_ONLY_DISABLED: u32 = 9003;
    /// clob 11000 `ErrInvalidOrderRouterAddress`.
    pub const INVALID_ORDER_ROUTER_ADDRESS: u32 = 11000;
}

/// The chain's clock: latest committed height and that block's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainClock {
    /// Latest committed block height.
    pub height: u32,
    /// That block's time, unix seconds.
    pub block_time: u32,
}

/// A non-zero result code from the node, as the chain returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainError {
    /// Module codespace (`clob`, `sdk`, …).
    pub codespace: String,
    /// The module's error code.
    pub code: u32,
    /// The node's log line (for people; never matched on).
    pub log: String,
}

impl ChainError {
    /// Whether this is `code` in the `clob` codespace.
    pub fn is_clob(&self, code: u32) -> bool {
        self.codespace == codes::CODESPACE_CLOB && self.code == code
    }

    /// Whether this is the SDK's account sequence mismatch.
    pub fn is_sequence_mismatch(&self) -> bool {
        self.codespace == codes::CODESPACE_SDK && self.code == codes::SDK_WRONG_SEQUENCE
    }
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain error {}/{}: {}",
            self.codespace, self.code, self.log
        )
    }
}

impl std::error::Error for ChainError {}

/// The result of executing a tx in a block (DeliverTx), as the node's tx service
/// (`cosmos.tx.v1beta1.Service/GetTx`) reports it. A stateful place or cancel that CheckTx
/// accepted can still fail here (the order filled, was cancelled or removed in between).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxOutcome {
    /// Height of the block that included the tx.
    pub height: u32,
    /// `Ok` for code 0, else the chain's error.
    pub result: Result<(), ChainError>,
}

/// What a gateway call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The node answered and refused the transaction.
    #[error(transparent)]
    Rejected(ChainError),
    /// The node could not be reached, or the connection failed mid-call; the tx may or may
    /// not have been received.
    #[error("node unavailable: {source}")]
    Unavailable {
        /// Transport error.
        #[source]
        source: BoxError,
    },
    /// The call did not complete within its deadline (see
    /// [`GatewayOptions`](crate::GatewayOptions)). For a broadcast the outcome is unknown:
    /// the node may have received, and admitted, the transaction.
    #[error("node call `{operation}` did not complete within {after:?}")]
    Timeout {
        /// The gateway call (`connect`, `clock`, `place`, `cancel`, `batch_cancel`).
        operation: &'static str,
        /// The deadline it missed.
        after: Duration,
    },
    /// Building or signing the transaction failed locally; nothing was sent.
    #[error("could not build the transaction: {source}")]
    Build {
        /// Cause.
        #[source]
        source: BoxError,
    },
    /// The gateway does not implement this call (e.g. [`OrderGateway::tx_result`] of a
    /// gateway written before it existed); the client then keeps the node's first answer.
    #[error("the gateway does not support `{operation}`")]
    Unsupported {
        /// The call.
        operation: &'static str,
    },
}

impl GatewayError {
    /// The chain error, if the node refused the tx.
    pub fn chain(&self) -> Option<&ChainError> {
        match self {
            GatewayError::Rejected(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the call failed in transport ([`Unavailable`](Self::Unavailable) or
    /// [`Timeout`](Self::Timeout)): the node may not have answered, so an idempotent call
    /// (a cancel) may be sent again. Never true for a refusal by the chain.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            GatewayError::Unavailable { .. } | GatewayError::Timeout { .. }
        )
    }

    fn unavailable(e: impl Into<BoxError>) -> Self {
        GatewayError::Unavailable { source: e.into() }
    }

    fn build(e: impl Into<BoxError>) -> Self {
        GatewayError::Build { source: e.into() }
    }
}

/// What the cancellation logic needs from the chain. Mock it with `MockOrderGateway`
/// (feature `mock`) to test logic; use [`DydxGateway`] for a real node.
///
/// Every call must complete or fail within a deadline ([`GatewayError::Timeout`]): the
/// client adds none of its own around gateway calls. Implementations do not retry
/// placements (re-signing a tx the node refused with `sdk/32` is not a retry: the node
/// admitted nothing of it); the client retries cancels on
/// [transport](GatewayError::is_transport) errors.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait OrderGateway: Send + Sync + 'static {
    /// Bech32 address of the account that signs placements and cancels.
    fn signer(&self) -> String;

    /// Latest committed height and block time.
    async fn clock(&self) -> Result<ChainClock, GatewayError>;

    /// Broadcasts `MsgPlaceOrder`; returns the tx hash.
    async fn place(&self, order: Order) -> Result<String, GatewayError>;

    /// Broadcasts `MsgCancelOrder` for `order_id` with `good_til`; returns the tx hash.
    async fn cancel(&self, order_id: &OrderId, good_til: GoodTil) -> Result<String, GatewayError>;

    /// Broadcasts `MsgBatchCancel` of short-term orders of one subaccount: `(clob_pair_id,
    /// client_ids)` groups, at most 100 ids in all; returns the tx hash.
    async fn batch_cancel(
        &self,
        subaccount_number: u32,
        batches: Vec<(u32, Vec<u32>)>,
        good_til_block: u32,
    ) -> Result<String, GatewayError>;

    /// The execution result of the tx `tx_hash` once a block included it; `Ok(None)` while
    /// none has (it waits in the mempool, or the node does not know it: short-term and
    /// refused txs never enter a block). How the client confirms stateful places and cancels.
    ///
    /// The default answers [`GatewayError::Unsupported`], so gateways written before this
    /// call keep compiling; the client then takes the node's CheckTx answer as final.
    async fn tx_result(&self, tx_hash: &str) -> Result<Option<TxOutcome>, GatewayError> {
        let _ = tx_hash;
        Err(GatewayError::Unsupported {
            operation: "tx_result",
        })
    }
}
