//! The order lifecycle: [`OrderStatus`] and the one transition table every store enforces.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an order is in its lifecycle, as far as ordermeta knows.
///
/// The four statuses of the original design (`active`, `cancelled`, `expired`, `filled`) plus
/// `pending` (recorded before broadcast), `cancelling` (claimed by one canceller) and `failed`
/// (placement rejected). The string forms are the lowercase names, as stored in every backend.
///
/// See the [crate docs](crate#the-state-machine) for the transition diagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Metadata recorded, placement not yet confirmed by the node (write-ahead).
    Pending,
    /// The node accepted the placement; the order may rest on the book.
    Active,
    /// One canceller has claimed the order and is broadcasting its cancel.
    Cancelling,
    /// The cancel was accepted by the node.
    Cancelled,
    /// The order's good-til has passed; it can no longer fill.
    Expired,
    /// The order filled.
    Filled,
    /// The node rejected the placement; the order never existed on chain.
    Failed,
}

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Pending,
        OrderStatus::Active,
        OrderStatus::Cancelling,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
        OrderStatus::Filled,
        OrderStatus::Failed,
    ];

    /// Statuses that may still be live on chain (and so may still need a cancel or an expiry).
    pub const OPEN: [OrderStatus; 3] = [
        OrderStatus::Pending,
        OrderStatus::Active,
        OrderStatus::Cancelling,
    ];

    /// The lowercase name stored by every backend.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Active => "active",
            OrderStatus::Cancelling => "cancelling",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
            OrderStatus::Filled => "filled",
            OrderStatus::Failed => "failed",
        }
    }

    /// True when the order can no longer rest on the book: cancelled, expired, filled, failed.
    ///
    /// Terminal records are what [`purge`](crate::MetadataStore::purge) deletes.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Cancelled
                | OrderStatus::Expired
                | OrderStatus::Filled
                | OrderStatus::Failed
        )
    }

    /// The statuses this one may move to. This is the transition table; nothing else is.
    ///
    /// `pending -> cancelling` lets reconciliation cancel an order whose broadcast outcome is
    /// unknown after a crash. `cancelled -> filled` and `expired -> filled` exist because the chain is the truth: a
    /// short-term cancel is best effort and can lose the race to a fill, and a fill feed can
    /// report a fill after the sweeper marked the order expired. `active -> failed` records a
    /// stateful placement that the node accepted (CheckTx) but that failed when its block
    /// executed it: the order never rested on the book.
    pub const fn successors(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            Pending => &[Active, Failed, Cancelling, Expired, Filled],
            Active => &[Cancelling, Cancelled, Expired, Filled, Failed],
            Cancelling => &[Cancelled, Active, Expired, Filled],
            Cancelled => &[Filled],
            Expired => &[Filled],
            Filled => &[],
            Failed => &[],
        }
    }

    /// Whether `self -> to` is a legal transition.
    pub fn can_transition_to(self, to: OrderStatus) -> bool {
        self.successors().contains(&to)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A string that names no [`OrderStatus`]; converts into
/// [`StoreError::InvalidMetadata`](crate::StoreError::InvalidMetadata) with `?`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for OrderStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_unknown_is_invalid() {
        for st in OrderStatus::ALL {
            assert_eq!(st.as_str().parse::<OrderStatus>().expect("parse"), st);
            assert_eq!(st.to_string(), st.as_str());
        }
        let err = "ACTIVE".parse::<OrderStatus>().expect_err("case matters");
        assert_eq!(
            crate::StoreError::from(err).kind(),
            crate::ErrorKind::InvalidMetadata
        );
        assert!("".parse::<OrderStatus>().is_err());
    }

    #[test]
    fn terminal_statuses_never_reopen() {
        for st in OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in st.successors() {
                assert_eq!(
                    *to,
                    OrderStatus::Filled,
                    "{st} may only be corrected to filled"
                );
            }
        }
        assert!(OrderStatus::Failed.successors().is_empty());
        assert!(OrderStatus::Filled.successors().is_empty());
    }

    #[test]
    fn no_self_transitions() {
        for st in OrderStatus::ALL {
            assert!(!st.can_transition_to(st), "{st} -> {st}");
        }
    }
}
