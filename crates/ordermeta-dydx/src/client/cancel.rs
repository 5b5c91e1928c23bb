//! [`OrderMetaClient::cancel_order`] and the helpers every cancelling operation shares: send
//! a claimed order's cancel (with bounded retries), map the chain's answer, give a claim
//! back, record an outcome.

use ordermeta_core::{OrderMetadata, OrderStatus, TransitionRequest, now};

use super::confirm::TxKind;
use super::metrics::{count_cancel, timed};
use super::{OrderMetaClient, is_stale_claim};
use crate::error::CancelError;
use crate::gateway::{ChainClock, GatewayError, codes};
use crate::indexer::Applied;
use crate::recording::RecordingSwitch;

/// A cancel the node accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    /// Our order id.
    pub order_id: String,
    /// The cancel tx hash.
    pub tx_hash: String,
    /// False when the cancel went out but recording its outcome failed (the record stays
    /// `cancelling` until its lease runs out and the [`Supervisor`](crate::Supervisor), the
    /// expiry sweep or a retry settles it), and for a cancel made without a record.
    pub recorded: bool,
    /// What the cancel was built from.
    pub path: CancelPath,
}

/// What a cancel was built from: the order's record, or (without one) its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelPath {
    /// The stored metadata, claimed and settled in the store: ordermeta's own path.
    Record,
    /// The printable order id alone, parsed: no record existed (recording off, out of the
    /// rollout scope, a lost store). Nothing was read from or written to a record.
    OrderId,
    /// [`cancel_exact`](OrderMetaClient::cancel_exact): the caller's `OrderId` and good-til,
    /// the legacy path.
    Exact,
}

impl CancelPath {
    /// A stable snake_case label (metrics, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            CancelPath::Record => "record",
            CancelPath::OrderId => "order_id",
            CancelPath::Exact => "exact",
        }
    }
}

impl OrderMetaClient {
    /// Cancels the order recorded under `order_id` (the seed's flow): look up, check status,
    /// ownership and expiry against the chain, claim it (`active -> cancelling`, with this
    /// client's lease), broadcast `MsgCancelOrder` with the stored `OrderId` and good-til —
    /// re-sent with bounded backoff on transport failures ([`CancelRetry`](crate::CancelRetry))
    /// — and record the outcome.
    ///
    /// A `cancelling` record whose lease has run out (its canceller died or lost its store)
    /// is re-claimed and its cancel re-sent; while the lease is live the answer is
    /// [`CancelError::CancelInProgress`].
    ///
    /// A **stateful** cancel (long-term, conditional) takes effect in the next block, which
    /// can still fail it: this returns once the node accepted it (CheckTx) and the record stays
    /// `cancelling` — the claim is kept — until the block's result is
    /// [confirmed](OrderMetaClient::confirm_outstanding): `cancelled`, or `active` again if the
    /// order is still live (see [`ConfirmSettings`](crate::ConfirmSettings)).
    ///
    /// The [recording switch](crate::RecordingSwitch) does not matter here: it governs
    /// recording new orders, and an order with a record is cancelled from it whatever the
    /// switch says. An order **without** a record (placed with recording off or outside the
    /// rollout scope, or its store lost) is cancelled from its id alone when
    /// [`ChainSettings::cancel_from_id`](crate::ChainSettings::cancel_from_id) is on (the
    /// default): the id carries the chain's `OrderId` and good-til; the owner must be the
    /// signer; the chain's answer decides; the result says [`CancelPath::OrderId`]. A string
    /// that is not an ordermeta id (and has no record) is
    /// [`CancelError::InvalidOrderId`]. Without the `recording` feature there is no store
    /// path: every cancel is made from the id (or refused with
    /// [`CancelError::RecordingDisabled`] when `cancel_from_id` is off).
    pub async fn cancel_order(&self, order_id: &str) -> Result<Cancelled, CancelError> {
        let outcome = self.cancel_inner(order_id).await;
        let label = match &outcome {
            Ok(_) => "cancelled",
            Err(e) => e.kind().as_str(),
        };
        count_cancel(label);
        match &outcome {
            Ok(c) => {
                tracing::info!(order_id, tx_hash = %c.tx_hash, path = c.path.as_str(), outcome = label, "cancel attempt")
            }
            Err(e) => tracing::warn!(order_id, outcome = label, error = %e, "cancel attempt"),
        }
        outcome
    }

    async fn cancel_inner(&self, order_id: &str) -> Result<Cancelled, CancelError> {
        if self.limiter.check().is_err() {
            return Err(CancelError::RateLimited {
                order_id: order_id.to_owned(),
            });
        }
        // The rollback build has no store path at all.
        if !RecordingSwitch::compiled_in() {
            return self.cancel_without_record(order_id).await;
        }
        // This client's own placement of the order may still have its `active` write queued:
        // run it first, so that the record says what the placement learnt.
        self.active.finisher.settle(order_id).await;
        let meta = match timed("get", self.store.get(order_id)).await {
            Ok(Some(meta)) => meta,
            Ok(None) => return self.cancel_without_record(order_id).await,
            Err(e) => return Err(CancelError::from_store(order_id, e)),
        };
        // An active order is claimed; a stale claim is taken over (the old claimant may have
        // given it back meanwhile, hence `active` too); anything else answers by its status.
        let from: &[OrderStatus] = if is_stale_claim(&meta, now()) {
            &[OrderStatus::Active, OrderStatus::Cancelling]
        } else {
            status_gate(&meta, meta.status)?;
            &[OrderStatus::Active]
        };
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
                from,
                OrderStatus::Expired,
                "good-til passed",
                None,
            )
            .await;
            return Err(expired(&meta));
        }
        let claimed = self
            .claim(order_id, from)
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

    /// Broadcasts the cancel of a claimed (`cancelling`) order, re-sending it on transport
    /// failures within the retry policy, and records the outcome.
    pub(super) async fn send_cancel(&self, meta: &OrderMetadata) -> Result<Cancelled, CancelError> {
        let order_id = meta.order_id.as_str();
        let sent = self
            .settings
            .cancel_retry
            .run("cancel", || {
                self.gateway.cancel(&meta.dydx_order_id, meta.good_til)
            })
            .await;
        match sent {
            // A stateful cancel takes effect in the next block, which can still fail it: the
            // claim is kept until the block's result is confirmed (see `confirm.rs`).
            Ok(tx_hash) if meta.dydx_order_id.is_stateful() && self.confirms() => {
                self.await_block(TxKind::Cancel, order_id, meta.good_til, &tx_hash);
                Ok(Cancelled {
                    order_id: order_id.to_owned(),
                    tx_hash,
                    recorded: true,
                    path: CancelPath::Record,
                })
            }
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
                    path: CancelPath::Record,
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
            // The stateful order is gone. With an indexer, it says whether it filled, was
            // cancelled or expired. Without (or if it cannot tell yet): expired if the chain's
            // clock says so; otherwise it filled or was cancelled elsewhere. Record it
            // cancelled (no longer live); the indexer sync or a fill feed corrects it to
            // filled (`cancelled -> filled` is legal).
            Some(c) if c.is_clob(codes::STATEFUL_ORDER_DOES_NOT_EXIST) => {
                match self.resolve_gone(order_id).await {
                    Some(Applied::Filled) => {
                        return CancelError::AlreadyFilled {
                            order_id: order_id.to_owned(),
                        };
                    }
                    Some(Applied::Expired) => return expired(meta),
                    Some(_) => {
                        return CancelError::AlreadyCancelled {
                            order_id: order_id.to_owned(),
                            cancelled_at: None,
                        };
                    }
                    None => {}
                }
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
            // Any other refusal: the chain said no, for a reason ordermeta does not act on.
            Some(c) => {
                self.release(order_id, &c.to_string()).await;
                CancelError::rejected(order_id, &c)
            }
            // Transport failure after the retries (or a local build failure): the cancel may
            // or may not have reached the node; a later one is harmless.
            None => {
                self.release(order_id, &e.to_string()).await;
                CancelError::NetworkError {
                    order_id: order_id.to_owned(),
                    source: Box::new(e),
                }
            }
        }
    }

    /// Gives a claim back (`cancelling -> active`) after a cancel that did not happen — only
    /// while the claim is still this client's: once its lease ran out and another canceller
    /// re-claimed the order, the order is that canceller's to settle.
    pub(super) async fn release(&self, order_id: &str, reason: &str) {
        let req = TransitionRequest::new(order_id, &[OrderStatus::Cancelling], OrderStatus::Active)
            .reason(reason)
            .require_lease(self.claim_token.clone());
        self.record_outcome(req).await;
    }

    /// Records a transition whose failure must not hide the chain outcome from the caller;
    /// returns whether it was recorded. Outcomes the chain decided (cancelled, expired) need
    /// no lease condition: the chain is the truth, whoever holds the claim.
    pub(super) async fn settle(
        &self,
        order_id: &str,
        from: &[OrderStatus],
        to: OrderStatus,
        reason: &str,
        cancel_tx_hash: Option<&str>,
    ) -> bool {
        let mut req = TransitionRequest::new(order_id, from, to).reason(reason);
        req.cancel_tx_hash = cancel_tx_hash.map(str::to_owned);
        self.record_outcome(req).await
    }

    async fn record_outcome(&self, req: TransitionRequest) -> bool {
        self.active.finisher.record_outcome(req).await
    }

    /// The chain's clock; unreachable means a retryable network error for `order_id`.
    pub(super) async fn clock(&self, order_id: &str) -> Result<ChainClock, CancelError> {
        self.gateway
            .clock()
            .await
            .map_err(|e| CancelError::NetworkError {
                order_id: order_id.to_owned(),
                source: Box::new(e),
            })
    }
}

/// The cancel error a record's status implies, if the status rules out cancelling.
pub(super) fn status_gate(meta: &OrderMetadata, status: OrderStatus) -> Result<(), CancelError> {
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

/// The error for an order whose good-til has passed.
pub(super) fn expired(meta: &OrderMetadata) -> CancelError {
    CancelError::OrderExpired {
        order_id: meta.order_id.clone(),
        at: meta.good_til,
    }
}
