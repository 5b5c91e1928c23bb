//! [`OrderMetaClient::place_order`]: record first, then broadcast.

use dydx_proto::dydxprotocol::clob::Order;
use ordermeta_core::{
    ErrorKind, HistoryEntry, NewOrder, OrderMetadata, OrderStatus, OrderType, Side, StoreError,
    TransitionRequest, now,
};

use super::OrderMetaClient;
use super::active::{ActiveWrite, Job};
use super::confirm::TxKind;
use super::lookup::PlaceOptions;
use super::metrics::{
    count_decision, count_fail_open, count_place, count_recording_failure, timed,
};
use super::rollout::{Counters, FailurePolicy};
use crate::convert::{describe, order_key};
use crate::error::{NotRecorded, PlaceError};
use crate::gateway::GatewayError;
use crate::validate::validate_place;

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
    /// Whether the metadata was recorded before the broadcast (false outside the rollout
    /// scope, with recording off, and for a fail-open placement).
    pub recorded: bool,
    /// What happened to the order's record: the rollout decision and its outcome.
    pub record: RecordOutcome,
}

/// What placement did with an order's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordOutcome {
    /// In scope: recorded `pending` before the broadcast, as ordermeta does.
    Recorded,
    /// Outside the rollout scope (or recording off): placed exactly as without ordermeta.
    /// Cancellable from its id alone ([`ChainSettings::cancel_from_id`](crate::ChainSettings::cancel_from_id))
    /// or with [`cancel_exact`](OrderMetaClient::cancel_exact).
    OutOfScope,
    /// In scope, but the store was unreachable: broadcast anyway under
    /// [`FailurePolicy::FailOpen`]; the record is written in the background once the store
    /// answers again.
    Deferred,
}

impl OrderMetaClient {
    /// Places `order` (as built by `dydx::node::OrderBuilder`) and records its metadata
    /// **before** broadcasting it. [`place`](Self::place) reads the details from the order;
    /// here the caller gives them, and a side or type the order contradicts is
    /// [`PlaceError::Details`] (nothing recorded or sent).
    ///
    /// An order the [rollout scope](crate::RolloutScope) admits: records `pending`; if that
    /// fails, nothing is broadcast ([`PlaceError::Storage`]) — unless the client is
    /// [fail-open](FailurePolicy::FailOpen) and the store is unreachable: then the order is
    /// broadcast anyway and its record written after the broadcast
    /// ([`RecordOutcome::Deferred`]). Then broadcasts once — placement is never retried —
    /// and: accepted → `active` with the tx hash, written after this returns by the client's
    /// background writer unless [`ActiveWrite::Inline`] is chosen (see [`ActiveWrite`]: this
    /// client's cancel, reconciliation and kill switch run a queued write first); refused → `failed` with the chain's answer
    /// ([`PlaceError::Rejected`]); no answer within the gateway's deadline → stays `pending`
    /// ([`PlaceError::Network`]) until reconciliation settles it. An order outside the scope
    /// (or with recording off): broadcast exactly as without ordermeta
    /// ([`RecordOutcome::OutOfScope`]). Every decision is counted
    /// ([`rollout_stats`](Self::rollout_stats), `ordermeta_recording_decisions_total`).
    ///
    /// Before the record, the order is checked against the chain's stateless rules
    /// (`MsgPlaceOrder.ValidateBasic`): one the node would refuse is refused with the chain's
    /// code ([`PlaceError::Invalid`]) and nothing is recorded. A **stateful** placement is
    /// recorded `active` once the node accepted it (CheckTx), so it can be cancelled at once;
    /// if its block then fails it, its [confirmation](Self::confirm_outstanding) records it
    /// `failed`.
    ///
    /// If a kill switch ([`cancel_all`](Self::cancel_all)) or reconciliation claimed the
    /// `pending` record while the broadcast was in flight, its cancel may have reached the
    /// node before this placement did (a stateful cancel then answers "does not exist" and
    /// the order would stay live); so once the placement is accepted, one more cancel is sent.
    pub async fn place_order(
        &self,
        order: Order,
        details: OrderDetails,
    ) -> Result<Placed, PlaceError> {
        self.place_order_with(order, details, PlaceOptions::default())
            .await
    }

    /// [`place_order`](Self::place_order) with options: a caller label stored on the record
    /// ([`PlaceOptions::label`]) and the [client-id reuse policy](crate::ClientIdReuse) for this
    /// placement. When the order's client id names a record that is still open,
    /// [`ClientIdReuse::Refuse`](crate::ClientIdReuse::Refuse) refuses the placement ([`PlaceError::ClientIdInUse`]) before
    /// anything is recorded or sent; [`ClientIdReuse::MarkReplaced`](crate::ClientIdReuse::MarkReplaced) places it and, once the
    /// node accepted it, records the previous order (same `OrderId`) `cancelled` as replaced.
    pub async fn place_order_with(
        &self,
        order: Order,
        details: OrderDetails,
        options: PlaceOptions,
    ) -> Result<Placed, PlaceError> {
        let (id, good_til) = describe(&order).map_err(|reason| PlaceError::InvalidOrder {
            reason: reason.to_owned(),
        })?;
        let order_id = order_key(&id, good_til);
        if !self.recording.admits(&id) {
            Counters::bump(&self.rollout.counters.out_of_scope);
            count_decision("out_of_scope");
            self.rollout
                .remembered
                .remember(&order_id, NotRecorded::OutOfScope);
            let tx_hash = self
                .gateway
                .place(order)
                .await
                .map_err(|e| place_failure(&order_id, e))?;
            count_place("unrecorded");
            return Ok(Placed {
                order_id,
                tx_hash,
                recorded: false,
                record: RecordOutcome::OutOfScope,
            });
        }
        let stateful = id.is_stateful();
        // Details that contradict the order would be recorded as if they were true (refused
        // after the chain's own rules, below).
        let contradiction = details.check_order(&order).err();
        let mut meta = OrderMetadata::new(
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
        meta.label = options.label;
        if let Err(e) = meta.validate() {
            return Err(PlaceError::InvalidOrder {
                reason: e.to_string(),
            });
        }
        // What the chain's ValidateBasic would refuse is refused here, before any record.
        if let Err(error) = validate_place(&order) {
            count_place("invalid");
            tracing::warn!(order_id, %error, "order refused before recording");
            return Err(PlaceError::Invalid { order_id, error });
        }
        if let Some(source) = contradiction {
            count_place("invalid");
            return Err(PlaceError::Details { order_id, source });
        }
        let reuse = options
            .client_id_reuse
            .unwrap_or(self.settings.client_id_reuse);
        let replaced = self.reused_client_id(&meta, reuse).await?;
        if let Err(source) = timed("record", self.store.record(&meta)).await {
            count_recording_failure();
            Counters::bump(&self.rollout.counters.recording_failed);
            count_decision("recording_failed");
            return match self.settings.failure_policy {
                FailurePolicy::FailOpen(_) if is_outage(&source) => {
                    self.place_fail_open(order, meta, source).await
                }
                _ => {
                    tracing::error!(order_id, error = %source, "metadata not recorded; order not placed");
                    Err(PlaceError::Storage { order_id, source })
                }
            };
        }
        Counters::bump(&self.rollout.counters.recorded);
        count_decision("recorded");
        match self.gateway.place(order).await {
            Ok(tx_hash) => {
                // Recorded active at CheckTx (cancellable at once); the block can still fail a
                // stateful placement, which its confirmation then records (`confirm.rs`).
                if stateful && self.confirms() {
                    self.await_block(TxKind::Place, &order_id, good_til, &tx_hash);
                }
                let job = Job {
                    meta,
                    tx_hash: tx_hash.clone(),
                    replaced,
                };
                match options.active_write.unwrap_or(self.settings.active_write) {
                    ActiveWrite::Background => self.active.enqueue(job).await,
                    ActiveWrite::Inline => self.active.inline(Some(job)).await,
                }
                count_place("placed");
                tracing::info!(order_id, tx_hash, "order placed");
                Ok(Placed {
                    order_id,
                    tx_hash,
                    recorded: true,
                    record: RecordOutcome::Recorded,
                })
            }
            Err(GatewayError::Rejected(error)) => {
                let req =
                    TransitionRequest::new(&order_id, &[OrderStatus::Pending], OrderStatus::Failed)
                        .reason(error.to_string());
                if let Err(e) = timed("transition", self.store.transition(&req)).await {
                    count_recording_failure();
                    tracing::error!(order_id, error = %e, "rejected, but marking it failed failed");
                }
                count_place("rejected");
                tracing::warn!(order_id, %error, "placement rejected");
                Err(PlaceError::Rejected { order_id, error })
            }
            Err(source) => {
                count_place("unknown");
                tracing::warn!(order_id, error = %source, "placement outcome unknown; left pending");
                Err(PlaceError::Network { order_id, source })
            }
        }
    }
}

impl OrderMetaClient {
    /// Fail-open: broadcasts an order whose `pending` record the store refused, then hands
    /// its record — `active` with the tx hash, or `pending` if the outcome is unknown — to
    /// the write-behind. A refused placement leaves nothing live, so nothing to write.
    async fn place_fail_open(
        &self,
        order: Order,
        mut meta: OrderMetadata,
        source: StoreError,
    ) -> Result<Placed, PlaceError> {
        let order_id = meta.order_id.clone();
        Counters::bump(&self.rollout.counters.fail_open);
        count_fail_open();
        tracing::warn!(
            order_id,
            dydx_order_id = %meta.dydx_order_id,
            good_til = %meta.good_til,
            error = %source,
            "store unreachable: placing fail-open, without a record; it is written after the broadcast"
        );
        let FailurePolicy::FailOpen(backfill) = self.settings.failure_policy else {
            return Err(PlaceError::Storage { order_id, source });
        };
        match self.gateway.place(order).await {
            Ok(tx_hash) => {
                meta.tx_hash = Some(tx_hash.clone());
                late_history(&mut meta, OrderStatus::Active, "placement accepted");
                self.rollout.defer(&self.store, backfill, meta);
                count_place("placed");
                Ok(Placed {
                    order_id,
                    tx_hash,
                    recorded: false,
                    record: RecordOutcome::Deferred,
                })
            }
            Err(GatewayError::Rejected(error)) => {
                count_place("rejected");
                Err(PlaceError::Rejected { order_id, error })
            }
            Err(source) => {
                // It may be live: record it pending, for reconciliation to settle.
                late_history(&mut meta, OrderStatus::Pending, "placement outcome unknown");
                self.rollout.defer(&self.store, backfill, meta);
                count_place("unknown");
                Err(PlaceError::Network { order_id, source })
            }
        }
    }
}

/// Sets the status of a record written after its broadcast, with a history that says so.
fn late_history(meta: &mut OrderMetadata, status: OrderStatus, what: &str) {
    meta.status = status;
    meta.history = vec![HistoryEntry {
        status,
        at: meta.placed_at,
        reason: Some(format!(
            "{what}; recorded after the broadcast (fail-open: the store was unreachable)"
        )),
    }];
}

/// Whether a store error means the store is unreachable (the case fail-open is for), rather
/// than a refusal of this record (a duplicate id, invalid metadata).
fn is_outage(e: &StoreError) -> bool {
    matches!(e.kind(), ErrorKind::Backend | ErrorKind::Timeout)
}

/// The error of a broadcast that failed while recording was off (nothing to mark).
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
