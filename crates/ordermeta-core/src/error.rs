//! [`StoreError`]: what a store operation can fail with.
//!
//! Classified by kind ([`StoreError::kind`]); callers match on the kind or the variant, never
//! on message text. (The errors of cancelling an order live in `ordermeta-dydx`.)

use std::error::Error as StdError;

use crate::status::{OrderStatus, UnknownStatus};

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
    /// The operation did not complete within its deadline (a hung server, a lock held by
    /// another session, a lost connection). For a write, the store has tried to read the
    /// outcome back and could not tell: the write may or may not have happened. Never
    /// retry a write blindly on this error; read the record first.
    #[error("{operation} did not complete within {after:?}; its outcome is unknown")]
    Timeout {
        /// The store operation (`record`, `transition`, `connect`, …).
        operation: &'static str,
        /// The deadline it missed.
        after: std::time::Duration,
    },
    /// The backend failed (connection, I/O, server error). The operation may not have happened.
    #[error("storage backend error: {source}")]
    Backend {
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

impl From<UnknownStatus> for StoreError {
    fn from(e: UnknownStatus) -> Self {
        StoreError::invalid(None, e.to_string())
    }
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
    /// [`StoreError::Timeout`].
    Timeout,
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
            StoreError::Timeout { .. } => ErrorKind::Timeout,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_metadata_names_the_order() {
        let e = StoreError::invalid(None, "bad base64").for_order("abc");
        assert_eq!(e.to_string(), "invalid metadata for order abc: bad base64");
    }
}
