//! [`DydxGateway`]: the [`OrderGateway`] over the `dydx` crate's `NodeClient`.

use std::fmt;
use std::iter;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use dydx::node::sequencer::Nonce;
use dydx::node::{Account, NodeClient, NodeConfig, Wallet};
use dydx_proto::ToAny;
use dydx_proto::cosmos_sdk_proto::Any;
use dydx_proto::cosmos_sdk_proto::cosmos::tx::v1beta1::{
    BroadcastMode, BroadcastTxRequest, BroadcastTxResponse, GetTxRequest, GetTxResponse,
};
use dydx_proto::dydxprotocol::clob::{
    MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder, Order, OrderBatch,
};
use futures::future::BoxFuture;
use ordermeta_core::{GoodTil, OrderId};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::nonces::{NonceMode, TimestampClock, now_ms};
use super::{ChainClock, ChainError, GatewayError, OrderGateway, TxOutcome};
use crate::convert::{cancel_good_til, subaccount_id, to_proto_order_id};

/// Default deadline of every call of a [`DydxGateway`] ([`GatewayOptions::call_timeout`]).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline of [`DydxGateway::connect`] ([`GatewayOptions::connect_timeout`]).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadlines of a [`DydxGateway`]. A call that misses its deadline fails with
/// [`GatewayError::Timeout`]; none is ever unbounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayOptions {
    /// Deadline of each call ([`clock`](OrderGateway::clock), [`place`](OrderGateway::place),
    /// [`cancel`](OrderGateway::cancel), [`batch_cancel`](OrderGateway::batch_cancel)),
    /// including the wait for the signing lock and the retries after a sequence mismatch
    /// ([`MISMATCH_RETRIES`]). Default [`DEFAULT_CALL_TIMEOUT`] (5 s).
    pub call_timeout: Duration,
    /// Deadline of connecting and loading the account (TCP, HTTP/2 and TLS handshakes, the
    /// account query): a node that accepts connections and never answers fails here.
    /// Default [`DEFAULT_CONNECT_TIMEOUT`] (5 s).
    pub connect_timeout: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// Retries of a stateful tx that the node refused with `sdk/32` (sequence mismatch, or a
/// timestamp nonce refused), within the call deadline: the first at once (re-signed with the
/// next sequence or a fresh nonce), the next after an exponential backoff from 100 ms to 1 s
/// with jitter (a re-synced sequence only advances at the next block). A mismatch that outlasts
/// them is the node's refusal ([`GatewayError::Rejected`]), never a transport error.
pub const MISMATCH_RETRIES: u32 = 4;

/// Mismatches met by stateful txs, by `nonces` (`sequence`, `timestamp`) and `outcome`
/// (`retried`, `rejected`).
const METRIC_MISMATCHES: &str = "ordermeta_nonce_mismatch_total";

/// `BroadcastTx` (sync mode) on the node's tx service, outside the signing lock.
type BroadcastFn = Arc<
    dyn Fn(Vec<u8>) -> BoxFuture<'static, Result<BroadcastTxResponse, tonic::Status>> + Send + Sync,
>;
/// `GetTx` on the node's tx service, outside the signing lock.
type GetTxFn =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<GetTxResponse, tonic::Status>> + Send + Sync>;

/// The real gateway: `dydx::node::NodeClient` plus the signing `Account`.
///
/// Transactions are signed with the client's own `TxBuilder` and broadcast through its
/// `tx` route, rather than with `NodeClient::cancel_order`, because the latter keeps only the
/// code of a failed tx and drops its codespace: clob code 32 (duplicate cancel) and sdk code
/// 32 (sequence mismatch) would then be told apart only by their log text.
///
/// Stateful messages are protected against replay as its [`NonceMode`] says: the account
/// sequence (the default; one process per account) or timestamp nonces
/// ([`with_nonces`](Self::with_nonces); several processes per account). A stateful tx the
/// node refuses with `sdk/32` is re-signed — with the next sequence, re-synced from the node,
/// or a fresh nonce — up to [`MISMATCH_RETRIES`] times within the call deadline; a mismatch
/// that persists is returned as the chain's refusal ([`GatewayError::Rejected`]). Short-term
/// messages skip the chain's sequence check and are never retried.
///
/// Signing is serialized; broadcasts are not, except stateful ones in sequence mode (each
/// must reach the node in sequence order). [`tx_result`](OrderGateway::tx_result) reads the
/// node's `GetTx` (a node with tx indexing).
///
/// Every call completes or fails within [`GatewayOptions::call_timeout`] (connecting within
/// [`GatewayOptions::connect_timeout`]); the gateway never retries a broadcast for any other
/// reason than a mismatch (which the node refused, so nothing of it was admitted).
pub struct DydxGateway {
    inner: Mutex<Inner>,
    signer: String,
    options: GatewayOptions,
    nonces: NonceMode,
    broadcast_tx: BroadcastFn,
    get_tx: GetTxFn,
}

struct Inner {
    client: NodeClient,
    account: Account,
    timestamps: TimestampClock,
}

impl fmt::Debug for DydxGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DydxGateway")
            .field("signer", &self.signer)
            .field("options", &self.options)
            .field("nonces", &self.nonces)
            .finish_non_exhaustive()
    }
}

impl DydxGateway {
    /// Connects to a node and loads account `index` of `wallet` (number and sequence), with
    /// the default deadlines ([`GatewayOptions::default`]).
    ///
    /// `NodeClient::connect` builds a TLS config even for `http://` endpoints, which needs a
    /// process-wide rustls crypto provider; if none is installed, this installs aws-lc-rs.
    pub async fn connect(
        config: NodeConfig,
        wallet: &Wallet,
        index: u32,
    ) -> Result<Self, GatewayError> {
        Self::connect_with(config, wallet, index, GatewayOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with explicit deadlines. Connecting and loading the
    /// account together fail with [`GatewayError::Timeout`] after `options.connect_timeout`.
    pub async fn connect_with(
        config: NodeConfig,
        wallet: &Wallet,
        index: u32,
        options: GatewayOptions,
    ) -> Result<Self, GatewayError> {
        install_crypto_provider();
        let connecting = async {
            let mut client = NodeClient::connect(config)
                .await
                .map_err(GatewayError::unavailable)?;
            let account = wallet
                .account(index, &mut client)
                .await
                .map_err(GatewayError::unavailable)?;
            Ok::<_, GatewayError>((client, account))
        };
        let (client, account) = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| GatewayError::Timeout {
                operation: "connect",
                after: options.connect_timeout,
            })??;
        Ok(Self::new(client, account).with_options(options))
    }

    /// Wraps a connected client and a loaded account, with the default call deadline and
    /// [`NonceMode::Sequence`].
    pub fn new(client: NodeClient, account: Account) -> Self {
        let signer = account.address().to_string();
        // The node's tx service, cloned out of the client (one HTTP/2 connection), so that
        // broadcasts and lookups need not wait for the signing lock.
        let tx = client.tx.clone();
        let broadcast_tx: BroadcastFn = Arc::new(move |tx_bytes| {
            let mut tx = tx.clone();
            Box::pin(async move {
                tx.broadcast_tx(BroadcastTxRequest {
                    tx_bytes,
                    mode: BroadcastMode::Sync as i32,
                })
                .await
                .map(tonic::Response::into_inner)
            })
        });
        let tx = client.tx.clone();
        let get_tx: GetTxFn = Arc::new(move |hash| {
            let mut tx = tx.clone();
            Box::pin(async move {
                tx.get_tx(GetTxRequest { hash })
                    .await
                    .map(tonic::Response::into_inner)
            })
        });
        DydxGateway {
            inner: Mutex::new(Inner {
                client,
                account,
                timestamps: TimestampClock::new(0, 1),
            }),
            signer,
            options: GatewayOptions::default(),
            nonces: NonceMode::Sequence,
            broadcast_tx,
            get_tx,
        }
    }

    /// Replaces the deadlines (only `call_timeout` matters once connected).
    pub fn with_options(mut self, options: GatewayOptions) -> Self {
        self.options = options;
        self
    }

    /// Chooses how stateful txs are protected against replay: [`NonceMode::Sequence`] (the
    /// default) or timestamp nonces, **the choice for several processes per account**
    /// ([`NonceMode::timestamp_lane`]).
    pub fn with_nonces(mut self, nonces: NonceMode) -> Self {
        self.nonces = nonces;
        let (lane, lanes) = match nonces {
            NonceMode::Timestamp { lane, lanes } => (lane, lanes),
            NonceMode::Sequence => (0, 1),
        };
        self.inner.get_mut().timestamps = TimestampClock::new(lane, lanes);
        self
    }

    /// The deadlines in force.
    pub fn options(&self) -> GatewayOptions {
        self.options
    }

    /// The nonce mode in force.
    pub fn nonces(&self) -> NonceMode {
        self.nonces
    }

    /// Runs one gateway call under the call deadline; a missed deadline drops the call (and
    /// with it the connection lock) and answers [`GatewayError::Timeout`].
    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        let after = self.options.call_timeout;
        tokio::time::timeout(after, call)
            .await
            .unwrap_or(Err(GatewayError::Timeout { operation, after }))
    }

    async fn broadcast(
        &self,
        operation: &'static str,
        msg: Any,
        stateful: bool,
    ) -> Result<String, GatewayError> {
        let deadline = Instant::now() + self.options.call_timeout;
        self.bounded(operation, async {
            match (stateful, self.nonces) {
                // Good-til-block is its replay protection: the chain skips the sequence
                // check, so the current sequence is as good as any and is not consumed.
                (false, _) => {
                    let bytes = {
                        let mut inner = self.inner.lock().await;
                        let sequence = inner.account.sequence_number();
                        inner.sign(msg, Nonce::Sequence(sequence))?
                    };
                    self.send(bytes).await
                }
                (true, NonceMode::Sequence) => self.send_with_sequence(msg, deadline).await,
                (true, NonceMode::Timestamp { .. }) => {
                    self.send_with_timestamp(msg, deadline).await
                }
            }
        })
        .await
    }

    /// A stateful tx signed with the account sequence. The lock is held throughout, so that
    /// this process's stateful txs reach the node in sequence order.
    async fn send_with_sequence(
        &self,
        msg: Any,
        deadline: Instant,
    ) -> Result<String, GatewayError> {
        let mut inner = self.inner.lock().await;
        let mut delays = mismatch_delays();
        let mut retries = 0;
        loop {
            let sequence = inner.account.sequence_number();
            let bytes = inner.sign(msg.clone(), Nonce::Sequence(sequence))?;
            match self.send(bytes).await {
                Ok(hash) => {
                    inner.account.set_sequence_number(sequence + 1);
                    return Ok(hash);
                }
                Err(GatewayError::Rejected(e)) if e.is_sequence_mismatch() => {
                    let delay = self.retry_after_mismatch(&mut delays, deadline, &e)?;
                    tokio::time::sleep(delay).await;
                    let committed = inner.committed_sequence().await?;
                    // The node serves committed state: right after a block it is the next
                    // sequence, but before it another process's admitted tx is not counted
                    // yet. So the first retry assumes that one took `sequence`.
                    let next = if retries == 0 {
                        committed.max(sequence + 1)
                    } else {
                        committed
                    };
                    tracing::warn!(signer = %self.signer, sequence, committed, next, "sequence mismatch: re-signing");
                    inner.account.set_sequence_number(next);
                    retries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A stateful tx signed with a fresh timestamp nonce; re-signed with a new one if the node
    /// refuses it (another process used the same millisecond).
    async fn send_with_timestamp(
        &self,
        msg: Any,
        deadline: Instant,
    ) -> Result<String, GatewayError> {
        let mut delays = mismatch_delays();
        loop {
            let (bytes, nonce) = {
                let mut inner = self.inner.lock().await;
                let nonce = inner.next_timestamp().await;
                (inner.sign(msg.clone(), Nonce::Timestamp(nonce))?, nonce)
            };
            match self.send(bytes).await {
                Err(GatewayError::Rejected(e)) if e.is_sequence_mismatch() => {
                    let delay = self.retry_after_mismatch(&mut delays, deadline, &e)?;
                    tracing::warn!(signer = %self.signer, nonce, "timestamp nonce refused: re-signing");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// The delay before the next retry after a mismatch, or the mismatch itself (the chain's
    /// refusal) once the retries are spent or the next one would not fit the deadline.
    fn retry_after_mismatch(
        &self,
        delays: &mut impl Iterator<Item = Duration>,
        deadline: Instant,
        error: &ChainError,
    ) -> Result<Duration, GatewayError> {
        // A quarter of the deadline is kept for the attempt itself.
        let reserve = self.options.call_timeout / 4;
        let nonces = self.nonces.as_str();
        match delays
            .next()
            .filter(|d| Instant::now() + *d + reserve < deadline)
        {
            Some(delay) => {
                ::metrics::counter!(METRIC_MISMATCHES, "nonces" => nonces, "outcome" => "retried")
                    .increment(1);
                Ok(delay)
            }
            None => {
                ::metrics::counter!(METRIC_MISMATCHES, "nonces" => nonces, "outcome" => "rejected")
                    .increment(1);
                tracing::warn!(signer = %self.signer, nonces, %error, "mismatch persists: refused");
                Err(GatewayError::Rejected(error.clone()))
            }
        }
    }

    /// Broadcasts signed tx bytes (sync mode): the tx hash, or the node's refusal.
    async fn send(&self, tx_bytes: Vec<u8>) -> Result<String, GatewayError> {
        let response = (self.broadcast_tx)(tx_bytes)
            .await
            .map_err(GatewayError::unavailable)?
            .tx_response
            .ok_or_else(|| GatewayError::unavailable("broadcast response without tx_response"))?;
        if response.code != 0 {
            return Err(GatewayError::Rejected(ChainError {
                codespace: response.codespace,
                code: response.code,
                log: response.raw_log,
            }));
        }
        Ok(response.txhash)
    }
}

/// The delays of the retries after a mismatch: the first at once, then exponential.
fn mismatch_delays() -> impl Iterator<Item = Duration> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(1))
        .with_max_times(usize::try_from(MISMATCH_RETRIES.saturating_sub(1)).unwrap_or(0))
        .with_jitter()
        .build();
    iter::once(Duration::ZERO)
        .chain(backoff)
        .take(usize::try_from(MISMATCH_RETRIES).unwrap_or(0))
}

/// Installs rustls' aws-lc-rs provider as the process default unless one is installed.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: some provider is then installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// How far (ms) a timestamp nonce may be ahead of the wall clock before signing waits for
/// the clock; a clock that stepped back further than this is not waited for.
const MAX_CLOCK_WAIT_MS: u64 = 1_000;

impl Inner {
    /// The account sequence in the node's committed state.
    async fn committed_sequence(&mut self) -> Result<u64, GatewayError> {
        let address = self.account.address().clone();
        let (_, sequence) = self
            .client
            .query_address(&address)
            .await
            .map_err(GatewayError::unavailable)?;
        Ok(sequence)
    }

    /// The next timestamp nonce, never ahead of the wall clock: if this process signs faster
    /// than its lane allows, it waits the few milliseconds it needs.
    async fn next_timestamp(&mut self) -> u64 {
        let now = now_ms();
        let nonce = self.timestamps.next(now);
        let ahead = nonce.saturating_sub(now);
        if ahead > 0 && ahead <= MAX_CLOCK_WAIT_MS {
            tokio::time::sleep(Duration::from_millis(ahead)).await;
        }
        nonce
    }

    /// Signs `msg` alone in a tx with `nonce`.
    fn sign(&mut self, msg: Any, nonce: Nonce) -> Result<Vec<u8>, GatewayError> {
        self.account.set_next_nonce(nonce);
        let raw = self
            .client
            .builder
            .build_transaction(&self.account, iter::once(msg), None, None)
            .map_err(GatewayError::build)?;
        raw.to_bytes().map_err(GatewayError::build)
    }
}

#[async_trait]
impl OrderGateway for DydxGateway {
    fn signer(&self) -> String {
        self.signer.clone()
    }

    async fn clock(&self) -> Result<ChainClock, GatewayError> {
        let block = self
            .bounded("clock", async {
                let mut inner = self.inner.lock().await;
                inner
                    .client
                    .latest_block()
                    .await
                    .map_err(GatewayError::unavailable)
            })
            .await?;
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
        self.broadcast("place", msg, stateful).await
    }

    async fn cancel(&self, order_id: &OrderId, good_til: GoodTil) -> Result<String, GatewayError> {
        let msg = MsgCancelOrder {
            order_id: Some(to_proto_order_id(order_id)),
            good_til_oneof: Some(cancel_good_til(good_til)),
        }
        .to_any();
        self.broadcast("cancel", msg, order_id.is_stateful()).await
    }

    async fn batch_cancel(
        &self,
        subaccount_number: u32,
        batches: Vec<(u32, Vec<u32>)>,
        good_til_block: u32,
    ) -> Result<String, GatewayError> {
        let msg = MsgBatchCancel {
            subaccount_id: Some(subaccount_id(&self.signer, subaccount_number)),
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
        self.broadcast("batch_cancel", msg, false).await
    }

    async fn tx_result(&self, tx_hash: &str) -> Result<Option<TxOutcome>, GatewayError> {
        let response = self
            .bounded("tx_result", async {
                match (self.get_tx)(tx_hash.to_owned()).await {
                    Ok(found) => Ok(Some(found)),
                    // Not (yet) in a block, or never: short-term and refused txs.
                    Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                    Err(status) => Err(GatewayError::unavailable(status)),
                }
            })
            .await?;
        let Some(response) = response.and_then(|r| r.tx_response) else {
            return Ok(None);
        };
        let height = u32::try_from(response.height)
            .map_err(|_| GatewayError::unavailable("tx height out of range"))?;
        let result = if response.code == 0 {
            Ok(())
        } else {
            Err(ChainError {
                codespace: response.codespace,
                code: response.code,
                log: response.raw_log,
            })
        };
        Ok(Some(TxOutcome { height, result }))
    }
}
