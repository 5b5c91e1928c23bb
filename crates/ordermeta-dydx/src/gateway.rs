//! [`OrderGateway`]: what cancellation needs from the chain, and [`DydxGateway`], its real
//! implementation over the `dydx` client crate.

use std::fmt;
use std::iter;

use async_trait::async_trait;
use dydx::node::sequencer::Nonce;
use dydx::node::{Account, NodeClient, NodeConfig, Wallet};
use dydx_proto::ToAny;
use dydx_proto::cosmos_sdk_proto::cosmos::tx::v1beta1::{BroadcastMode, BroadcastTxRequest};
use dydx_proto::dydxprotocol::clob::{
    MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder, Order, OrderBatch, msg_cancel_order,
};
use dydx_proto::dydxprotocol::subaccounts::SubaccountId;
use ordermeta_core::{BoxError, GoodTil, OrderId};
use tokio::sync::Mutex;

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
    /// clob 5001 `ErrBlockRateLimitExceeded`.
    pub const BLOCK_RATE_LIMIT_EXCEEDED: u32 = 5001;
    /// sdk 32 `ErrWrongSequence`: account sequence mismatch.
    pub const SDK_WRONG_SEQUENCE: u32 = 32;
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

/// What a gateway call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The node answered and refused the transaction.
    #[error(transparent)]
    Rejected(ChainError),
    /// The node could not be reached or did not answer in time; the tx may or may not have
    /// been received.
    #[error("node unavailable: {source}")]
    Unavailable {
        /// Transport error.
        #[source]
        source: BoxError,
    },
    /// Building or signing the transaction failed locally; nothing was sent.
    #[error("could not build the transaction: {source}")]
    Build {
        /// Cause.
        #[source]
        source: BoxError,
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

    fn unavailable(e: impl Into<BoxError>) -> Self {
        GatewayError::Unavailable { source: e.into() }
    }

    fn build(e: impl Into<BoxError>) -> Self {
        GatewayError::Build { source: e.into() }
    }
}

/// What the cancellation logic needs from the chain. Mock it with `MockOrderGateway`
/// (feature `mock`) to test logic; use [`DydxGateway`] for a real node.
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
}

/// The protobuf `OrderId` for a core [`OrderId`].
pub fn to_proto_order_id(id: &OrderId) -> dydx_proto::dydxprotocol::clob::OrderId {
    dydx_proto::dydxprotocol::clob::OrderId {
        subaccount_id: Some(SubaccountId {
            owner: id.owner.clone(),
            number: id.subaccount_number,
        }),
        client_id: id.client_id,
        order_flags: id.order_flags,
        clob_pair_id: id.clob_pair_id,
    }
}

/// The core [`OrderId`] of a protobuf `OrderId`; `None` without a subaccount.
pub fn from_proto_order_id(id: &dydx_proto::dydxprotocol::clob::OrderId) -> Option<OrderId> {
    let sub = id.subaccount_id.as_ref()?;
    Some(OrderId {
        owner: sub.owner.clone(),
        subaccount_number: sub.number,
        client_id: id.client_id,
        order_flags: id.order_flags,
        clob_pair_id: id.clob_pair_id,
    })
}

/// The real gateway: `dydx::node::NodeClient` plus the signing `Account`.
///
/// Transactions are signed with the client's own `TxBuilder` and broadcast through its
/// `tx` route, rather than with `NodeClient::cancel_order`, because the latter keeps only the
/// code of a failed tx and drops its codespace: clob code 32 (duplicate cancel) and sdk code
/// 32 (sequence mismatch) would then be told apart only by their log text.
///
/// Stateful messages use the account sequence, tracked locally and re-synced from the node
/// (then retried once) on a sequence mismatch. Calls are serialized on one connection.
pub struct DydxGateway {
    inner: Mutex<Inner>,
    signer: String,
}

struct Inner {
    client: NodeClient,
    account: Account,
}

impl fmt::Debug for DydxGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DydxGateway")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl DydxGateway {
    /// Connects to a node and loads account `index` of `wallet` (number and sequence).
    ///
    /// `NodeClient::connect` builds a TLS config even for `http://` endpoints, which needs a
    /// process-wide rustls crypto provider; if none is installed, this installs aws-lc-rs.
    pub async fn connect(
        config: NodeConfig,
        wallet: &Wallet,
        index: u32,
    ) -> Result<Self, GatewayError> {
        install_crypto_provider();
        let mut client = NodeClient::connect(config)
            .await
            .map_err(GatewayError::unavailable)?;
        let account = wallet
            .account(index, &mut client)
            .await
            .map_err(GatewayError::unavailable)?;
        Ok(Self::new(client, account))
    }

    /// Wraps a connected client and a loaded account.
    pub fn new(client: NodeClient, account: Account) -> Self {
        let signer = account.address().to_string();
        DydxGateway {
            inner: Mutex::new(Inner { client, account }),
            signer,
        }
    }

    async fn broadcast(
        &self,
        msg: dydx_proto::cosmos_sdk_proto::Any,
        stateful: bool,
    ) -> Result<String, GatewayError> {
        let mut inner = self.inner.lock().await;
        match inner.send(msg.clone(), stateful).await {
            Err(GatewayError::Rejected(e)) if stateful && e.is_sequence_mismatch() => {
                tracing::warn!(signer = %self.signer, "sequence mismatch: re-syncing and retrying once");
                inner.resync().await?;
                inner.send(msg, stateful).await
            }
            other => other,
        }
    }
}

/// Installs rustls' aws-lc-rs provider as the process default unless one is installed.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: some provider is then installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

impl Inner {
    async fn resync(&mut self) -> Result<(), GatewayError> {
        let address = self.account.address().clone();
        let (_, sequence) = self
            .client
            .query_address(&address)
            .await
            .map_err(GatewayError::unavailable)?;
        self.account.set_sequence_number(sequence);
        Ok(())
    }

    async fn send(
        &mut self,
        msg: dydx_proto::cosmos_sdk_proto::Any,
        stateful: bool,
    ) -> Result<String, GatewayError> {
        // Short-term txs are not sequence-checked by the chain, but are signed with the
        // current sequence like the client does.
        let sequence = self.account.sequence_number();
        self.account.set_next_nonce(Nonce::Sequence(sequence));
        let raw = self
            .client
            .builder
            .build_transaction(&self.account, iter::once(msg), None, None)
            .map_err(GatewayError::build)?;
        let tx_bytes = raw.to_bytes().map_err(GatewayError::build)?;
        let response = self
            .client
            .tx
            .broadcast_tx(BroadcastTxRequest {
                tx_bytes,
                mode: BroadcastMode::Sync as i32,
            })
            .await
            .map_err(GatewayError::unavailable)?
            .into_inner()
            .tx_response
            .ok_or_else(|| GatewayError::unavailable("broadcast response without tx_response"))?;
        if response.code != 0 {
            return Err(GatewayError::Rejected(ChainError {
                codespace: response.codespace,
                code: response.code,
                log: response.raw_log,
            }));
        }
        if stateful {
            self.account.set_sequence_number(sequence + 1);
        }
        Ok(response.txhash)
    }
}

#[async_trait]
impl OrderGateway for DydxGateway {
    fn signer(&self) -> String {
        self.signer.clone()
    }

    async fn clock(&self) -> Result<ChainClock, GatewayError> {
        let mut inner = self.inner.lock().await;
        let block = inner
            .client
            .latest_block()
            .await
            .map_err(GatewayError::unavailable)?;
        let header = block
            .header
            .ok_or_else(|| GatewayError::unavailable("latest block has no header"))?;
        let height = u32::try_from(header.height)
            .map_err(|_| GatewayError::unavailable("block height out of range"))?;
        let block_time = header
            .time
            .and_then(|t| u32::try_from(t.seconds).ok())
            .ok_or_else(|| GatewayError::unavailable("latest block has no valid time"))?;
        Ok(ChainClock { height, block_time })
    }

    async fn place(&self, order: Order) -> Result<String, GatewayError> {
        let stateful = order
            .order_id
            .as_ref()
            .is_some_and(|id| id.order_flags != ordermeta_core::ORDER_FLAGS_SHORT_TERM);
        let msg = MsgPlaceOrder { order: Some(order) }.to_any();
        self.broadcast(msg, stateful).await
    }

    async fn cancel(&self, order_id: &OrderId, good_til: GoodTil) -> Result<String, GatewayError> {
        let good_til_oneof = match good_til {
            GoodTil::Block(b) => msg_cancel_order::GoodTilOneof::GoodTilBlock(b),
            GoodTil::BlockTime(t) => msg_cancel_order::GoodTilOneof::GoodTilBlockTime(t),
        };
        let msg = MsgCancelOrder {
            order_id: Some(to_proto_order_id(order_id)),
            good_til_oneof: Some(good_til_oneof),
        }
        .to_any();
        self.broadcast(msg, order_id.is_stateful()).await
    }

    async fn batch_cancel(
        &self,
        subaccount_number: u32,
        batches: Vec<(u32, Vec<u32>)>,
        good_til_block: u32,
    ) -> Result<String, GatewayError> {
        let msg = MsgBatchCancel {
            subaccount_id: Some(SubaccountId {
                owner: self.signer.clone(),
                number: subaccount_number,
            }),
            short_term_cancels: batches
                .into_iter()
                .map(|(clob_pair_id, client_ids)| OrderBatch {
                    clob_pair_id,
                    client_ids,
                })
                .collect(),
            good_til_block,
        }
        .to_any();
        self.broadcast(msg, false).await
    }
}
