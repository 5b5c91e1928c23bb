//! What the chain and the indexer teach about an order after it was placed — its indexer id,
//! how much filled, when its cancel was confirmed — and the requests that write it:
//! [`FieldPatch`] (part of a transition or alone), [`UpdateRequest`] (no status change) and
//! [`ClientIdKey`] (lookup by the bot's own client id).

use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::model::{OrderMetadata, check_filled_quantity, check_indexer_id, now, truncate_micros};
use crate::status::OrderStatus;

/// Fields learnt after placement, set on a record when `Some` (a `None` leaves the stored
/// value as it is: a patch never erases).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPatch {
    /// Sets [`OrderMetadata::indexer_id`].
    pub indexer_id: Option<String>,
    /// Sets [`OrderMetadata::filled_quantity`].
    pub filled_quantity: Option<String>,
    /// Sets [`OrderMetadata::cancel_confirmed_at`] (truncated to microseconds).
    pub cancel_confirmed_at: Option<DateTime<Utc>>,
}

impl FieldPatch {
    /// Whether the patch sets nothing.
    pub fn is_empty(&self) -> bool {
        self.indexer_id.is_none()
            && self.filled_quantity.is_none()
            && self.cancel_confirmed_at.is_none()
    }

    /// Checks every value the patch sets, as [`OrderMetadata::validate`] would.
    pub fn check(&self, order_id: &str) -> Result<(), StoreError> {
        let bad = |reason: String| StoreError::invalid(Some(order_id), reason);
        if let Some(id) = &self.indexer_id {
            check_indexer_id(id).map_err(bad)?;
        }
        if let Some(q) = &self.filled_quantity {
            check_filled_quantity(q).map_err(bad)?;
        }
        Ok(())
    }

    /// Writes the patch into a record (the reference semantics stores reproduce).
    pub fn apply(&self, meta: &mut OrderMetadata) {
        if let Some(id) = &self.indexer_id {
            meta.indexer_id = Some(id.clone());
        }
        if let Some(q) = &self.filled_quantity {
            meta.filled_quantity = Some(q.clone());
        }
        if let Some(t) = self.cancel_confirmed_at {
            meta.cancel_confirmed_at = Some(truncate_micros(t));
        }
    }
}

/// Sets [`FieldPatch`] fields on an order **without** changing its status: an atomic
/// compare-and-set on the status (and, optionally, the version), bumping the version and
/// `updated_at`. The history is left alone (it records statuses), and so is the lease.
///
/// A partial fill is an update; a full fill is a transition to `filled` carrying the same
/// patch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateRequest {
    /// The order.
    pub order_id: String,
    /// The statuses the order must be in; empty means any.
    pub statuses: Vec<OrderStatus>,
    /// When `Some`, the record's version must be exactly this (optimistic concurrency: read,
    /// decide, write only if nothing changed in between).
    pub version: Option<u64>,
    /// When (becomes `updated_at`).
    pub at: DateTime<Utc>,
    /// What to set.
    pub patch: FieldPatch,
}

impl UpdateRequest {
    /// An update of `order_id` in any status, now, setting nothing yet.
    pub fn new(order_id: impl Into<String>) -> Self {
        UpdateRequest {
            order_id: order_id.into(),
            statuses: Vec::new(),
            version: None,
            at: now(),
            patch: FieldPatch::default(),
        }
    }

    /// Only if the order is in one of `statuses`.
    pub fn in_statuses(mut self, statuses: &[OrderStatus]) -> Self {
        self.statuses = statuses.to_vec();
        self
    }

    /// Only if the order's version is `version`.
    pub fn if_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the time (truncated to microseconds).
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = truncate_micros(at);
        self
    }

    /// Sets the indexer's order id.
    pub fn indexer_id(mut self, id: impl Into<String>) -> Self {
        self.patch.indexer_id = Some(id.into());
        self
    }

    /// Sets the filled quantity (exact decimal text).
    pub fn filled_quantity(mut self, q: impl Into<String>) -> Self {
        self.patch.filled_quantity = Some(q.into());
        self
    }

    /// Sets when the chain confirmed the cancel.
    pub fn cancel_confirmed_at(mut self, at: DateTime<Utc>) -> Self {
        self.patch.cancel_confirmed_at = Some(truncate_micros(at));
        self
    }

    /// Rejects empty or malformed requests before any store is touched.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.patch.is_empty() {
            return Err(StoreError::invalid(
                Some(&self.order_id),
                "an update must set at least one field",
            ));
        }
        self.patch.check(&self.order_id)
    }

    /// Whether the record's status and version allow the update.
    pub fn allows(&self, meta: &OrderMetadata) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&meta.status))
            && self.version.is_none_or(|v| v == meta.version)
    }

    /// The reference semantics, on a record the update [allows](Self::allows): the patch,
    /// `updated_at`, version + 1 (saturating, like every store).
    pub fn apply(&self, meta: &mut OrderMetadata) {
        self.patch.apply(meta);
        meta.updated_at = truncate_micros(self.at);
        meta.version = meta.version.saturating_add(1);
    }

    /// The error for a record the update does not allow:
    /// [`StoreError::StatusConflict`] carrying its current status (also when only the
    /// version differs).
    pub fn conflict(&self, meta: &OrderMetadata) -> StoreError {
        let expected: &[OrderStatus] = if self.statuses.is_empty() {
            &OrderStatus::ALL
        } else {
            &self.statuses
        };
        StoreError::conflict(&self.order_id, meta.status, expected)
    }
}

/// The chain identity a bot knows after a restart without the good-til: its subaccount,
/// market and client id. [`MetadataStore::find_by_client_id`](crate::MetadataStore::find_by_client_id)
/// returns the newest record with these fields (whatever its order flags).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientIdKey {
    /// The subaccount's owner address.
    pub owner: String,
    /// The subaccount number.
    pub subaccount_number: u32,
    /// The market (CLOB pair) id.
    pub clob_pair_id: u32,
    /// The client id the bot chose.
    pub client_id: u32,
}

impl ClientIdKey {
    /// The key of an existing record.
    pub fn of(meta: &OrderMetadata) -> Self {
        ClientIdKey {
            owner: meta.owner().to_owned(),
            subaccount_number: meta.subaccount_number(),
            clob_pair_id: meta.clob_pair_id(),
            client_id: meta.client_id(),
        }
    }

    /// Whether a record has this key.
    pub fn matches(&self, meta: &OrderMetadata) -> bool {
        meta.owner() == self.owner
            && meta.subaccount_number() == self.subaccount_number
            && meta.clob_pair_id() == self.clob_pair_id
            && meta.client_id() == self.client_id
    }
}

/// The rule for "newest" in lookups: the latest `placed_at`, ties broken by the greatest
/// order id (byte order). Stores order their index the same way.
pub fn is_newer(a: &OrderMetadata, b: &OrderMetadata) -> bool {
    (a.placed_at, a.order_id.as_bytes()) > (b.placed_at, b.order_id.as_bytes())
}
