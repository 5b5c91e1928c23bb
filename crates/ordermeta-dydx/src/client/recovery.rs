//! Settling what a crash or the passing of time left behind:
//! [`OrderMetaClient::reconcile_pending`], stale claims (one bounded step at a time, for the
//! [`Supervisor`](crate::Supervisor)), [`OrderMetaClient::sweep_expired`], and fills
//! reported by the bot ([`OrderMetaClient::mark_filled`]).

use std::time::Duration;

use ordermeta_core::{
    ExpireRequest, ListQuery, MAX_PAGE_SIZE, OrderMetadata, OrderStatus, Page, StoreError,
    TransitionRequest, now,
};

use super::metrics::timed;
use super::{OrderMetaClient, is_stale_claim};
use crate::error::{CancelError, SweepError};
use crate::indexer::Applied;

/// What [`OrderMetaClient::reconcile_pending`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Pending orders marked expired (good-til passed).
    pub expired: usize,
    /// Pending orders made certainly dead by a cancel the node accepted, or found absent.
    pub cancelled: usize,
    /// Pending orders still unresolved (node unreachable); try again later.
    pub unresolved: usize,
    /// Pending orders the [indexer](OrderMetaClient::with_indexer) reported filled (no
    /// cancel sent).
    pub filled: usize,
}

impl OrderMetaClient {
    /// Records a fill reported by the bot's fill feed: any status but `failed` and `filled`
    /// becomes `filled`.
    pub async fn mark_filled(&self, order_id: &str) -> Result<OrderMetadata, StoreError> {
        self.active.finisher.settle(order_id).await;
        let req = TransitionRequest::new(
            order_id,
            &[
                OrderStatus::Pending,
                OrderStatus::Active,
                OrderStatus::Cancelling,
                OrderStatus::Cancelled,
                OrderStatus::Expired,
            ],
            OrderStatus::Filled,
        )
        .reason("fill reported");
        timed("transition", self.store.transition(&req)).await
    }

    /// Marks every open order whose good-til passed as expired, against the chain's clock.
    /// Returns how many.
    pub async fn sweep_expired(&self) -> Result<u64, SweepError> {
        let clock = self.gateway.clock().await.map_err(SweepError::Gateway)?;
        let req = ExpireRequest::new(Some(clock.height), Some(clock.block_time));
        timed("expire", self.store.expire(&req))
            .await
            .map_err(SweepError::Store)
    }

    /// Settles `pending` records of the signing account older than `min_age` — left by a crash
    /// between recording and learning the broadcast's outcome, or by a placement that timed
    /// out. Expired ones are marked expired. With an [indexer](Self::with_indexer), an order
    /// it reports filled, cancelled or expired is recorded so, without a cancel. The others
    /// are claimed (`pending -> cancelling`, with this client's lease) and cancelled on chain
    /// (a short-term cancel never fails for an absent order; a stateful one answers 3006), so
    /// none can stay live unknown.
    ///
    /// Bounded: the store is read one page of at most [`MAX_PAGE_SIZE`] records at a time
    /// (follow-up pages from a cursor), never all at once. `min_age` should exceed the
    /// gateway's call deadline, so that a placement still in flight is not cancelled.
    pub async fn reconcile_pending(
        &self,
        min_age: Duration,
    ) -> Result<ReconcileReport, SweepError> {
        let mut report = ReconcileReport::default();
        let mut after = None;
        loop {
            let page = self
                .reconcile_pending_page(min_age, after, MAX_PAGE_SIZE)
                .await?;
            report.expired += page.report.expired;
            report.cancelled += page.report.cancelled;
            report.unresolved += page.report.unresolved;
            report.filled += page.report.filled;
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(report),
            }
        }
    }

    /// One bounded step of [`reconcile_pending`](Self::reconcile_pending): at most `limit`
    /// `pending` records of the signer after the cursor `after`.
    pub(crate) async fn reconcile_pending_page(
        &self,
        min_age: Duration,
        after: Option<String>,
        limit: u32,
    ) -> Result<PendingPage, SweepError> {
        let clock = self.gateway.clock().await.map_err(SweepError::Gateway)?;
        let page = self
            .list_own(OrderStatus::Pending, after, limit)
            .await
            .map_err(SweepError::Store)?;
        let cutoff = now() - chrono::Duration::from_std(min_age).unwrap_or_default();
        let mut out = PendingPage {
            next: page.next,
            ..PendingPage::default()
        };
        for meta in page.items.into_iter().filter(|m| m.updated_at <= cutoff) {
            out.found += 1;
            let id = meta.order_id.as_str();
            // This client placed it and its `active` write is still queued: not a lost
            // outcome. Written now; if that fails it is still `pending` at the next pass.
            if self.active.finisher.settle(id).await {
                continue;
            }
            if meta
                .good_til
                .is_expired(Some(clock.height), Some(clock.block_time))
            {
                if self
                    .settle(
                        id,
                        &[OrderStatus::Pending],
                        OrderStatus::Expired,
                        "reconciled: good-til passed",
                        None,
                    )
                    .await
                {
                    out.report.expired += 1;
                }
                continue;
            }
            // The chain, not a guess: an order the indexer reports filled, cancelled or
            // expired needs no cancel. (Open or unknown there: the cancel makes sure.)
            match self.settle_pending_from_indexer(&meta).await {
                Some(Applied::Filled) => {
                    out.report.filled += 1;
                    continue;
                }
                Some(Applied::Expired) => {
                    out.report.expired += 1;
                    continue;
                }
                Some(_) => {
                    out.report.cancelled += 1;
                    continue;
                }
                None => {}
            }
            // Lost to another reconciler (or the placement settled meanwhile): not ours.
            let Ok(claimed) = self.claim(id, &[OrderStatus::Pending]).await else {
                continue;
            };
            match self.send_cancel(&claimed).await {
                Ok(_)
                | Err(CancelError::AlreadyCancelled { .. })
                | Err(CancelError::CancelInProgress { .. }) => out.report.cancelled += 1,
                Err(CancelError::OrderExpired { .. }) => out.report.expired += 1,
                Err(_) => out.report.unresolved += 1,
            }
        }
        Ok(out)
    }

    /// One bounded step of re-driving stale claims: among at most `limit` `cancelling`
    /// records of the signer after the cursor `after`, those whose lease has run out (their
    /// canceller died, hung or lost its store) are re-claimed with this client's lease and
    /// their cancel re-sent with the stored id and good-til; the chain's "cancel already
    /// exists" (clob 9 / 32) and "does not exist" (3006) answers then settle them. Claims past
    /// their good-til are marked expired without a cancel.
    pub(crate) async fn redrive_stale_page(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> Result<StalePage, SweepError> {
        let clock = self.gateway.clock().await.map_err(SweepError::Gateway)?;
        let page = self
            .list_own(OrderStatus::Cancelling, after, limit)
            .await
            .map_err(SweepError::Store)?;
        let at = now();
        let mut out = StalePage {
            next: page.next,
            ..StalePage::default()
        };
        for meta in page.items.into_iter().filter(|m| is_stale_claim(m, at)) {
            out.found += 1;
            let id = meta.order_id.as_str();
            if meta
                .good_til
                .is_expired(Some(clock.height), Some(clock.block_time))
            {
                if self
                    .settle(
                        id,
                        &[OrderStatus::Cancelling],
                        OrderStatus::Expired,
                        "stale claim: good-til passed",
                        None,
                    )
                    .await
                {
                    out.expired += 1;
                }
                continue;
            }
            // Exactly one re-claimer wins; the others skip it.
            let Ok(claimed) = self.claim(id, &[OrderStatus::Cancelling]).await else {
                continue;
            };
            tracing::info!(order_id = id, "re-sending the cancel of a stale claim");
            match self.send_cancel(&claimed).await {
                Ok(_)
                | Err(CancelError::AlreadyCancelled { .. })
                | Err(CancelError::CancelInProgress { .. }) => out.cancelled += 1,
                Err(CancelError::OrderExpired { .. }) => out.expired += 1,
                Err(e) => {
                    tracing::warn!(order_id = id, error = %e, "stale claim not settled");
                    out.failed += 1;
                }
            }
        }
        Ok(out)
    }

    /// One page of the signer's records in `status`.
    async fn list_own(
        &self,
        status: OrderStatus,
        after: Option<String>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let query = ListQuery {
            statuses: vec![status],
            owner: Some(self.gateway.signer()),
            after,
            limit: limit.clamp(1, MAX_PAGE_SIZE),
            ..ListQuery::default()
        };
        timed("list", self.store.list(&query)).await
    }
}

/// What one step of reconciling `pending` records did.
#[derive(Debug, Default)]
pub(crate) struct PendingPage {
    /// Pending records old enough to settle, on this page.
    pub(crate) found: usize,
    /// How they were settled.
    pub(crate) report: ReconcileReport,
    /// Cursor of the next page, `None` at the end.
    pub(crate) next: Option<String>,
}

/// What one step of re-driving stale claims did.
#[derive(Debug, Default)]
pub(crate) struct StalePage {
    /// Stale claims on this page.
    pub(crate) found: usize,
    /// Re-claimed and settled cancelled (the node accepted the cancel, or already had one).
    pub(crate) cancelled: usize,
    /// Settled expired.
    pub(crate) expired: usize,
    /// Re-claimed, but the cancel failed (the claim was given back).
    pub(crate) failed: usize,
    /// Cursor of the next page, `None` at the end.
    pub(crate) next: Option<String>,
}
