//! How one indexer report of an order changes its record: always through the state machine,
//! forward only, and idempotent — so duplicated, replayed and reordered reports change
//! nothing wrongly.
//!
//! [`plan`] is the pure rule (what to write, given the record and the report);
//! [`OrderMetaClient::apply_indexer_order`] finds the record, plans, writes with
//! compare-and-set, and re-plans from a fresh read if the record changed in between.
//!
//! | indexer says | record | becomes |
//! |---|---|---|
//! | `FILLED` | pending, active, cancelling, cancelled, expired | `filled`, with the filled quantity |
//! | `CANCELED` (removed at its good-til) | pending, active, cancelling | `expired` |
//! | `CANCELED` | pending, active, cancelling | `cancelled`, cancel confirmed (pending goes through `active`) |
//! | `CANCELED` | cancelled | cancel confirmed |
//! | `BEST_EFFORT_CANCELED` | pending, active | `cancelled` as accepted (not confirmed: it may still fill) |
//! | open (`OPEN`, `BEST_EFFORT_OPENED`, `UNTRIGGERED`) | pending for 30 s (no placement in flight) | `active` |
//! | any, with a larger filled quantity | any but failed | the quantity raised (never lowered) |
//!
//! Anything else leaves the record as it is; the indexer id is stored with the first write.
//!
//! One inference, not a report: a short-term order the indexer reported once (the record
//! holds its indexer id) that it no longer lists as open and no longer knows by id was
//! removed from the book without a fill — the real indexer keeps a short-term order only in
//! its cache of live orders until a fill gives it a row, and a removal seen by no feed (a gap)
//! leaves nothing behind. Its record becomes `cancelled`, confirmed (the order is absent from
//! the book), or `expired` past its good-til ([`OrderMetaClient::settle_absent`]).

use std::str::FromStr;

use bigdecimal::BigDecimal;
use ordermeta_core::{
    ClientIdKey, ErrorKind, HistoryEntry, NewOrder, OrderMetadata, OrderStatus, OrderType,
    StoreError, TransitionRequest, UpdateRequest, now,
};

use super::{IndexerClock, IndexerOrder, IndexerOrderStatus};
use crate::client::OrderMetaClient;
use crate::convert::order_key;

/// The history reason of an order imported by the backfill.
pub(crate) const IMPORTED: &str = "imported from the indexer";

/// How many times a write that lost a race is re-planned from a fresh read.
const ATTEMPTS: usize = 4;

/// A `pending` record younger than this belongs to a placement still in flight: an open
/// report does not make it `active` (the placement does, with its tx hash). The threshold of
/// reconciliation ([`DEFAULT_LEASE`](ordermeta_core::DEFAULT_LEASE), 30 s).
pub(crate) const PENDING_GRACE: chrono::Duration = chrono::Duration::seconds(30);

/// The chain's clock as far as the caller knows it, to tell an expiry from a cancel when the
/// indexer does not say why it removed an order (REST answers do not).
pub(crate) type Clock = Option<IndexerClock>;

/// What applying one report did (the strongest change, for counting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Applied {
    /// The record already said as much (a duplicate, or an older report).
    Unchanged,
    /// No record, and not imported (not open, outside the rollout scope, or import off).
    Unknown,
    /// No record: imported as `active`.
    Imported,
    /// `pending` became `active`.
    Activated,
    /// The filled quantity was raised (partial fill).
    PartialFill,
    /// Became `filled`.
    Filled,
    /// Became `cancelled`.
    Cancelled,
    /// The cancel was confirmed (the status was already `cancelled`).
    CancelConfirmed,
    /// Became `expired`.
    Expired,
    /// Only the indexer id was stored.
    IndexerId,
}

/// One write of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// A status change.
    Transition(TransitionRequest),
    /// Fields only, on the version read.
    Update(UpdateRequest),
}

/// The writes that bring `meta` in line with `o`, in order, with what they amount to.
pub(crate) fn plan(meta: &OrderMetadata, o: &IndexerOrder, clock: Clock) -> (Vec<Write>, Applied) {
    use OrderStatus as S;
    let id = meta.order_id.as_str();
    let raised = raised_fill(meta.filled_quantity.as_deref(), o.total_filled.as_deref());
    let new_indexer_id = meta
        .indexer_id
        .is_none()
        .then(|| o.indexer_id.clone())
        .filter(|i| ordermeta_core::check_indexer_id(i).is_ok());
    let transition = |from: &[S], to: S, reason: &str| {
        let mut t = TransitionRequest::new(id, from, to).reason(format!("indexer: {reason}"));
        if let Some(q) = &raised {
            t = t.filled_quantity(q.clone());
        }
        if let Some(i) = &new_indexer_id {
            t = t.indexer_id(i.clone());
        }
        t
    };
    // Fields only, on exactly the version read.
    let update = |confirm: bool| {
        if raised.is_none() && new_indexer_id.is_none() && !confirm {
            return None;
        }
        let mut u = UpdateRequest::new(id)
            .in_statuses(&[meta.status])
            .if_version(meta.version);
        if let Some(q) = &raised {
            u = u.filled_quantity(q.clone());
        }
        if let Some(i) = &new_indexer_id {
            u = u.indexer_id(i.clone());
        }
        if confirm {
            u = u.cancel_confirmed_at(now());
        }
        Some(u)
    };
    let fields_only = || match update(false) {
        Some(u) => {
            let applied = if raised.is_some() {
                Applied::PartialFill
            } else {
                Applied::IndexerId
            };
            (vec![Write::Update(u)], applied)
        }
        None => (Vec::new(), Applied::Unchanged),
    };
    let activate = || {
        TransitionRequest::new(id, &[S::Pending], S::Active)
            .reason("indexer: the order is on the chain")
    };
    match (o.status, meta.status) {
        // Placement refused: the indexer cannot know a different order under this record.
        (_, S::Failed) => (Vec::new(), Applied::Unchanged),
        (IndexerOrderStatus::Filled, S::Filled) => fields_only(),
        (IndexerOrderStatus::Filled, from) => {
            // The final total: the report's, else the size, never below what is stored.
            let total = o.total_filled.as_deref().or(o.size.as_deref());
            let total = max_decimal(meta.filled_quantity.as_deref(), total);
            let mut t = transition(&[from], S::Filled, "filled");
            if let Some(q) = total {
                t = t.filled_quantity(q);
            }
            (vec![Write::Transition(t)], Applied::Filled)
        }
        (IndexerOrderStatus::Canceled, from @ (S::Pending | S::Active | S::Cancelling)) => {
            let expired =
                o.removed_as_expired() || clock.is_some_and(|c| c.has_passed(meta.good_til));
            if expired {
                let t = transition(&[from], S::Expired, "removed at its good-til");
                return (vec![Write::Transition(t)], Applied::Expired);
            }
            let mut writes = Vec::new();
            let from = if from == S::Pending {
                writes.push(Write::Transition(activate()));
                S::Active
            } else {
                from
            };
            let t = transition(&[from], S::Cancelled, "cancel confirmed by the chain")
                .cancel_confirmed_at(now());
            writes.push(Write::Transition(t));
            (writes, Applied::Cancelled)
        }
        (IndexerOrderStatus::Canceled, S::Cancelled) if meta.cancel_confirmed_at.is_none() => {
            match update(true) {
                Some(u) => (vec![Write::Update(u)], Applied::CancelConfirmed),
                None => (Vec::new(), Applied::Unchanged),
            }
        }
        (IndexerOrderStatus::BestEffortCanceled, from @ (S::Pending | S::Active)) => {
            let mut writes = Vec::new();
            if from == S::Pending {
                writes.push(Write::Transition(activate()));
            }
            let t = transition(
                &[S::Active],
                S::Cancelled,
                "best-effort cancel seen (not final until the good-til)",
            );
            writes.push(Write::Transition(t));
            (writes, Applied::Cancelled)
        }
        // A placement in flight marks its record active itself, with the tx hash.
        (status, S::Pending) if status.is_open() && now() - meta.updated_at < PENDING_GRACE => {
            fields_only()
        }
        (status, S::Pending) if status.is_open() => {
            let t = transition(&[S::Pending], S::Active, "the order is open on the chain");
            (vec![Write::Transition(t)], Applied::Activated)
        }
        _ => fields_only(),
    }
}

/// `reported`, as decimal text, if it is a valid amount above `stored` (or nothing is stored
/// and it is above zero): a partial fill only ever raises the quantity.
pub(crate) fn raised_fill(stored: Option<&str>, reported: Option<&str>) -> Option<String> {
    let new = BigDecimal::from_str(reported?).ok()?;
    if new <= 0 {
        return None;
    }
    match stored.and_then(|s| BigDecimal::from_str(s).ok()) {
        Some(old) if old >= new => None,
        _ => Some(super::decimal_text(&new)),
    }
}

/// The larger of two amounts, as decimal text; either may be missing or unreadable.
fn max_decimal(a: Option<&str>, b: Option<&str>) -> Option<String> {
    let parse = |s: Option<&str>| s.and_then(|s| BigDecimal::from_str(s).ok());
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => Some(super::decimal_text(if x >= y { &x } else { &y })),
        (Some(x), None) | (None, Some(x)) => Some(super::decimal_text(&x)),
        (None, None) => None,
    }
}

impl OrderMetaClient {
    /// The record an indexer report describes: the one [`order_key`] names (exact `OrderId`
    /// and good-til), else the newest with its client id whose `OrderId` matches exactly (a
    /// record made under another id, or a report without its good-til).
    pub(crate) async fn record_of(
        &self,
        o: &IndexerOrder,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        if let Some(gt) = o.good_til
            && let Some(meta) = self.store().get(&order_key(&o.order_id, gt)).await?
            && meta.dydx_order_id == o.order_id
        {
            return Ok(Some(meta));
        }
        let key = ClientIdKey {
            owner: o.order_id.owner.clone(),
            subaccount_number: o.order_id.subaccount_number,
            clob_pair_id: o.order_id.clob_pair_id,
            client_id: o.order_id.client_id,
        };
        Ok(self.store().find_by_client_id(&key).await?.filter(|m| {
            m.dydx_order_id == o.order_id && o.good_til.is_none_or(|gt| gt == m.good_til)
        }))
    }

    /// Applies one indexer report of an order to its record (see the [module](self) table);
    /// an open order without a record is imported when `import` is set and the rollout scope
    /// admits it.
    pub(crate) async fn apply_indexer_order(
        &self,
        o: &IndexerOrder,
        clock: Clock,
        import: bool,
    ) -> Result<Applied, StoreError> {
        let mut meta = match self.record_of(o).await? {
            Some(meta) => meta,
            None if import && o.status.is_open() => match self.import_order(o).await? {
                Some(applied) => return Ok(applied),
                // Recorded meanwhile (our own placement, another importer): apply to it.
                None => match self.record_of(o).await? {
                    Some(meta) => meta,
                    None => return Ok(Applied::Unknown),
                },
            },
            None => return Ok(Applied::Unknown),
        };
        for _ in 0..ATTEMPTS {
            let (writes, applied) = plan(&meta, o, clock);
            match self.write_all(&writes).await {
                Ok(()) => {
                    if applied != Applied::Unchanged {
                        tracing::info!(order_id = meta.order_id, indexer = %o.status, ?applied, "record updated from the indexer");
                    }
                    return Ok(applied);
                }
                // The record changed under us (the client, another process): read, re-plan.
                Err(e) if e.kind() == ErrorKind::StatusConflict => {
                    match self.store().get(&meta.order_id).await? {
                        Some(fresh) => meta = fresh,
                        None => return Ok(Applied::Unknown),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        tracing::warn!(
            order_id = meta.order_id,
            "indexer report not applied: the record kept changing"
        );
        Ok(Applied::Unchanged)
    }

    /// Settles `meta` when the indexer knows its order no more (see the [module](self)
    /// docs): only a short-term order the indexer reported before (its id is on the record),
    /// recorded `active` or `cancelling`. `Ok(None)` when that does not hold or the record
    /// changed meanwhile (the next snapshot looks again).
    pub(crate) async fn settle_absent(
        &self,
        meta: &OrderMetadata,
        clock: Clock,
    ) -> Result<Option<Applied>, StoreError> {
        let from = [OrderStatus::Active, OrderStatus::Cancelling];
        if !meta.dydx_order_id.is_short_term()
            || meta.indexer_id.is_none()
            || !from.contains(&meta.status)
        {
            return Ok(None);
        }
        let expired = clock.is_some_and(|c| c.has_passed(meta.good_til));
        let req = if expired {
            TransitionRequest::new(&meta.order_id, &[meta.status], OrderStatus::Expired)
                .reason("indexer: gone from the book at its good-til")
        } else {
            TransitionRequest::new(&meta.order_id, &[meta.status], OrderStatus::Cancelled)
                .reason(
                    "indexer: removed from the book without a fill (it no longer knows the order)",
                )
                .cancel_confirmed_at(now())
        };
        match self.store().transition(&req).await {
            Ok(_) => {
                tracing::info!(order_id = meta.order_id, to = %req.to, "absent from the indexer: settled");
                Ok(Some(if expired {
                    Applied::Expired
                } else {
                    Applied::Cancelled
                }))
            }
            Err(e) if e.kind() == ErrorKind::StatusConflict => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn write_all(&self, writes: &[Write]) -> Result<(), StoreError> {
        for w in writes {
            match w {
                Write::Transition(t) => self.store().transition(t).await.map(drop)?,
                Write::Update(u) => self.store().update(u).await.map(drop)?,
            }
        }
        Ok(())
    }

    /// Records an open order the store does not know (placed before ordermeta, or by
    /// another tool) as `active`, under the id [`order_key`] gives it, so that it is
    /// cancellable by id. `Ok(None)` if a record appeared meanwhile; `Ok(Some(Unknown))` when
    /// the report lacks what a record needs or the rollout scope leaves it out.
    pub(crate) async fn import_order(
        &self,
        o: &IndexerOrder,
    ) -> Result<Option<Applied>, StoreError> {
        let (Some(good_til), Some(side), Some(quantity), Some(symbol)) =
            (o.good_til, o.side, o.size.clone(), o.ticker.clone())
        else {
            return Ok(Some(Applied::Unknown));
        };
        if o.order_id.owner != self.gateway().signer() || !self.recording().admits(&o.order_id) {
            return Ok(Some(Applied::Unknown));
        }
        let order_id = order_key(&o.order_id, good_til);
        let mut meta = OrderMetadata::new(
            NewOrder {
                order_id: order_id.clone(),
                dydx_order_id: o.order_id.clone(),
                good_til,
                symbol,
                side,
                quantity,
                price: o.price.clone(),
                // Types ordermeta does not model (trailing stops, …) are recorded as limit:
                // the type is for people; the id and good-til are what a cancel needs.
                order_type: o.order_type.unwrap_or(OrderType::Limit),
            },
            OrderStatus::Active,
            now(),
        );
        meta.history = vec![HistoryEntry {
            status: OrderStatus::Active,
            at: meta.placed_at,
            reason: Some(format!("{IMPORTED} ({})", o.status)),
        }];
        meta.indexer_id =
            Some(o.indexer_id.clone()).filter(|i| ordermeta_core::check_indexer_id(i).is_ok());
        meta.filled_quantity = raised_fill(None, o.total_filled.as_deref());
        if let Err(e) = meta.validate() {
            tracing::warn!(order_id, error = %e, "indexer order not imported");
            return Ok(Some(Applied::Unknown));
        }
        match self.store().record(&meta).await {
            Ok(()) => {
                tracing::info!(order_id, "order imported from the indexer");
                Ok(Some(Applied::Imported))
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e),
        }
    }
}
