//! Errors: the simulator's own ([`SimError`]) and the chain's ([`ChainError`], [`codes`]).

use std::fmt;

/// Failure of a simulator operation (start, control API). Chain-level rejections of txs are
/// not `SimError`s: they are [`ChainError`]s returned inside the tx response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The configuration is unusable (bad mnemonic, bad address, …).
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// Binding or serving the gRPC port failed.
    #[error("gRPC transport: {0}")]
    Transport(String),
    /// I/O error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The order is unknown to the simulator.
    #[error("order not found")]
    OrderNotFound,
    /// The order exists but cannot take this action in its current status.
    #[error("order is not open (status {0:?})")]
    OrderNotOpen(crate::OrderStatus),
    /// A control call had an invalid argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// A chain error as the node returns it in a `TxResponse`: code, codespace and log.
///
/// Consumers should classify by `(codespace, code)`: code 32 is `ErrWrongSequence` in codespace
/// `sdk` but `ErrStatefulOrderCancellationAlreadyExists` in codespace `clob`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainError {
    /// Module codespace, e.g. `"sdk"` or `"clob"`.
    pub codespace: String,
    /// Registered error code, never 0.
    pub code: u32,
    /// Human-readable log, formatted like the chain: `"<detail>: <registered description>"`.
    pub log: String,
}

impl ChainError {
    /// Builds an error whose log is `"{detail}: {description}"` (cosmos `errorsmod.Wrap` style).
    pub fn new(codespace: &str, code: u32, detail: impl fmt::Display) -> Self {
        let description = codes::describe(codespace, code);
        let detail = detail.to_string();
        let log = if detail.is_empty() {
            description.to_owned()
        } else {
            format!("{detail}: {description}")
        };
        Self {
            codespace: codespace.to_owned(),
            code,
            log,
        }
    }

    /// `true` if this is `(codespace, code)`.
    pub fn is(&self, codespace: &str, code: u32) -> bool {
        self.codespace == codespace && self.code == code
    }

    pub(crate) fn sdk(code: u32, detail: impl fmt::Display) -> Self {
        Self::new(codes::CODESPACE_SDK, code, detail)
    }

    pub(crate) fn clob(code: u32, detail: impl fmt::Display) -> Self {
        Self::new(codes::CODESPACE_CLOB, code, detail)
    }

    pub(crate) fn subaccounts(code: u32, detail: impl fmt::Display) -> Self {
        Self::new(codes::CODESPACE_SUBACCOUNTS, code, detail)
    }
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: {}", self.codespace, self.code, self.log)
    }
}

impl std::error::Error for ChainError {}

/// The error codes the simulator returns, with the codespace they belong to.
///
/// Mirrors cosmos-sdk `types/errors/errors.go` (codespace `sdk`) and v4-chain
/// `protocol/x/clob/types/errors.go` (codespace `clob`).
pub mod codes {
    /// Codespace of cosmos-sdk errors.
    pub const CODESPACE_SDK: &str = "sdk";
    /// Codespace of the dYdX clob module.
    pub const CODESPACE_CLOB: &str = "clob";
    /// Codespace of the dYdX subaccounts module (subaccount id validation).
    pub const CODESPACE_SUBACCOUNTS: &str = "subaccounts";

    /// `sdk` codespace.
    pub mod sdk {
        /// `ErrTxDecode`.
        pub const TX_DECODE: u32 = 2;
        /// `ErrUnauthorized` (bad signature, wrong chain id or account number).
        pub const UNAUTHORIZED: u32 = 4;
        /// `ErrInvalidAddress`.
        pub const INVALID_ADDRESS: u32 = 7;
        /// `ErrInvalidPubKey`.
        pub const INVALID_PUBKEY: u32 = 8;
        /// `ErrUnknownAddress` (account does not exist).
        pub const UNKNOWN_ADDRESS: u32 = 9;
        /// `ErrInvalidRequest`.
        pub const INVALID_REQUEST: u32 = 18;
        /// `ErrWrongSequence` (account sequence mismatch).
        pub const WRONG_SEQUENCE: u32 = 32;
    }

    /// `subaccounts` codespace (v4-chain `protocol/x/subaccounts/types/errors.go`).
    pub mod subaccounts {
        /// `ErrInvalidSubaccountIdNumber`: subaccount number above 128 000.
        pub const INVALID_SUBACCOUNT_ID_NUMBER: u32 = 200;
        /// `ErrInvalidSubaccountIdOwner`: owner is not a valid bech32 address.
        pub const INVALID_SUBACCOUNT_ID_OWNER: u32 = 201;
    }

    /// `clob` codespace.
    pub mod clob {
        /// `ErrInvalidOrderSide`.
        pub const INVALID_ORDER_SIDE: u32 = 3;
        /// `ErrInvalidOrderQuantums`.
        pub const INVALID_ORDER_QUANTUMS: u32 = 4;
        /// `ErrInvalidOrderGoodTilBlock`.
        pub const INVALID_ORDER_GOOD_TIL_BLOCK: u32 = 5;
        /// `ErrInvalidOrderSubticks`.
        pub const INVALID_ORDER_SUBTICKS: u32 = 6;
        /// `ErrOrderIsCanceled`: re-placing with GTB <= a recorded cancel's GTB.
        pub const ORDER_IS_CANCELED: u32 = 7;
        /// `ErrMemClobCancelAlreadyExists`: a cancel with GTB >= this one exists.
        pub const CANCEL_ALREADY_EXISTS: u32 = 9;
        /// `ErrHeightExceedsGoodTilBlock`: GTB < next block height.
        pub const HEIGHT_EXCEEDS_GOOD_TIL_BLOCK: u32 = 10;
        /// `ErrGoodTilBlockExceedsShortBlockWindow`: GTB > next height + ShortBlockWindow.
        pub const GOOD_TIL_BLOCK_EXCEEDS_SHORT_BLOCK_WINDOW: u32 = 11;
        /// `ErrInvalidPlaceOrder`.
        pub const INVALID_PLACE_ORDER: u32 = 12;
        /// `ErrInvalidReplacement`.
        pub const INVALID_REPLACEMENT: u32 = 20;
        /// `ErrOrderFullyFilled`.
        pub const ORDER_FULLY_FILLED: u32 = 24;
        /// `ErrInvalidStatefulOrderCancellation`: cancel GTBT < order GTBT.
        pub const INVALID_STATEFUL_ORDER_CANCELLATION: u32 = 29;
        /// `ErrStatefulOrderCancellationAlreadyExists`: duplicate uncommitted stateful cancel.
        pub const STATEFUL_ORDER_CANCELLATION_ALREADY_EXISTS: u32 = 32;
        /// `ErrInvalidTimeInForce`: a time-in-force outside the enum.
        pub const INVALID_TIME_IN_FORCE: u32 = 44;
        /// `ErrInvalidBatchCancel`.
        pub const INVALID_BATCH_CANCEL: u32 = 45;
        /// `ErrBatchCancelFailed`: no cancel of the batch succeeded.
        pub const BATCH_CANCEL_FAILED: u32 = 46;
        /// `ErrDeprecatedField`: fill-or-kill orders.
        pub const DEPRECATED_FIELD: u32 = 48;
        /// `ErrInvalidBuilderCode`: bad builder address or fee ppm.
        pub const INVALID_BUILDER_CODE: u32 = 50;
        /// `ErrInvalidOrderFlag`.
        pub const INVALID_ORDER_FLAG: u32 = 3000;
        /// `ErrInvalidStatefulOrderGoodTilBlockTime`.
        pub const INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME: u32 = 3001;
        /// `ErrLongTermOrdersCannotRequireImmediateExecution`.
        pub const LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION: u32 = 3002;
        /// `ErrTimeExceedsGoodTilBlockTime`: GTBT <= previous block time.
        pub const TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME: u32 = 3003;
        /// `ErrGoodTilBlockTimeExceedsStatefulOrderTimeWindow`: GTBT > previous block time + 95 days.
        pub const GOOD_TIL_BLOCK_TIME_EXCEEDS_STATEFUL_ORDER_TIME_WINDOW: u32 = 3004;
        /// `ErrStatefulOrderAlreadyExists`.
        pub const STATEFUL_ORDER_ALREADY_EXISTS: u32 = 3005;
        /// `ErrStatefulOrderDoesNotExist`.
        pub const STATEFUL_ORDER_DOES_NOT_EXIST: u32 = 3006;
        /// `ErrStatefulOrderCollateralizationCheckFailed`.
        pub const STATEFUL_ORDER_COLLATERALIZATION_CHECK_FAILED: u32 = 3007;
        /// `ErrStatefulOrderPreviouslyCancelled`.
        pub const STATEFUL_ORDER_PREVIOUSLY_CANCELLED: u32 = 3008;
        /// `ErrStatefulOrderPreviouslyRemoved`: placed in a block that removed the same id.
        pub const STATEFUL_ORDER_PREVIOUSLY_REMOVED: u32 = 3009;
        /// `ErrStatefulOrderCancellationFailedForAlreadyRemovedOrder`: a cancel executed in the
        /// block that removed (e.g. fully filled) its order.
        pub const STATEFUL_ORDER_CANCELLATION_FAILED_FOR_ALREADY_REMOVED_ORDER: u32 = 3010;
        /// `ErrBlockRateLimitExceeded`.
        pub const BLOCK_RATE_LIMIT_EXCEEDED: u32 = 5001;
        /// `ErrInvalidConditionType`.
        pub const INVALID_CONDITION_TYPE: u32 = 6000;
        /// `ErrInvalidConditionalOrderTriggerSubticks`.
        pub const INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS: u32 = 6001;
        /// `ErrReduceOnlyDisabled`: reduce-only on an order that is not IOC.
        pub const REDUCE_ONLY_DISABLED: u32 = 9003;
        /// `ErrInvalidOrderRouterAddress`.
        pub const INVALID_ORDER_ROUTER_ADDRESS: u32 = 11000;
    }

    /// The registered description of `(codespace, code)`, as the chain appends it to logs.
    pub fn describe(codespace: &str, code: u32) -> &'static str {
        match (codespace, code) {
            (CODESPACE_SDK, sdk::TX_DECODE) => "tx parse error",
            (CODESPACE_SDK, sdk::UNAUTHORIZED) => "unauthorized",
            (CODESPACE_SDK, sdk::INVALID_ADDRESS) => "invalid address",
            (CODESPACE_SDK, sdk::INVALID_PUBKEY) => "invalid pubkey",
            (CODESPACE_SDK, sdk::UNKNOWN_ADDRESS) => "unknown address",
            (CODESPACE_SDK, sdk::INVALID_REQUEST) => "invalid request",
            (CODESPACE_SDK, sdk::WRONG_SEQUENCE) => "incorrect account sequence",
            (CODESPACE_SUBACCOUNTS, subaccounts::INVALID_SUBACCOUNT_ID_NUMBER) => {
                "subaccount id number cannot exceed 128000"
            }
            (CODESPACE_SUBACCOUNTS, subaccounts::INVALID_SUBACCOUNT_ID_OWNER) => {
                "subaccount id owner is an invalid address"
            }
            (CODESPACE_CLOB, clob::INVALID_ORDER_SIDE) => "Invalid order side",
            (CODESPACE_CLOB, clob::INVALID_ORDER_QUANTUMS) => "Invalid order quantums",
            (CODESPACE_CLOB, clob::INVALID_ORDER_GOOD_TIL_BLOCK) => "Invalid order goodTilBlock",
            (CODESPACE_CLOB, clob::INVALID_ORDER_SUBTICKS) => "Invalid order subticks",
            (CODESPACE_CLOB, clob::ORDER_IS_CANCELED) => {
                "Attempt to place an order that is already canceled"
            }
            (CODESPACE_CLOB, clob::CANCEL_ALREADY_EXISTS) => {
                "A cancel already exists in the memclob for this order with a greater than or equal GoodTilBlock"
            }
            (CODESPACE_CLOB, clob::HEIGHT_EXCEEDS_GOOD_TIL_BLOCK) => {
                "The next block height is greater than the GoodTilBlock of the message"
            }
            (CODESPACE_CLOB, clob::GOOD_TIL_BLOCK_EXCEEDS_SHORT_BLOCK_WINDOW) => {
                "The GoodTilBlock of the message is further than ShortBlockWindow blocks into the future"
            }
            (CODESPACE_CLOB, clob::INVALID_PLACE_ORDER) => "MsgPlaceOrder is invalid",
            (CODESPACE_CLOB, clob::INVALID_REPLACEMENT) => {
                "An order with the same `OrderId` already exists for this CLOB with a greater-than-or-equal `GoodTilBlock` or Order Hash"
            }
            (CODESPACE_CLOB, clob::ORDER_FULLY_FILLED) => "Order is fully filled",
            (CODESPACE_CLOB, clob::INVALID_STATEFUL_ORDER_CANCELLATION) => {
                "Invalid stateful order cancellation"
            }
            (CODESPACE_CLOB, clob::STATEFUL_ORDER_CANCELLATION_ALREADY_EXISTS) => {
                "Existing stateful order cancellation has higher-or-equal priority than the new one"
            }
            (CODESPACE_CLOB, clob::INVALID_TIME_IN_FORCE) => "invalid time in force",
            (CODESPACE_CLOB, clob::INVALID_BATCH_CANCEL) => "Invalid batch cancel message",
            (CODESPACE_CLOB, clob::DEPRECATED_FIELD) => "This field has been deprecated",
            (CODESPACE_CLOB, clob::INVALID_BUILDER_CODE) => "Invalid builder code",
            (CODESPACE_CLOB, clob::BATCH_CANCEL_FAILED) => "Batch cancel has failed",
            (CODESPACE_CLOB, clob::INVALID_ORDER_FLAG) => "Invalid order flags",
            (CODESPACE_CLOB, clob::INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME) => {
                "Invalid order goodTilBlockTime"
            }
            (CODESPACE_CLOB, clob::LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION) => {
                "Stateful orders cannot require immediate execution"
            }
            (CODESPACE_CLOB, clob::TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME) => {
                "The block time is greater than the GoodTilBlockTime of the message"
            }
            (CODESPACE_CLOB, clob::GOOD_TIL_BLOCK_TIME_EXCEEDS_STATEFUL_ORDER_TIME_WINDOW) => {
                "The GoodTilBlockTime of the message is further than StatefulOrderTimeWindow into the future"
            }
            (CODESPACE_CLOB, clob::STATEFUL_ORDER_ALREADY_EXISTS) => {
                "Existing stateful order has higher-or-equal priority than the new one"
            }
            (CODESPACE_CLOB, clob::STATEFUL_ORDER_DOES_NOT_EXIST) => {
                "Stateful order does not exist"
            }
            (CODESPACE_CLOB, clob::STATEFUL_ORDER_COLLATERALIZATION_CHECK_FAILED) => {
                "Stateful order collateralization check failed"
            }
            (CODESPACE_CLOB, clob::STATEFUL_ORDER_PREVIOUSLY_CANCELLED) => {
                "Stateful order was previously cancelled and therefore cannot be placed"
            }
            (CODESPACE_CLOB, clob::STATEFUL_ORDER_PREVIOUSLY_REMOVED) => {
                "Stateful order was previously removed and therefore cannot be placed"
            }
            (
                CODESPACE_CLOB,
                clob::STATEFUL_ORDER_CANCELLATION_FAILED_FOR_ALREADY_REMOVED_ORDER,
            ) => {
                "Stateful order cancellation failed because the order was already removed from state"
            }
            (CODESPACE_CLOB, clob::BLOCK_RATE_LIMIT_EXCEEDED) => "Block rate limit exceeded",
            (CODESPACE_CLOB, clob::INVALID_CONDITION_TYPE) => "Conditional type is invalid",
            (CODESPACE_CLOB, clob::INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS) => {
                "Conditional order trigger subticks is invalid"
            }
            (CODESPACE_CLOB, clob::REDUCE_ONLY_DISABLED) => {
                "Reduce-only is currently disabled for non-IOC orders"
            }
            (CODESPACE_CLOB, clob::INVALID_ORDER_ROUTER_ADDRESS) => "Invalid order router address",
            _ => "error",
        }
    }
}
