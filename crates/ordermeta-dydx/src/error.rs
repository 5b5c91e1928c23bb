//! The errors of the client's operations: [`PlaceError`], [`CancelError`] (with
//! [`CancelErrorKind`] and the [`MANUAL_CANCEL_GUIDANCE`] it gives), [`SweepError`].
//!
//! Each is classified by variant or kind; callers match on those, never on message text.

use std::fmt;

use chrono::{DateTime, Utc};
use ordermeta_core::{BoxError, GoodTil, OrderStatus, StoreError};

use crate::convert::ORDER_KEY_FORMAT;
use crate::details::DetailsError;
use crate::gateway::{ChainError, GatewayError};

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
    /// The order breaks one of the chain's stateless rules (`MsgPlaceOrder.ValidateBasic`,
    /// e.g. a conditional order without a condition type, fill-or-kill, reduce-only on a
    /// non-IOC order): the node would refuse it with `error`'s codespace and code, so it was
    /// refused before its record was written. Nothing was recorded or sent.
    #[error("order {order_id} not placed: the chain would refuse it ({error})")]
    Invalid {
        /// Our order id.
        order_id: String,
        /// The chain's answer, as its `ValidateBasic` gives it.
        error: ChainError,
    },
    /// Recording the metadata failed, so the order was **not** broadcast: an order without
    /// metadata is exactly what ordermeta prevents. (With
    /// [`FailurePolicy::FailOpen`](crate::FailurePolicy::FailOpen), only a failure that is
    /// not an outage — a duplicate id, metadata that does not validate — ends here.)
    #[error("order {order_id} not placed: recording its metadata failed: {source}")]
    Storage {
        /// Our order id.
        order_id: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The node refused the placement (any non-zero code, including an sdk 32 sequence
    /// mismatch that persisted after the gateway's re-sync and retry); the record is marked
    /// `failed`.
    #[error("order {order_id} rejected by the node: {error}")]
    Rejected {
        /// Our order id.
        order_id: String,
        /// The chain's answer.
        error: ChainError,
    },
    /// The order's client id (same owner, subaccount and market) names a record that is
    /// still open, and the reuse policy is
    /// [`ClientIdReuse::Refuse`](crate::ClientIdReuse::Refuse): nothing was recorded or sent.
    #[error(
        "order {order_id} not placed: its client id is in use by {previous} ({status}); \
         cancel that order first, or use another client id"
    )]
    ClientIdInUse {
        /// Our order id of the refused placement.
        order_id: String,
        /// The open record with that client id.
        previous: String,
        /// Its status.
        status: OrderStatus,
    },
    /// The order details disagree with the order (the caller's side or type is not the
    /// order's; see [`OrderDetails::check`](crate::OrderDetails::check)), or cannot be read
    /// from it ([`OrderMetaClient::place`](crate::OrderMetaClient::place)). Nothing was
    /// recorded or sent.
    #[error("order {order_id} not placed: {source}")]
    Details {
        /// Our order id (empty if the order has none).
        order_id: String,
        /// What disagrees.
        #[source]
        source: DetailsError,
    },
    /// Transport failure only: the node could not be reached or did not answer within the
    /// gateway's deadline ([`GatewayError::Timeout`]): the order may or may not be live.
    /// Placement is never retried automatically. The record stays `pending`;
    /// [`OrderMetaClient::reconcile_pending`](crate::OrderMetaClient::reconcile_pending)
    /// (or the [`Supervisor`](crate::Supervisor)) settles it.
    #[error("order {order_id}: placement outcome unknown: {source}")]
    Network {
        /// Our order id.
        order_id: String,
        /// The gateway's error.
        #[source]
        source: GatewayError,
    },
}

/// Guidance appended to errors where ordermeta cannot cancel an order for the caller.
pub const MANUAL_CANCEL_GUIDANCE: &str = "cancel it manually: in the dYdX web app \
(Orders tab, Cancel) or by sending MsgCancelOrder with the order's OrderId and good-til; \
a short-term order also stops by itself at its good-til block";

/// Why cancelling an order by its id failed: the original design's taxonomy, plus what a
/// correct, concurrent, rate-limited canceller adds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CancelError {
    /// No metadata exists for the id (placed before ordermeta, outside the rollout scope,
    /// with recording off, or lost), and cancelling from the id alone is switched off
    /// ([`ChainSettings::cancel_from_id`](crate::ChainSettings::cancel_from_id)).
    #[error(
        "order {order_id}: metadata not found in {}{}; cancel it with cancel_exact(OrderId, good-til), \
         or turn cancel_from_id on, or {}",
        store.as_deref().unwrap_or("the client's store"),
        not_recorded.map(|r| format!(" ({r})")).unwrap_or_default(),
        MANUAL_CANCEL_GUIDANCE
    )]
    MetadataNotFound {
        /// The id asked for.
        order_id: String,
        /// The store that was searched, as the client describes it
        /// ([`OrderMetaClient::describe_store`](crate::OrderMetaClient::describe_store)).
        store: Option<String>,
        /// Why there is no record, when the client knows.
        not_recorded: Option<NotRecorded>,
    },
    /// The string is not an ordermeta order id (see
    /// [`ORDER_KEY_FORMAT`](crate::ORDER_KEY_FORMAT)), and no record exists under it.
    #[error("{order_id:?} is not an ordermeta order id ({reason}); expected {ORDER_KEY_FORMAT}")]
    InvalidOrderId {
        /// The string given.
        order_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The order's good-til has passed; it can no longer fill and needs no cancel.
    #[error("Order {order_id} has expired at {at}")]
    OrderExpired {
        /// The id.
        order_id: String,
        /// The good-til it expired at.
        at: GoodTil,
    },
    /// The order was already cancelled.
    #[error("Order {order_id} is already cancelled")]
    AlreadyCancelled {
        /// The id.
        order_id: String,
        /// When it was cancelled, if recorded.
        cancelled_at: Option<DateTime<Utc>>,
    },
    /// The order already filled; there is nothing to cancel.
    #[error("Order {order_id} is already filled")]
    AlreadyFilled {
        /// The id.
        order_id: String,
    },
    /// Another canceller holds the claim on this order (or the node already has its cancel).
    #[error("Order {order_id} is already being cancelled")]
    CancelInProgress {
        /// The id.
        order_id: String,
    },
    /// The placement was rejected by the node, so the order never existed on chain.
    #[error("Order {order_id} was never placed: the node rejected its placement")]
    PlacementFailed {
        /// The id.
        order_id: String,
    },
    /// The placement is recorded but not yet confirmed; retry once it is (or reconcile).
    #[error("Order {order_id} is still pending: its placement is not confirmed yet, retry shortly")]
    PlacementPending {
        /// The id.
        order_id: String,
    },
    /// Transport failure only: the node could not be reached or did not answer within the
    /// gateway's deadline, even after the bounded retries of the cancel (or the cancel could
    /// not be built locally). The claim is given back (the order is `active` again); the
    /// cancel may or may not have reached the node, and sending it again is harmless.
    #[error("Order {order_id}: network error while cancelling: {source}")]
    NetworkError {
        /// The id.
        order_id: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The chain refused the cancel with a code ordermeta does not act on (for example clob
    /// 29, or sdk 32 — an account sequence mismatch that persisted after the gateway's re-sync
    /// and retry). The claim is given back; the order may still be live. `codespace`/`code`
    /// classify it; `log` is the node's text, for people.
    #[error("Order {order_id}: the chain refused the cancel ({codespace}/{code}): {log}")]
    Rejected {
        /// The id.
        order_id: String,
        /// Module codespace (`clob`, `sdk`, …).
        codespace: String,
        /// The module's error code.
        code: u32,
        /// The node's log line.
        log: String,
    },
    /// The stored metadata is corrupt, so no correct cancel can be built.
    #[error(
        "Order {order_id}: stored metadata is invalid ({reason}); {}",
        MANUAL_CANCEL_GUIDANCE
    )]
    InvalidMetadata {
        /// The id.
        order_id: String,
        /// What is wrong.
        reason: String,
    },
    /// The signing account does not own the order's subaccount.
    #[error("Order {order_id} belongs to {owner}, not to the signing account {signer}")]
    NotOwner {
        /// The id.
        order_id: String,
        /// The owner recorded for the order.
        owner: String,
        /// The address that would sign the cancel.
        signer: String,
    },
    /// Too many cancels: ordermeta's own limiter, or the chain's (code 5001).
    #[error("Order {order_id}: cancel rate limit exceeded, retry later")]
    RateLimited {
        /// The id.
        order_id: String,
    },
    /// Metadata recording is compiled out of this build (Cargo feature `recording` left
    /// out), so there is no record to cancel from — and cancelling from the id alone is
    /// switched off ([`ChainSettings::cancel_from_id`](crate::ChainSettings::cancel_from_id)),
    /// or the kill switch was asked for (it works from records only). The runtime switch
    /// never causes it: it governs recording new orders, not cancelling.
    #[error(
        "Order {order_id}: metadata recording is compiled out of this build (feature `recording`), \
         so there is no record to cancel from; use cancel_exact(OrderId, good-til) or cancel_from_id, or {}",
        MANUAL_CANCEL_GUIDANCE
    )]
    RecordingDisabled {
        /// The id.
        order_id: String,
    },
    /// The store failed; nothing was sent to the chain unless stated otherwise.
    #[error("Order {order_id}: metadata store error: {source}")]
    Storage {
        /// The id.
        order_id: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

/// The kind of a [`CancelError`], for metrics labels and matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelErrorKind {
    /// [`CancelError::MetadataNotFound`].
    MetadataNotFound,
    /// [`CancelError::InvalidOrderId`].
    InvalidOrderId,
    /// [`CancelError::OrderExpired`].
    OrderExpired,
    /// [`CancelError::AlreadyCancelled`].
    AlreadyCancelled,
    /// [`CancelError::AlreadyFilled`].
    AlreadyFilled,
    /// [`CancelError::CancelInProgress`].
    CancelInProgress,
    /// [`CancelError::PlacementFailed`].
    PlacementFailed,
    /// [`CancelError::PlacementPending`].
    PlacementPending,
    /// [`CancelError::NetworkError`].
    NetworkError,
    /// [`CancelError::Rejected`].
    Rejected,
    /// [`CancelError::InvalidMetadata`].
    InvalidMetadata,
    /// [`CancelError::NotOwner`].
    NotOwner,
    /// [`CancelError::RateLimited`].
    RateLimited,
    /// [`CancelError::RecordingDisabled`].
    RecordingDisabled,
    /// [`CancelError::Storage`].
    Storage,
}

impl CancelErrorKind {
    /// A stable snake_case label (metrics, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            CancelErrorKind::MetadataNotFound => "metadata_not_found",
            CancelErrorKind::InvalidOrderId => "invalid_order_id",
            CancelErrorKind::OrderExpired => "order_expired",
            CancelErrorKind::AlreadyCancelled => "already_cancelled",
            CancelErrorKind::AlreadyFilled => "already_filled",
            CancelErrorKind::CancelInProgress => "cancel_in_progress",
            CancelErrorKind::PlacementFailed => "placement_failed",
            CancelErrorKind::PlacementPending => "placement_pending",
            CancelErrorKind::NetworkError => "network_error",
            CancelErrorKind::Rejected => "rejected",
            CancelErrorKind::InvalidMetadata => "invalid_metadata",
            CancelErrorKind::NotOwner => "not_owner",
            CancelErrorKind::RateLimited => "rate_limited",
            CancelErrorKind::RecordingDisabled => "recording_disabled",
            CancelErrorKind::Storage => "storage",
        }
    }
}

impl fmt::Display for CancelErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl CancelError {
    /// The kind of this error.
    pub fn kind(&self) -> CancelErrorKind {
        match self {
            CancelError::MetadataNotFound { .. } => CancelErrorKind::MetadataNotFound,
            CancelError::InvalidOrderId { .. } => CancelErrorKind::InvalidOrderId,
            CancelError::OrderExpired { .. } => CancelErrorKind::OrderExpired,
            CancelError::AlreadyCancelled { .. } => CancelErrorKind::AlreadyCancelled,
            CancelError::AlreadyFilled { .. } => CancelErrorKind::AlreadyFilled,
            CancelError::CancelInProgress { .. } => CancelErrorKind::CancelInProgress,
            CancelError::PlacementFailed { .. } => CancelErrorKind::PlacementFailed,
            CancelError::PlacementPending { .. } => CancelErrorKind::PlacementPending,
            CancelError::NetworkError { .. } => CancelErrorKind::NetworkError,
            CancelError::Rejected { .. } => CancelErrorKind::Rejected,
            CancelError::InvalidMetadata { .. } => CancelErrorKind::InvalidMetadata,
            CancelError::NotOwner { .. } => CancelErrorKind::NotOwner,
            CancelError::RateLimited { .. } => CancelErrorKind::RateLimited,
            CancelError::RecordingDisabled { .. } => CancelErrorKind::RecordingDisabled,
            CancelError::Storage { .. } => CancelErrorKind::Storage,
        }
    }

    /// The order id the error is about.
    pub fn order_id(&self) -> &str {
        match self {
            CancelError::MetadataNotFound { order_id, .. }
            | CancelError::InvalidOrderId { order_id, .. }
            | CancelError::OrderExpired { order_id, .. }
            | CancelError::AlreadyCancelled { order_id, .. }
            | CancelError::AlreadyFilled { order_id }
            | CancelError::CancelInProgress { order_id }
            | CancelError::PlacementFailed { order_id }
            | CancelError::PlacementPending { order_id }
            | CancelError::NetworkError { order_id, .. }
            | CancelError::Rejected { order_id, .. }
            | CancelError::InvalidMetadata { order_id, .. }
            | CancelError::NotOwner { order_id, .. }
            | CancelError::RateLimited { order_id }
            | CancelError::RecordingDisabled { order_id }
            | CancelError::Storage { order_id, .. } => order_id,
        }
    }

    /// Whether retrying the same cancel later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CancelError::NetworkError { .. }
                | CancelError::RateLimited { .. }
                | CancelError::PlacementPending { .. }
                | CancelError::Storage { .. }
        )
    }

    /// The error for a refusal by the chain that ordermeta does not map to another variant.
    pub fn rejected(order_id: &str, error: &ChainError) -> Self {
        CancelError::Rejected {
            order_id: order_id.to_owned(),
            codespace: error.codespace.clone(),
            code: error.code,
            log: error.log.clone(),
        }
    }

    /// Maps a store error met while cancelling `order_id`: not-found and corrupt records get
    /// their own variants so the caller sees the manual-cancel guidance.
    pub fn from_store(order_id: &str, err: StoreError) -> Self {
        match err {
            StoreError::NotFound { .. } => CancelError::MetadataNotFound {
                order_id: order_id.to_owned(),
                store: None,
                not_recorded: None,
            },
            StoreError::InvalidMetadata { reason, .. } => CancelError::InvalidMetadata {
                order_id: order_id.to_owned(),
                reason,
            },
            other => CancelError::Storage {
                order_id: order_id.to_owned(),
                source: other,
            },
        }
    }
}

/// Why an order has no record, as far as the client that placed it (or the rollout scope in
/// force) knows: what [`CancelError::MetadataNotFound`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotRecorded {
    /// This client placed it while the rollout scope left it out (or recording was off).
    OutOfScope,
    /// This client does not remember the order, but the rollout scope in force now leaves it
    /// out: it was probably placed outside the scope (or before ordermeta).
    OutsideCurrentScope,
    /// This client placed it fail-open while the store was down, and its record could not be
    /// written: it is live without metadata.
    RecordingFailed,
}

impl fmt::Display for NotRecorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotRecorded::OutOfScope => "it was placed outside the rollout scope, so not recorded",
            NotRecorded::OutsideCurrentScope => {
                "the rollout scope in force leaves it out: probably placed outside the scope"
            }
            NotRecorded::RecordingFailed => {
                "it was placed fail-open while the store was down and its record could not be written"
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_the_seed() {
        let e = CancelError::OrderExpired {
            order_id: "o-1".into(),
            at: GoodTil::Block(1234),
        };
        assert_eq!(e.to_string(), "Order o-1 has expired at block 1234");
        let e = CancelError::MetadataNotFound {
            order_id: "o-2".into(),
            store: None,
            not_recorded: None,
        };
        assert!(e.to_string().contains("manually"), "{e}");
        assert_eq!(e.kind().as_str(), "metadata_not_found");
        let e = CancelError::MetadataNotFound {
            order_id: "o-3".into(),
            store: Some("postgres schema bots".into()),
            not_recorded: Some(NotRecorded::OutOfScope),
        };
        let text = e.to_string();
        assert!(text.contains("postgres schema bots"), "{text}");
        assert!(text.contains("outside the rollout scope"), "{text}");
        assert!(text.contains("cancel_exact"), "{text}");
        let e = CancelError::InvalidOrderId {
            order_id: "nope".into(),
            reason: "it has no good-til".into(),
        };
        assert_eq!(e.kind(), CancelErrorKind::InvalidOrderId);
        assert_eq!(e.kind().as_str(), "invalid_order_id");
        assert!(
            e.to_string()
                .contains("owner/subaccount/clob_pair/flags/client_id@b"),
            "{e}"
        );
        assert!(!e.is_retryable());
    }

    #[test]
    fn store_errors_map_to_cancel_taxonomy() {
        let nf = CancelError::from_store(
            "x",
            StoreError::NotFound {
                order_id: "x".into(),
            },
        );
        assert_eq!(nf.kind(), CancelErrorKind::MetadataNotFound);
        let inv = CancelError::from_store("x", StoreError::invalid(Some("x"), "bad"));
        assert_eq!(inv.kind(), CancelErrorKind::InvalidMetadata);
        let be = CancelError::from_store("x", StoreError::backend("down"));
        assert_eq!(be.kind(), CancelErrorKind::Storage);
        assert!(be.is_retryable());
    }
}
