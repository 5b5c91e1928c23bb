//! Errors: [`StoreError`] for stores, [`CancelError`] for callers cancelling an order.
//!
//! Both are classified by kind ([`StoreError::kind`], [`CancelError::kind`]); callers match on
//! the kind or the variant, never on message text.

use std::error::Error as StdError;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::model::GoodTil;
use crate::status::OrderStatus;

/// Boxed source error of a backend.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What a [`MetadataStore`](crate::MetadataStore) operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No record has this order id.
    #[error("no metadata recorded for order {order_id}")]
    NotFound {
        /// The order id looked up.
        order_id: String,
    },
    /// A record with this order id already exists; nothing was written.
    #[error("metadata for order {order_id} already exists")]
    AlreadyExists {
        /// The duplicate order id.
        order_id: String,
    },
    /// The compare-and-set lost: the order is not in any of the expected statuses.
    #[error("order {order_id} is {current}, expected one of [{expected}]")]
    StatusConflict {
        /// The order id.
        order_id: String,
        /// The status the order is in now.
        current: OrderStatus,
        /// The statuses the caller expected, comma-separated.
        expected: String,
    },
    /// The requested transition is not in the transition table (a caller bug).
    #[error("illegal transition {from} -> {to}")]
    IllegalTransition {
        /// A status the caller allowed as the starting point.
        from: OrderStatus,
        /// The requested new status.
        to: OrderStatus,
    },
    /// A record (given, or stored and read back) is malformed.
    #[error("invalid metadata{}: {reason}", order_id.as_ref().map(|o| format!(" for order {o}")).unwrap_or_default())]
    InvalidMetadata {
        /// The order the record belongs to, when known.
        order_id: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend failed (connection, I/O, server error). The operation may not have happened.
    #[error("storage backend error: {source}")]
    Backend {
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

/// The kind of a [`StoreError`], for matching and for comparing stores in the conformance suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`StoreError::NotFound`].
    NotFound,
    /// [`StoreError::AlreadyExists`].
    AlreadyExists,
    /// [`StoreError::StatusConflict`].
    StatusConflict,
    /// [`StoreError::IllegalTransition`].
    IllegalTransition,
    /// [`StoreError::InvalidMetadata`].
    InvalidMetadata,
    /// [`StoreError::Backend`].
    Backend,
}

impl StoreError {
    /// Builds [`StoreError::InvalidMetadata`].
    pub fn invalid(order_id: Option<&str>, reason: impl Into<String>) -> Self {
        StoreError::InvalidMetadata {
            order_id: order_id.map(str::to_owned),
            reason: reason.into(),
        }
    }

    /// Builds [`StoreError::Backend`] from any error.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        StoreError::Backend {
            source: source.into(),
        }
    }

    /// Builds [`StoreError::StatusConflict`].
    pub fn conflict(order_id: &str, current: OrderStatus, expected: &[OrderStatus]) -> Self {
        StoreError::StatusConflict {
            order_id: order_id.to_owned(),
            current,
            expected: expected
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Attaches an order id to an [`InvalidMetadata`](StoreError::InvalidMetadata) error that
    /// has none (decoders do not know which row they decode; the store does).
    pub fn for_order(self, id: &str) -> Self {
        match self {
            StoreError::InvalidMetadata {
                order_id: None,
                reason,
            } => StoreError::InvalidMetadata {
                order_id: Some(id.to_owned()),
                reason,
            },
            other => other,
        }
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            StoreError::StatusConflict { .. } => ErrorKind::StatusConflict,
            StoreError::IllegalTransition { .. } => ErrorKind::IllegalTransition,
            StoreError::InvalidMetadata { .. } => ErrorKind::InvalidMetadata,
            StoreError::Backend { .. } => ErrorKind::Backend,
        }
    }

    /// The current status carried by a [`StatusConflict`](StoreError::StatusConflict).
    pub fn current_status(&self) -> Option<OrderStatus> {
        match self {
            StoreError::StatusConflict { current, .. } => Some(*current),
            _ => None,
        }
    }
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
    /// No metadata exists for the id: placed before ordermeta, with recording off, or lost.
    #[error(
        "order {order_id}: metadata not found (placed before metadata recording or with it off); {}",
        MANUAL_CANCEL_GUIDANCE
    )]
    MetadataNotFound {
        /// The id asked for.
        order_id: String,
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
    /// The node could not be reached, timed out, or refused the cancel; the order is active again.
    #[error("Order {order_id}: network error while cancelling: {source}")]
    NetworkError {
        /// The id.
        order_id: String,
        /// What went wrong.
        #[source]
        source: BoxError,
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
    /// Metadata recording is switched off, so cancel-by-id is unavailable.
    #[error(
        "Order {order_id}: metadata recording is disabled; {}",
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
            CancelErrorKind::OrderExpired => "order_expired",
            CancelErrorKind::AlreadyCancelled => "already_cancelled",
            CancelErrorKind::AlreadyFilled => "already_filled",
            CancelErrorKind::CancelInProgress => "cancel_in_progress",
            CancelErrorKind::PlacementFailed => "placement_failed",
            CancelErrorKind::PlacementPending => "placement_pending",
            CancelErrorKind::NetworkError => "network_error",
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
            CancelError::OrderExpired { .. } => CancelErrorKind::OrderExpired,
            CancelError::AlreadyCancelled { .. } => CancelErrorKind::AlreadyCancelled,
            CancelError::AlreadyFilled { .. } => CancelErrorKind::AlreadyFilled,
            CancelError::CancelInProgress { .. } => CancelErrorKind::CancelInProgress,
            CancelError::PlacementFailed { .. } => CancelErrorKind::PlacementFailed,
            CancelError::PlacementPending { .. } => CancelErrorKind::PlacementPending,
            CancelError::NetworkError { .. } => CancelErrorKind::NetworkError,
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
            CancelError::MetadataNotFound { order_id }
            | CancelError::OrderExpired { order_id, .. }
            | CancelError::AlreadyCancelled { order_id, .. }
            | CancelError::AlreadyFilled { order_id }
            | CancelError::CancelInProgress { order_id }
            | CancelError::PlacementFailed { order_id }
            | CancelError::PlacementPending { order_id }
            | CancelError::NetworkError { order_id, .. }
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

    /// Maps a store error met while cancelling `order_id`: not-found and corrupt records get
    /// their own variants so the caller sees the manual-cancel guidance.
    pub fn from_store(order_id: &str, err: StoreError) -> Self {
        match err {
            StoreError::NotFound { .. } => CancelError::MetadataNotFound {
                order_id: order_id.to_owned(),
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
        };
        assert!(e.to_string().contains("manually"), "{e}");
        assert_eq!(e.kind().as_str(), "metadata_not_found");
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

    #[test]
    fn invalid_metadata_names_the_order() {
        let e = StoreError::invalid(None, "bad base64").for_order("abc");
        assert_eq!(e.to_string(), "invalid metadata for order abc: bad base64");
    }
}
