//! [`OrderMetaClient`]: write-ahead placement and cancel-by-id over any store.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dydx_proto::dydxprotocol::clob::{Order, order};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use ordermeta_core::{
    CancelError, GoodTil, ListQuery, MetadataStore, MetadataStoreExt, NewOrder, OrderId,
    OrderMetadata, OrderStatus, OrderType, RecordingSwitch, Side, StoreError, TransitionRequest,
    now,
};

use crate::gateway::{
    ChainClock, ChainError, GatewayError, OrderGateway, codes, from_proto_order_id,
};

/// Most client ids one `MsgBatchCancel` may carry (chain limit).
pub const MAX_BATCH_CANCEL_IDS: usize = 100;

/// Chain parameters and client limits.
#[derive(Clone, Debug)]
pub struct ChainSettings {
    /// `ShortBlockWindow`: how far ahead of the next block a short-term good-til may be.
    /// 40 from protocol v9.5.0 on (20 before; crate `dydx` 0.3 still assumes 20).
    pub short_block_window: u32,
    /// Cancels per second this client sends at most; more get
    /// [`CancelError::RateLimited`] without touching the chain.
    pub cancel_rate_per_second: NonZeroU32,
}

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            short_block_window: 40,
            cancel_rate_per_second: NonZeroU32::new(200).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// The human side of an order, recorded beside its chain identity (what was traded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderDetails {
    /// Market symbol, e.g. `BTC-USD`.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Quantity as exact decimal text.
    pub quantity: String,
    /// Price as exact decimal text; `None` for market orders.
    pub price: Option<String>,
    /// Order type.
    pub order_type: OrderType,
}

/// A placed order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Our order id: what [`OrderMetaClient::cancel_order`] takes. See [`order_key`].
    pub order_id: String,
    /// The placement tx hash.
    pub tx_hash: String,
    /// Whether the metadata was recorded (false with recording off).
    pub recorded: bool,
}

/// A cancel the node accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    /// Our order id.
    pub order_id: String,
    /// The cancel tx hash.
    pub tx_hash: String,
    /// False when the cancel went out but recording its outcome failed (the record stays
    /// `cancelling` until the expiry sweeper or a retry settles it).
    pub recorded: bool,
}

/// Why placing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlaceError {
    /// The order is malformed (no id, no good-til, good-til out of the chain's window, or
    /// metadata that does not validate); nothing was recorded or sent.
    #[error("invalid order: {reason}")]
    InvalidOrder {
        /// What is wrong.
        reason: String,
    },
    /// Recording the metadata failed, so the order was **not** broadcast: an order without
    /// metadata is exactly what ordermeta prevents.
    #[error("order {order_id} not placed: recording its metadata failed: {source}")]
    Storage {
        /// Our order id.
        order_id: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The node refused the placement; the record is marked `failed`.
    #[error("order {order_id} rejected by the node: {error}")]
    Rejected {
        /// Our order id.
        order_id: String,
        /// The chain's answer.
        error: ChainError,
    },
    /// The node could not be reached or did not answer: the order may or may not be live.
    /// The record stays `pending`; [`OrderMetaClient::reconcile_pending`] settles it.
    #[error("order {order_id}: placement outcome unknown: {source}")]
    Network {
        /// Our order id.
        order_id: String,
        /// The gateway's error.
        #[source]
        source: GatewayError,
    },
}

/// Which orders [`OrderMetaClient::cancel_all`] cancels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelScope {
    /// Every open order of the signing account.
    All,
    /// Open orders of the signing account in this market symbol.
    Market(String),
}

/// What [`OrderMetaClient::cancel_all`] did.
#[derive(Debug, Default)]
pub struct CancelAllReport {
    /// Orders whose cancel the node accepted, with the tx hash.
    pub cancelled: Vec<(String, String)>,
    /// Orders not cancelled, and why.
    pub failed: Vec<(String, CancelError)>,
    /// `MsgBatchCancel` transactions sent.
    pub batches: usize,
}

/// What [`OrderMetaClient::reconcile_pending`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Pending orders marked expired (good-til passed).
    pub expired: usize,
    /// Pending orders made certainly dead by a cancel the node accepted, or found absent.
    pub cancelled: usize,
    /// Pending orders still unresolved (node unreachable); try again later.
    pub unresolved: usize,
}

/// Our printable order id: `owner/subaccount/clob_pair/flags/client_id@b<GTB>` for short-term
/// and `…@t<GTBT>` for stateful orders.
///
/// Stable (derived only from what the chain identifies the order by, plus its good-til),
/// unique per placement (re-using a client id needs a new good-til), and readable in logs.
pub fn order_key(id: &OrderId, good_til: GoodTil) -> String {
    match good_til {
        GoodTil::Block(b) => format!("{id}@b{b}"),
        GoodTil::BlockTime(t) => format!("{id}@t{t}"),
    }
}

const METRIC_CANCEL: &str = "ordermeta_cancel_total";
const METRIC_PLACE: &str = "ordermeta_place_total";
const METRIC_RECORDING_FAILURES: &str = "ordermeta_recording_failures_total";
const METRIC_STORE_LATENCY: &str = "ordermeta_store_seconds";

/// The seed's `DydxV4Client`: places orders recording their metadata first, and cancels them
/// by id from the stored metadata.
pub struct OrderMetaClient {
    gateway: Arc<dyn OrderGateway>,
    store: Arc<dyn MetadataStore>,
    recording: RecordingSwitch,
    settings: ChainSettings,
    limiter: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for OrderMetaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderMetaClient")
            .field("signer", &self.gateway.signer())
            .field("recording", &self.recording.is_on())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OrderMetaClient {
    /// A client over a gateway and a store.
    pub fn new(
        gateway: Arc<dyn OrderGateway>,
        store: Arc<dyn MetadataStore>,
        recording: RecordingSwitch,
        settings: ChainSettings,
    ) -> Self {
        let limiter = RateLimiter::direct(Quota::per_second(settings.cancel_rate_per_second));
        OrderMetaClient {
            gateway,
            store,
            recording,
            settings,
            limiter,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// The gateway.
    pub fn gateway(&self) -> &Arc<dyn OrderGateway> {
        &self.gateway
    }

    /// The recording switch (clones share the flag).
    pub fn recording(&self) -> &RecordingSwitch {
        &self.recording
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let out = fut.await;
        metrics::histogram!(METRIC_STORE_LATENCY, "op" => op).record(start.elapsed().as_secs_f64());
        out
    }

    /// Places `order` (as built by `dydx::node::OrderBuilder`) and records its metadata
    /// **before** broadcasting it.
    ///
    /// With recording on: records `pending`; if that fails, nothing is broadcast
    /// ([`PlaceError::Storage`]). Then broadcasts: accepted → `active` with the tx hash;
    /// refused → `failed` with the chain's answer; no answer → stays `pending`. With
    /// recording off: broadcasts exactly as without ordermeta.
    pub async fn place_order(
        &self,
        order: Order,
        details: OrderDetails,
    ) -> Result<Placed, PlaceError> {
        let (id, good_til) = describe(&order)?;
        let order_id = order_key(&id, good_til);
        if !self.recording.is_on() {
            let tx_hash = self
                .gateway
                .place(order)
                .await
                .map_err(|e| place_failure(&order_id, e))?;
            metrics::counter!(METRIC_PLACE, "outcome" => "unrecorded").increment(1);
            return Ok(Placed {
                order_id,
                tx_hash,
                recorded: false,
            });
        }
        let meta = OrderMetadata::new(
            NewOrder {
                order_id: order_id.clone(),
                dydx_order_id: id,
                good_til,
                symbol: details.symbol,
                side: details.side,
                quantity: details.quantity,
                price: details.price,
                order_type: details.order_type,
            },
            OrderStatus::Pending,
            now(),
        );
        if let Err(e) = meta.validate() {
            return Err(PlaceError::InvalidOrder {
                reason: e.to_string(),
            });
        }
        if let Err(source) = self.timed("record", self.store.record(&meta)).await {
            metrics::counter!(METRIC_RECORDING_FAILURES).increment(1);
            tracing::error!(order_id, error = %source, "metadata not recorded; order not placed");
            return Err(PlaceError::Storage { order_id, source });
        }
        match self.gateway.place(order).await {
            Ok(tx_hash) => {
                let req =
                    TransitionRequest::new(&order_id, &[OrderStatus::Pending], OrderStatus::Active)
                        .tx_hash(&tx_hash)
                        .reason("placement accepted");
                if let Err(e) = self.timed("transition", self.store.transition(&req)).await {
                    // The order is live and its metadata is recorded (pending), so it stays
                    // cancellable after reconciliation; report, do not fail the placement.
                    metrics::counter!(METRIC_RECORDING_FAILURES).increment(1);
                    tracing::error!(order_id, error = %e, "placed, but marking it active failed");
                }
                metrics::counter!(METRIC_PLACE, "outcome" => "placed").increment(1);
                tracing::info!(order_id, tx_hash, "order placed");
                Ok(Placed {
                    order_id,
                    tx_hash,
                    recorded: true,
                })
            }
            Err(GatewayError::Rejected(error)) => {
                let req =
                    TransitionRequest::new(&order_id, &[OrderStatus::Pending], OrderStatus::Failed)
                        .reason(error.to_string());
                if let Err(e) = self.timed("transition", self.store.transition(&req)).await {
                    metrics::counter!(METRIC_RECORDING_FAILURES).increment(1);
                    tracing::error!(order_id, error = %e, "rejected, but marking it failed failed");
                }
                metrics::counter!(METRIC_PLACE, "outcome" => "rejected").increment(1);
                tracing::warn!(order_id, %error, "placement rejected");
                Err(PlaceError::Rejected { order_id, error })
            }
            Err(source) => {
                metrics::counter!(METRIC_PLACE, "outcome" => "unknown").increment(1);
                tracing::warn!(order_id, error = %source, "placement outcome unknown; left pending");
                Err(PlaceError::Network { order_id, source })
            }
        }
    }

    /// Cancels the order recorded under `order_id` (the seed's flow): look up, check status,
    /// ownership and expiry against the chain, claim it (`active -> cancelling`), broadcast
    /// `MsgCancelOrder` with the stored `OrderId` and good-til, record the outcome.
    pub async fn cancel_order(&self, order_id: &str) -> Result<Cancelled, CancelError> {
        let outcome = self.cancel_inner(order_id).await;
        let label = match &outcome {
            Ok(_) => "cancelled",
            Err(e) => e.kind().as_str(),
        };
        metrics::counter!(METRIC_CANCEL, "outcome" => label).increment(1);
        match &outcome {
            Ok(c) => {
                tracing::info!(order_id, tx_hash = %c.tx_hash, outcome = label, "cancel attempt")
            }
            Err(e) => tracing::warn!(order_id, outcome = label, error = %e, "cancel attempt"),
        }
        outcome
    }

    async fn cancel_inner(&self, order_id: &str) -> Result<Cancelled, CancelError> {
        if !self.recording.is_on() {
            return Err(CancelError::RecordingDisabled {
                order_id: order_id.to_owned(),
            });
        }
        if self.limiter.check().is_err() {
            return Err(CancelError::RateLimited {
                order_id: order_id.to_owned(),
            });
        }
        let meta = self
            .timed("get", self.store.get_required(order_id))
            .await
            .map_err(|e| CancelError::from_store(order_id, e))?;
        status_gate(&meta, meta.status)?;
        let signer = self.gateway.signer();
        if meta.owner() != signer {
            return Err(CancelError::NotOwner {
                order_id: order_id.to_owned(),
                owner: meta.owner().to_owned(),
                signer,
            });
        }
        let clock = self.clock(order_id).await?;
        if meta
            .good_til
            .is_expired(Some(clock.height), Some(clock.block_time))
        {
            self.settle(
                order_id,
                &[OrderStatus::Active],
                OrderStatus::Expired,
                "good-til passed",
                None,
            )
            .await;
            return Err(expired(&meta));
        }
        let claimed = self
            .timed("transition", self.store.claim_for_cancel(order_id))
            .await
            .map_err(|e| match e.current_status() {
                Some(current) => status_gate(&meta, current).err().unwrap_or_else(|| {
                    CancelError::CancelInProgress {
                        order_id: order_id.to_owned(),
                    }
                }),
                None => CancelError::from_store(order_id, e),
            })?;
        self.send_cancel(&claimed).await
    }

    /// Broadcasts the cancel of a claimed (`cancelling`) order and records the outcome.
    async fn send_cancel(&self, meta: &OrderMetadata) -> Result<Cancelled, CancelError> {
        let order_id = meta.order_id.as_str();
        match self
            .gateway
            .cancel(&meta.dydx_order_id, meta.good_til)
            .await
        {
            Ok(tx_hash) => {
                let recorded = self
                    .settle(
                        order_id,
                        &[OrderStatus::Cancelling],
                        OrderStatus::Cancelled,
                        "cancel accepted",
                        Some(&tx_hash),
                    )
                    .await;
                Ok(Cancelled {
                    order_id: order_id.to_owned(),
                    tx_hash,
                    recorded,
                })
            }
            Err(e) => Err(self.cancel_failed(meta, e).await),
        }
    }

    /// Records what a refused or failed cancel means and picks the caller's error.
    async fn cancel_failed(&self, meta: &OrderMetadata, e: GatewayError) -> CancelError {
        let order_id = meta.order_id.as_str();
        let from = [OrderStatus::Cancelling];
        let chain = e.chain().cloned();
        match chain {
            // The node already holds a cancel for this order (ours from before a crash, or
            // another process's): it will be cancelled; no new tx went out.
            Some(c)
                if c.is_clob(codes::CANCEL_ALREADY_EXISTS)
                    || c.is_clob(codes::STATEFUL_CANCEL_ALREADY_EXISTS) =>
            {
                self.settle(
                    order_id,
                    &from,
                    OrderStatus::Cancelled,
                    &c.to_string(),
                    None,
                )
                .await;
                CancelError::CancelInProgress {
                    order_id: order_id.to_owned(),
                }
            }
            // The good-til is already behind the chain: the order is expired.
            Some(c)
                if c.is_clob(codes::HEIGHT_EXCEEDS_GOOD_TIL_BLOCK)
                    || c.is_clob(codes::TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME) =>
            {
                self.settle(order_id, &from, OrderStatus::Expired, &c.to_string(), None)
                    .await;
                expired(meta)
            }
            // The stateful order is gone: expired if the chain's clock says so; otherwise it
            // filled or was cancelled elsewhere. Record it cancelled (no longer live); a fill
            // feed may correct it to filled (`cancelled -> filled` is legal).
            Some(c) if c.is_clob(codes::STATEFUL_ORDER_DOES_NOT_EXIST) => {
                let gone_expired = match self.gateway.clock().await {
                    Ok(clock) => meta
                        .good_til
                        .is_expired(Some(clock.height), Some(clock.block_time)),
                    Err(_) => false,
                };
                if gone_expired {
                    self.settle(order_id, &from, OrderStatus::Expired, &c.to_string(), None)
                        .await;
                    expired(meta)
                } else {
                    self.settle(
                        order_id,
                        &from,
                        OrderStatus::Cancelled,
                        &c.to_string(),
                        None,
                    )
                    .await;
                    CancelError::AlreadyCancelled {
                        order_id: order_id.to_owned(),
                        cancelled_at: None,
                    }
                }
            }
            Some(c) if c.is_clob(codes::BLOCK_RATE_LIMIT_EXCEEDED) => {
                self.release(order_id, &c.to_string()).await;
                CancelError::RateLimited {
                    order_id: order_id.to_owned(),
                }
            }
            _ => {
                self.release(order_id, &e.to_string()).await;
                CancelError::NetworkError {
                    order_id: order_id.to_owned(),
                    source: Box::new(e),
                }
            }
        }
    }

    /// Gives a claim back (`cancelling -> active`) after a cancel that did not happen.
    async fn release(&self, order_id: &str, reason: &str) {
        self.settle(
            order_id,
            &[OrderStatus::Cancelling],
            OrderStatus::Active,
            reason,
            None,
        )
        .await;
    }

    /// Records a transition whose failure must not hide the chain outcome from the caller;
    /// returns whether it was recorded.
    async fn settle(
        &self,
        order_id: &str,
        from: &[OrderStatus],
        to: OrderStatus,
        reason: &str,
        cancel_tx_hash: Option<&str>,
    ) -> bool {
        let mut req = TransitionRequest::new(order_id, from, to).reason(reason);
        req.cancel_tx_hash = cancel_tx_hash.map(str::to_owned);
        match self.timed("transition", self.store.transition(&req)).await {
            Ok(_) => true,
            Err(e) => {
                metrics::counter!(METRIC_RECORDING_FAILURES).increment(1);
                tracing::error!(order_id, to = %to, error = %e, "could not record outcome");
                false
            }
        }
    }

    async fn clock(&self, order_id: &str) -> Result<ChainClock, CancelError> {
        self.gateway
            .clock()
            .await
            .map_err(|e| CancelError::NetworkError {
                order_id: order_id.to_owned(),
                source: Box::new(e),
            })
    }

    /// Cancels every open order of the signing account (or of one market) from stored
    /// metadata: short-term orders in `MsgBatchCancel`s of at most 100 ids per subaccount,
    /// stateful ones one `MsgCancelOrder` each.
    pub async fn cancel_all(&self, scope: CancelScope) -> Result<CancelAllReport, CancelError> {
        let scope_label = match &scope {
            CancelScope::All => "*".to_owned(),
            CancelScope::Market(m) => m.clone(),
        };
        if !self.recording.is_on() {
            return Err(CancelError::RecordingDisabled {
                order_id: scope_label,
            });
        }
        let query = ListQuery {
            statuses: vec![OrderStatus::Active],
            owner: Some(self.gateway.signer()),
            symbol: match scope {
                CancelScope::All => None,
                CancelScope::Market(m) => Some(m),
            },
            limit: ordermeta_core::MAX_PAGE_SIZE,
            ..ListQuery::default()
        };
        let page = self
            .store
            .list_all(&query)
            .await
            .map_err(|e| CancelError::from_store(&scope_label, e))?;
        let clock = self.clock(&scope_label).await?;
        let mut report = CancelAllReport::default();
        for bad in page.invalid {
            report.failed.push((
                bad.order_id.clone(),
                CancelError::InvalidMetadata {
                    order_id: bad.order_id,
                    reason: bad.reason,
                },
            ));
        }
        // Claim everything first so concurrent cancellers skip these orders.
        let mut short_term: BTreeMap<u32, Vec<OrderMetadata>> = BTreeMap::new();
        for meta in page.items {
            if meta
                .good_til
                .is_expired(Some(clock.height), Some(clock.block_time))
            {
                self.settle(
                    &meta.order_id,
                    &[OrderStatus::Active],
                    OrderStatus::Expired,
                    "good-til passed",
                    None,
                )
                .await;
                let err = expired(&meta);
                report.failed.push((meta.order_id, err));
                continue;
            }
            let claimed = match self.store.claim_for_cancel(&meta.order_id).await {
                Ok(m) => m,
                Err(e) => {
                    let err =
                        match e.current_status() {
                            Some(cur) => status_gate(&meta, cur).err().unwrap_or(
                                CancelError::CancelInProgress {
                                    order_id: meta.order_id.clone(),
                                },
                            ),
                            None => CancelError::from_store(&meta.order_id, e),
                        };
                    report.failed.push((meta.order_id, err));
                    continue;
                }
            };
            if claimed.dydx_order_id.is_short_term() {
                short_term
                    .entry(claimed.subaccount_number())
                    .or_default()
                    .push(claimed);
            } else {
                match self.send_cancel(&claimed).await {
                    Ok(c) => report.cancelled.push((c.order_id, c.tx_hash)),
                    Err(e) => report.failed.push((claimed.order_id, e)),
                }
            }
        }
        for (subaccount, orders) in short_term {
            for chunk in orders.chunks(MAX_BATCH_CANCEL_IDS) {
                self.batch_cancel_chunk(clock.height, subaccount, chunk, &mut report)
                    .await;
            }
        }
        Ok(report)
    }

    async fn batch_cancel_chunk(
        &self,
        height: u32,
        subaccount: u32,
        chunk: &[OrderMetadata],
        report: &mut CancelAllReport,
    ) {
        let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for m in chunk {
            groups
                .entry(m.clob_pair_id())
                .or_default()
                .push(m.client_id());
        }
        // A batch cancel removes an order only if its GTB >= the order's: use the largest,
        // capped at the chain's window past the next block (valid orders never exceed it).
        let gtb = chunk
            .iter()
            .filter_map(|m| m.good_til.block())
            .max()
            .unwrap_or_default()
            .min(
                height
                    .saturating_add(1)
                    .saturating_add(self.settings.short_block_window),
            );
        report.batches += 1;
        match self
            .gateway
            .batch_cancel(subaccount, groups.into_iter().collect(), gtb)
            .await
        {
            Ok(tx_hash) => {
                for m in chunk {
                    self.settle(
                        &m.order_id,
                        &[OrderStatus::Cancelling],
                        OrderStatus::Cancelled,
                        "batch cancel accepted",
                        Some(&tx_hash),
                    )
                    .await;
                    report.cancelled.push((m.order_id.clone(), tx_hash.clone()));
                }
            }
            Err(e) => {
                for m in chunk {
                    self.release(&m.order_id, &e.to_string()).await;
                    let err = match e.chain() {
                        Some(c) if c.is_clob(codes::BLOCK_RATE_LIMIT_EXCEEDED) => {
                            CancelError::RateLimited {
                                order_id: m.order_id.clone(),
                            }
                        }
                        _ => CancelError::NetworkError {
                            order_id: m.order_id.clone(),
                            source: e.to_string().into(),
                        },
                    };
                    report.failed.push((m.order_id.clone(), err));
                }
            }
        }
    }

    /// Records a fill reported by the bot's fill feed: any status but `failed` and `filled`
    /// becomes `filled`.
    pub async fn mark_filled(&self, order_id: &str) -> Result<OrderMetadata, StoreError> {
        let req = TransitionRequest::new(
            order_id,
            &[
                OrderStatus::Pending,
                OrderStatus::Active,
                OrderStatus::Cancelling,
                OrderStatus::Cancelled,
                OrderStatus::Expired,
            ],
            OrderStatus::Filled,
        )
        .reason("fill reported");
        self.timed("transition", self.store.transition(&req)).await
    }

    /// Marks every open order whose good-til passed as expired, against the chain's clock.
    /// Returns how many.
    pub async fn sweep_expired(&self) -> Result<u64, SweepError> {
        let clock = self.gateway.clock().await.map_err(SweepError::Gateway)?;
        let req = ordermeta_core::ExpireRequest::new(Some(clock.height), Some(clock.block_time));
        self.timed("expire", self.store.expire(&req))
            .await
            .map_err(SweepError::Store)
    }

    /// Settles `pending` records of the signing account older than `min_age` — left by a crash
    /// between recording and learning the broadcast's outcome. Expired ones are marked
    /// expired; the others are cancelled on chain (a short-term cancel never fails for an
    /// absent order; a stateful one answers 3006), so none can stay live unknown.
    pub async fn reconcile_pending(
        &self,
        min_age: Duration,
    ) -> Result<ReconcileReport, SweepError> {
        let mut report = ReconcileReport::default();
        let clock = self.gateway.clock().await.map_err(SweepError::Gateway)?;
        let query = ListQuery {
            statuses: vec![OrderStatus::Pending],
            owner: Some(self.gateway.signer()),
            limit: ordermeta_core::MAX_PAGE_SIZE,
            ..ListQuery::default()
        };
        let page = self
            .store
            .list_all(&query)
            .await
            .map_err(SweepError::Store)?;
        let cutoff = now() - chrono::Duration::from_std(min_age).unwrap_or_default();
        for meta in page.items.into_iter().filter(|m| m.updated_at <= cutoff) {
            let id = meta.order_id.as_str();
            if meta
                .good_til
                .is_expired(Some(clock.height), Some(clock.block_time))
            {
                if self
                    .settle(
                        id,
                        &[OrderStatus::Pending],
                        OrderStatus::Expired,
                        "reconciled: good-til passed",
                        None,
                    )
                    .await
                {
                    report.expired += 1;
                }
                continue;
            }
            let req = TransitionRequest::new(id, &[OrderStatus::Pending], OrderStatus::Cancelling)
                .reason("reconcile: placement outcome unknown");
            let Ok(claimed) = self.store.transition(&req).await else {
                continue;
            };
            match self.send_cancel(&claimed).await {
                Ok(_)
                | Err(CancelError::AlreadyCancelled { .. })
                | Err(CancelError::CancelInProgress { .. }) => report.cancelled += 1,
                Err(CancelError::OrderExpired { .. }) => report.expired += 1,
                Err(_) => report.unresolved += 1,
            }
        }
        Ok(report)
    }
}

/// Why a sweep or reconciliation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// The node's clock could not be read.
    #[error("reading the chain clock failed: {0}")]
    Gateway(#[source] GatewayError),
    /// The store failed.
    #[error("store failed: {0}")]
    Store(#[source] StoreError),
}

/// The cancel error a record's status implies, if the status rules out cancelling.
fn status_gate(meta: &OrderMetadata, status: OrderStatus) -> Result<(), CancelError> {
    let order_id = meta.order_id.clone();
    match status {
        OrderStatus::Active => Ok(()),
        OrderStatus::Cancelling => Err(CancelError::CancelInProgress { order_id }),
        OrderStatus::Cancelled => Err(CancelError::AlreadyCancelled {
            order_id,
            cancelled_at: meta.cancelled_at,
        }),
        OrderStatus::Filled => Err(CancelError::AlreadyFilled { order_id }),
        OrderStatus::Expired => Err(expired(meta)),
        OrderStatus::Failed => Err(CancelError::PlacementFailed { order_id }),
        OrderStatus::Pending => Err(CancelError::PlacementPending { order_id }),
    }
}

fn expired(meta: &OrderMetadata) -> CancelError {
    CancelError::OrderExpired {
        order_id: meta.order_id.clone(),
        at: meta.good_til,
    }
}

fn place_failure(order_id: &str, e: GatewayError) -> PlaceError {
    match e {
        GatewayError::Rejected(error) => PlaceError::Rejected {
            order_id: order_id.to_owned(),
            error,
        },
        source => PlaceError::Network {
            order_id: order_id.to_owned(),
            source,
        },
    }
}

/// The chain identity and good-til of a built order.
fn describe(order: &Order) -> Result<(OrderId, GoodTil), PlaceError> {
    let invalid = |reason: &str| PlaceError::InvalidOrder {
        reason: reason.to_owned(),
    };
    let id = order
        .order_id
        .as_ref()
        .and_then(from_proto_order_id)
        .ok_or_else(|| invalid("order has no OrderId with a subaccount"))?;
    let good_til = match order.good_til_oneof {
        Some(order::GoodTilOneof::GoodTilBlock(b)) => GoodTil::Block(b),
        Some(order::GoodTilOneof::GoodTilBlockTime(t)) => GoodTil::BlockTime(t),
        None => return Err(invalid("order has no good-til")),
    };
    Ok((id, good_til))
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
