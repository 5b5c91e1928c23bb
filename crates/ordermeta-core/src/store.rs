//! The [`MetadataStore`] trait every backend implements, its request types, and
//! [`MetadataStoreExt`] conveniences.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::model::{HistoryEntry, Lease, OrderMetadata, now, truncate_micros};
use crate::status::OrderStatus;
use crate::update::{ClientIdKey, FieldPatch, UpdateRequest};

/// Default page size of [`ListQuery`].
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page a store returns; larger limits are cut to this.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// How long a cancel claim lasts unless the canceller says otherwise: long enough for a
/// cancel broadcast (with its deadline and retries) and the write of its outcome.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(30);
/// The token [`MetadataStoreExt::claim_for_cancel`] claims with when the caller gives none.
pub const ANONYMOUS_CLAIM: &str = "anonymous";

/// The history reason written by [`MetadataStore::expire`].
pub const EXPIRE_REASON: &str = "good-til passed";

/// Durable storage of order metadata.
///
/// Object safe: use it as `Arc<dyn MetadataStore>`. Every implementation must pass the
/// [conformance suite](crate::conformance). Status changes go only through
/// [`transition`](Self::transition), an atomic compare-and-set, never read-then-write.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Records a new order. Fails with [`StoreError::AlreadyExists`] if the id is taken and
    /// [`StoreError::InvalidMetadata`] if [`OrderMetadata::validate`] fails; writes nothing then.
    async fn record(&self, meta: &OrderMetadata) -> Result<(), StoreError>;

    /// Records many orders, all or nothing: one duplicate or invalid record (also a duplicate
    /// inside `metas`) fails the whole call and writes nothing.
    async fn record_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError>;

    /// Reads one order; `Ok(None)` if unknown, [`StoreError::InvalidMetadata`] if corrupt.
    async fn get(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError>;

    /// Atomically moves an order from any status in `req.from` to `req.to`, applying the
    /// patch, bumping the version and appending to the history (see
    /// [`TransitionRequest::apply`]). Returns the updated record.
    ///
    /// Errors: [`StoreError::IllegalTransition`] if some `from -> to` is not in the table
    /// (checked first, nothing read); [`StoreError::NotFound`]; [`StoreError::StatusConflict`]
    /// carrying the current status if the order is in none of `req.from`.
    async fn transition(&self, req: &TransitionRequest) -> Result<OrderMetadata, StoreError>;

    /// One page of orders matching the filter, ordered by order id (byte order).
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;

    /// Marks every open order (pending, active, cancelling) whose good-til has passed as
    /// expired (rule: [`GoodTil::is_expired`](crate::GoodTil::is_expired)), with history
    /// reason [`EXPIRE_REASON`]. Returns how many it marked.
    async fn expire(&self, req: &ExpireRequest) -> Result<u64, StoreError>;

    /// Deletes terminal orders (cancelled, expired, filled, failed) last updated before
    /// `older_than`. Returns how many it deleted.
    async fn purge(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Checks the backend answers.
    async fn health(&self) -> Result<(), StoreError>;

    /// Sets fields learnt after placement (indexer id, filled quantity, cancel confirmation)
    /// without changing the status: see [`UpdateRequest`]. Returns the updated record.
    ///
    /// Errors: [`StoreError::InvalidMetadata`] for an empty or malformed patch (nothing
    /// read); [`StoreError::NotFound`]; [`StoreError::StatusConflict`] when the status is not
    /// one of `req.statuses` or the version is not `req.version`.
    async fn update(&self, req: &UpdateRequest) -> Result<OrderMetadata, StoreError>;

    /// The newest record (latest `placed_at`, then greatest order id) whose chain identity has
    /// the key's owner, subaccount, market and client id; `Ok(None)` if there is none.
    /// Served by an index, not a scan. A corrupt newest record is
    /// [`StoreError::InvalidMetadata`] naming it.
    async fn find_by_client_id(
        &self,
        key: &ClientIdKey,
    ) -> Result<Option<OrderMetadata>, StoreError>;

    /// The newest record (same order as [`find_by_client_id`](Self::find_by_client_id))
    /// carrying `label`; `Ok(None)` if there is none. Served by an index.
    async fn find_by_label(&self, label: &str) -> Result<Option<OrderMetadata>, StoreError>;

    /// Which store this is, for people: the backend and where its data lives (e.g.
    /// `sqlite /var/lib/bot/orders.db`, `postgres db.internal:5432/bots, schema bot_1`), never
    /// credentials. Errors that say a record was not found name it, so that a bot looking in
    /// the wrong place (another working directory, another schema) is found at once. `None`
    /// (the default) for a store that does not say.
    fn description(&self) -> Option<String> {
        None
    }
}

/// A compare-and-set of an order's status, with the fields to set on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionRequest {
    /// The order.
    pub order_id: String,
    /// The statuses the order must be in for the change to happen.
    pub from: Vec<OrderStatus>,
    /// The new status.
    pub to: OrderStatus,
    /// When (becomes `updated_at`, the history entry's time, and `cancelled_at` on cancel).
    pub at: DateTime<Utc>,
    /// Why, for the history.
    pub reason: Option<String>,
    /// Sets the placement tx hash when `Some`.
    pub tx_hash: Option<String>,
    /// Sets the cancel tx hash when `Some`.
    pub cancel_tx_hash: Option<String>,
    /// The claim to write when `to` is `cancelling` (a new claim or a re-claim). Leaving
    /// `cancelling` always clears the record's lease.
    pub lease: Option<Lease>,
    /// A condition on the record's current lease, checked in the same compare-and-set as
    /// `from`. When it does not hold the answer is [`StoreError::StatusConflict`].
    pub require: Option<LeaseCondition>,
    /// Fields learnt from the chain, set in the same write (e.g. the filled quantity with
    /// the move to `filled`).
    pub patch: FieldPatch,
}

/// A condition on an order's current [`Lease`], part of a [`TransitionRequest`]'s
/// compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LeaseCondition {
    /// The order holds no lease, or its lease has run out at the request's `at`
    /// (`until <= at`). Required to re-claim a `cancelling` order.
    Expired,
    /// The order's lease is held by this token (a canceller settling its own claim).
    HeldBy(String),
}

impl LeaseCondition {
    /// Whether the condition holds for a record holding `lease`, at `at`.
    pub fn holds(&self, lease: Option<&Lease>, at: DateTime<Utc>) -> bool {
        match self {
            LeaseCondition::Expired => lease.is_none_or(|l| l.is_expired_at(at)),
            LeaseCondition::HeldBy(token) => lease.is_some_and(|l| &l.token == token),
        }
    }
}

impl TransitionRequest {
    /// `order_id` from any of `from` to `to`, now.
    pub fn new(order_id: impl Into<String>, from: &[OrderStatus], to: OrderStatus) -> Self {
        TransitionRequest {
            order_id: order_id.into(),
            from: from.to_vec(),
            to,
            at: now(),
            reason: None,
            tx_hash: None,
            cancel_tx_hash: None,
            lease: None,
            require: None,
            patch: FieldPatch::default(),
        }
    }

    /// Also sets the indexer's order id.
    pub fn indexer_id(mut self, id: impl Into<String>) -> Self {
        self.patch.indexer_id = Some(id.into());
        self
    }

    /// Also sets the filled quantity (exact decimal text).
    pub fn filled_quantity(mut self, q: impl Into<String>) -> Self {
        self.patch.filled_quantity = Some(q.into());
        self
    }

    /// Also sets when the chain confirmed the cancel.
    pub fn cancel_confirmed_at(mut self, at: DateTime<Utc>) -> Self {
        self.patch.cancel_confirmed_at = Some(truncate_micros(at));
        self
    }

    /// Sets the claim written when entering `cancelling`.
    pub fn lease(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Also requires the order's lease to have run out (or to be absent) at `at`: how a
    /// stale `cancelling` claim is re-claimed by exactly one canceller.
    pub fn require_expired_lease(mut self) -> Self {
        self.require = Some(LeaseCondition::Expired);
        self
    }

    /// Also requires the order's lease to be held by `token`.
    pub fn require_lease(mut self, token: impl Into<String>) -> Self {
        self.require = Some(LeaseCondition::HeldBy(token.into()));
        self
    }

    /// Whether the order's current status and lease allow this transition (the full
    /// compare-and-set condition; [`check`](Self::check) has passed).
    pub fn allows(&self, meta: &OrderMetadata) -> bool {
        self.from.contains(&meta.status)
            && self
                .require
                .as_ref()
                .is_none_or(|c| c.holds(meta.lease.as_ref(), truncate_micros(self.at)))
    }

    /// Sets the time (truncated to microseconds).
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = truncate_micros(at);
        self
    }

    /// Sets the history reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the placement tx hash.
    pub fn tx_hash(mut self, hash: impl Into<String>) -> Self {
        self.tx_hash = Some(hash.into());
        self
    }

    /// Sets the cancel tx hash.
    pub fn cancel_tx_hash(mut self, hash: impl Into<String>) -> Self {
        self.cancel_tx_hash = Some(hash.into());
        self
    }

    /// Rejects requests the transition table forbids, before any store is touched.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.from.is_empty() {
            return Err(StoreError::invalid(
                Some(&self.order_id),
                "a transition needs at least one allowed starting status",
            ));
        }
        // Re-claiming a stale claim is the one self-transition: cancelling -> cancelling,
        // and only with the expired-lease condition.
        let reclaim =
            self.to == OrderStatus::Cancelling && self.require == Some(LeaseCondition::Expired);
        let legal = |f: &OrderStatus| f.can_transition_to(self.to) || (reclaim && *f == self.to);
        if let Some(&from) = self.from.iter().find(|f| !legal(f)) {
            return Err(StoreError::IllegalTransition { from, to: self.to });
        }
        if let Some(lease) = &self.lease {
            if self.to != OrderStatus::Cancelling {
                return Err(StoreError::invalid(
                    Some(&self.order_id),
                    format!(
                        "a lease is only taken when entering cancelling, not {}",
                        self.to
                    ),
                ));
            }
            lease
                .validate()
                .map_err(|reason| StoreError::invalid(Some(&self.order_id), reason))?;
        }
        self.patch.check(&self.order_id)?;
        if let Some(LeaseCondition::HeldBy(token)) = &self.require
            && Lease::new(token.clone(), self.at).validate().is_err()
        {
            return Err(StoreError::invalid(
                Some(&self.order_id),
                "the required lease token is empty, too long or has control characters",
            ));
        }
        Ok(())
    }

    /// The history entry this transition appends.
    pub fn history_entry(&self) -> HistoryEntry {
        HistoryEntry {
            status: self.to,
            at: truncate_micros(self.at),
            reason: self.reason.clone(),
        }
    }

    /// The reference semantics of a transition, applied to a record already known to be
    /// [allowed](Self::allows): set status, `updated_at`, `cancelled_at` (when entering
    /// cancelled), the given hashes, the [patch](FieldPatch), the lease (the request's when
    /// entering `cancelling`, none otherwise), bump the version, append the history entry. SQL and Lua stores do the
    /// same in one statement.
    pub fn apply(&self, meta: &mut OrderMetadata) {
        let at = truncate_micros(self.at);
        meta.status = self.to;
        meta.updated_at = at;
        if self.to == OrderStatus::Cancelled {
            meta.cancelled_at = Some(at);
        }
        if let Some(h) = &self.tx_hash {
            meta.tx_hash = Some(h.clone());
        }
        if let Some(h) = &self.cancel_tx_hash {
            meta.cancel_tx_hash = Some(h.clone());
        }
        self.patch.apply(meta);
        meta.lease = if self.to == OrderStatus::Cancelling {
            self.lease.clone()
        } else {
            None
        };
        meta.version = meta.version.saturating_add(1);
        meta.history.push(self.history_entry());
    }
}

/// A filter and a keyset cursor for [`MetadataStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// Only these statuses; empty means any.
    pub statuses: Vec<OrderStatus>,
    /// Only this owner address.
    pub owner: Option<String>,
    /// Only this subaccount number.
    pub subaccount_number: Option<u32>,
    /// Only this symbol.
    pub symbol: Option<String>,
    /// Keyset cursor: only order ids strictly greater than this (a previous [`Page::next`]).
    pub after: Option<String>,
    /// Page size; see [`effective_limit`](Self::effective_limit).
    pub limit: u32,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            statuses: Vec::new(),
            owner: None,
            subaccount_number: None,
            symbol: None,
            after: None,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

impl ListQuery {
    /// The page size stores use: `limit` clamped to `1..=MAX_PAGE_SIZE`.
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE_SIZE)
    }

    /// Whether a record passes the filter (cursor not included). Stores filtering in code use it.
    pub fn matches(&self, meta: &OrderMetadata) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&meta.status))
            && self.owner.as_deref().is_none_or(|o| o == meta.owner())
            && self
                .subaccount_number
                .is_none_or(|n| n == meta.subaccount_number())
            && self.symbol.as_deref().is_none_or(|s| s == meta.symbol)
    }

    /// The same filter, continuing after `cursor`.
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }
}

/// A stored record that could not be decoded, reported by [`MetadataStore::list`] instead
/// of being skipped silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRecord {
    /// Its order id.
    pub order_id: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One page of [`MetadataStore::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The decodable matching records, by order id.
    pub items: Vec<OrderMetadata>,
    /// Matching rows that are corrupt (they count toward the page size).
    pub invalid: Vec<InvalidRecord>,
    /// Cursor for the next page: the last order id of this page, `None` when nothing follows.
    pub next: Option<String>,
}

/// What the chain's clock says, for [`MetadataStore::expire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpireRequest {
    /// Latest committed height: short-term orders with `good_til_block <= height` expire.
    pub height: Option<u32>,
    /// Latest block time (unix s): stateful orders with `good_til_block_time <= block_time` expire.
    pub block_time: Option<u32>,
    /// When (becomes `updated_at` and the history time).
    pub at: DateTime<Utc>,
}

impl ExpireRequest {
    /// Expire against a height and a block time, now.
    pub fn new(height: Option<u32>, block_time: Option<u32>) -> Self {
        ExpireRequest {
            height,
            block_time,
            at: now(),
        }
    }

    /// Sets the time (truncated to microseconds).
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = truncate_micros(at);
        self
    }

    /// The transition applied to each expired order.
    pub fn transition_for(&self, order_id: &str, from: OrderStatus) -> TransitionRequest {
        TransitionRequest::new(order_id, &[from], OrderStatus::Expired)
            .at(self.at)
            .reason(EXPIRE_REASON)
    }
}

/// Conveniences over any [`MetadataStore`]; implemented for every store.
#[async_trait]
pub trait MetadataStoreExt: MetadataStore {
    /// Like [`get`](MetadataStore::get), but an unknown id is [`StoreError::NotFound`].
    async fn get_required(&self, order_id: &str) -> Result<OrderMetadata, StoreError> {
        self.get(order_id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                order_id: order_id.to_owned(),
            })
    }

    /// Claims an active order for cancelling (`active -> cancelling`). Exactly one of many
    /// concurrent claimers wins; the others get [`StoreError::StatusConflict`].
    ///
    /// The claim is an anonymous lease of [`DEFAULT_LEASE`]; cancellers that must be told
    /// apart use [`claim`](Self::claim).
    async fn claim_for_cancel(&self, order_id: &str) -> Result<OrderMetadata, StoreError> {
        let at = now();
        let until = at + chrono::Duration::from_std(DEFAULT_LEASE).unwrap_or_default();
        self.claim(
            order_id,
            &[OrderStatus::Active],
            Lease::new(ANONYMOUS_CLAIM, until),
            at,
        )
        .await
    }

    /// Claims an order for cancelling with `lease`, from any of `from` (e.g. `active`, or
    /// `pending` for reconciliation). When `from` includes `cancelling`, a claim whose lease
    /// has run out at `at` is re-claimed; a live claim never is. Exactly one of many
    /// concurrent claimers wins; the others get [`StoreError::StatusConflict`].
    async fn claim(
        &self,
        order_id: &str,
        from: &[OrderStatus],
        lease: Lease,
        at: DateTime<Utc>,
    ) -> Result<OrderMetadata, StoreError> {
        let stale = from.contains(&OrderStatus::Cancelling);
        let mut req = TransitionRequest::new(order_id, from, OrderStatus::Cancelling)
            .at(at)
            .reason(if stale {
                "cancel claimed (a stale claim may be taken over)"
            } else {
                "cancel claimed"
            })
            .lease(lease);
        if stale {
            req = req.require_expired_lease();
        }
        self.transition(&req).await
    }

    /// Every record matching `query`, following the cursor through all pages.
    async fn list_all(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let mut all = Page::default();
        let mut q = query.clone();
        loop {
            let page = self.list(&q).await?;
            all.items.extend(page.items);
            all.invalid.extend(page.invalid);
            match page.next {
                Some(next) => q.after = Some(next),
                None => return Ok(all),
            }
        }
    }
}

impl<T: MetadataStore + ?Sized> MetadataStoreExt for T {}

#[async_trait]
impl<T: MetadataStore + ?Sized> MetadataStore for Arc<T> {
    async fn record(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        (**self).record(meta).await
    }
    async fn record_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError> {
        (**self).record_many(metas).await
    }
    async fn get(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
        (**self).get(order_id).await
    }
    async fn transition(&self, req: &TransitionRequest) -> Result<OrderMetadata, StoreError> {
        (**self).transition(req).await
    }
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        (**self).list(query).await
    }
    async fn expire(&self, req: &ExpireRequest) -> Result<u64, StoreError> {
        (**self).expire(req).await
    }
    async fn purge(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        (**self).purge(older_than).await
    }
    async fn health(&self) -> Result<(), StoreError> {
        (**self).health().await
    }
    async fn update(&self, req: &UpdateRequest) -> Result<OrderMetadata, StoreError> {
        (**self).update(req).await
    }
    async fn find_by_client_id(
        &self,
        key: &ClientIdKey,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        (**self).find_by_client_id(key).await
    }
    async fn find_by_label(&self, label: &str) -> Result<Option<OrderMetadata>, StoreError> {
        (**self).find_by_label(label).await
    }
    fn description(&self) -> Option<String> {
        (**self).description()
    }
}
