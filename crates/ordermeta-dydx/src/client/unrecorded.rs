//! Cancels without a record: from the printable order id alone (the fallback of
//! [`OrderMetaClient::cancel_order`]) and [`OrderMetaClient::cancel_exact`] (the legacy path:
//! the caller's `OrderId` and good-til). Neither reads nor writes a record; the chain's answer
//! decides.

use ordermeta_core::{GoodTil, OrderId};

use super::OrderMetaClient;
use super::cancel::{CancelPath, Cancelled};
use super::metrics::{count_cancel, count_cancel_without_record};
use super::rollout::Counters;
use crate::convert::{order_key, parse_order_key};
use crate::error::{CancelError, NotRecorded};
use crate::gateway::{GatewayError, codes};
use crate::recording::RecordingSwitch;

impl OrderMetaClient {
    /// Cancels an order by its chain `OrderId` and good-til, without a record: the
    /// pre-ordermeta path, kept for bots that still hold both (and for the rollback). Sends
    /// `MsgCancelOrder` with exactly these — re-sent with bounded backoff on transport
    /// failures, like every cancel — after checking that the signer owns the order. It
    /// neither reads nor writes the store: a record of the order, if there is one, is
    /// settled later by the expiry sweep (or a fill feed); use
    /// [`cancel_order`](Self::cancel_order) to cancel from the record.
    ///
    /// The good-til must be the order's own (a short-term cancel needs a good-til block at
    /// least the order's; a stateful one the order's good-til block time) and of the order's
    /// kind (a block for flags 0, a block time otherwise), else
    /// [`CancelError::InvalidOrderId`]. The chain's refusals map like those of
    /// `cancel_order`: clob 9 / 32 → `CancelInProgress`, 10 / 3003 → `OrderExpired`, 3006 →
    /// `AlreadyCancelled` (or `OrderExpired` if the clock says so), 5001 → `RateLimited`, any
    /// other → `Rejected`.
    pub async fn cancel_exact(
        &self,
        order_id: &OrderId,
        good_til: GoodTil,
    ) -> Result<Cancelled, CancelError> {
        let key = order_key(order_id, good_til);
        let outcome = self.cancel_exact_inner(&key, order_id, good_til).await;
        count_and_log(&key, &outcome, CancelPath::Exact);
        outcome
    }

    async fn cancel_exact_inner(
        &self,
        key: &str,
        order_id: &OrderId,
        good_til: GoodTil,
    ) -> Result<Cancelled, CancelError> {
        if order_id.is_short_term() != good_til.block().is_some() {
            return Err(CancelError::InvalidOrderId {
                order_id: key.to_owned(),
                reason: "the good-til is not of the order's kind (a block for short-term \
                         orders, a block time for stateful ones)"
                    .to_owned(),
            });
        }
        if self.limiter.check().is_err() {
            return Err(CancelError::RateLimited {
                order_id: key.to_owned(),
            });
        }
        self.send_unrecorded(key, order_id, good_til, CancelPath::Exact)
            .await
    }

    /// `cancel_order` of an id without a record: parse it, and cancel from it if
    /// [`cancel_from_id`](crate::ChainSettings::cancel_from_id) allows; else say why there is
    /// no record, as far as this client knows.
    pub(super) async fn cancel_without_record(
        &self,
        order_id: &str,
    ) -> Result<Cancelled, CancelError> {
        let (id, good_til) =
            parse_order_key(order_id).map_err(|e| CancelError::InvalidOrderId {
                order_id: order_id.to_owned(),
                reason: e.reason.to_owned(),
            })?;
        if !self.settings.cancel_from_id {
            if !RecordingSwitch::compiled_in() {
                return Err(CancelError::RecordingDisabled {
                    order_id: order_id.to_owned(),
                });
            }
            return Err(CancelError::MetadataNotFound {
                order_id: order_id.to_owned(),
                store: self.store_description.clone(),
                not_recorded: self.why_unrecorded(order_id, &id),
            });
        }
        if self.why_unrecorded(order_id, &id).is_none() {
            // In scope and not placed unrecorded by this client: it should have a record. A
            // store opened in the wrong place (another working directory) looks like this.
            tracing::warn!(
                order_id,
                store = self
                    .store_description
                    .as_deref()
                    .unwrap_or("(not described)"),
                "no record of the order in this store; cancelling from its id alone (if the \
                 order was recorded, this client is looking in another store)"
            );
        }
        self.send_unrecorded(order_id, &id, good_til, CancelPath::OrderId)
            .await
    }

    /// Why `order_id` has no record: remembered from its placement by this client, else
    /// inferred from the scope in force.
    fn why_unrecorded(&self, order_id: &str, id: &OrderId) -> Option<NotRecorded> {
        self.rollout
            .remembered
            .recall(order_id)
            .or_else(|| (!self.recording.admits(id)).then_some(NotRecorded::OutsideCurrentScope))
    }

    /// Sends the cancel of an order that has no record (or whose record is not used).
    async fn send_unrecorded(
        &self,
        key: &str,
        id: &OrderId,
        good_til: GoodTil,
        path: CancelPath,
    ) -> Result<Cancelled, CancelError> {
        let signer = self.gateway.signer();
        if id.owner != signer {
            return Err(CancelError::NotOwner {
                order_id: key.to_owned(),
                owner: id.owner.clone(),
                signer,
            });
        }
        let sent = self
            .settings
            .cancel_retry
            .run("cancel", || self.gateway.cancel(id, good_til))
            .await;
        match sent {
            Ok(tx_hash) => {
                Counters::bump(&self.rollout.counters.cancelled_without_record);
                count_cancel_without_record(path.as_str());
                Ok(Cancelled {
                    order_id: key.to_owned(),
                    tx_hash,
                    recorded: false,
                    path,
                })
            }
            Err(e) => Err(self.unrecorded_failure(key, good_til, e).await),
        }
    }

    /// The caller's error for a failed cancel without a record (nothing to settle).
    async fn unrecorded_failure(
        &self,
        key: &str,
        good_til: GoodTil,
        e: GatewayError,
    ) -> CancelError {
        let order_id = key.to_owned();
        let expired = |order_id| CancelError::OrderExpired {
            order_id,
            at: good_til,
        };
        match e.chain() {
            Some(c)
                if c.is_clob(codes::CANCEL_ALREADY_EXISTS)
                    || c.is_clob(codes::STATEFUL_CANCEL_ALREADY_EXISTS) =>
            {
                CancelError::CancelInProgress { order_id }
            }
            Some(c)
                if c.is_clob(codes::HEIGHT_EXCEEDS_GOOD_TIL_BLOCK)
                    || c.is_clob(codes::TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME) =>
            {
                expired(order_id)
            }
            Some(c) if c.is_clob(codes::STATEFUL_ORDER_DOES_NOT_EXIST) => {
                let gone_expired = self.gateway.clock().await.is_ok_and(|clock| {
                    good_til.is_expired(Some(clock.height), Some(clock.block_time))
                });
                if gone_expired {
                    expired(order_id)
                } else {
                    CancelError::AlreadyCancelled {
                        order_id,
                        cancelled_at: None,
                    }
                }
            }
            Some(c) if c.is_clob(codes::BLOCK_RATE_LIMIT_EXCEEDED) => {
                CancelError::RateLimited { order_id }
            }
            Some(c) => CancelError::rejected(key, c),
            None => CancelError::NetworkError {
                order_id,
                source: Box::new(e),
            },
        }
    }
}

/// Counts and logs a cancel attempt made outside `cancel_order` (which does its own).
fn count_and_log(order_id: &str, outcome: &Result<Cancelled, CancelError>, path: CancelPath) {
    let label = match outcome {
        Ok(_) => "cancelled",
        Err(e) => e.kind().as_str(),
    };
    count_cancel(label);
    match outcome {
        Ok(c) => {
            tracing::info!(order_id, tx_hash = %c.tx_hash, path = path.as_str(), outcome = label, "cancel attempt")
        }
        Err(e) => {
            tracing::warn!(order_id, path = path.as_str(), outcome = label, error = %e, "cancel attempt")
        }
    }
}
