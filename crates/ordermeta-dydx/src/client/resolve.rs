//! Asking the chain instead of guessing: with an [indexer](OrderMetaClient::with_indexer),
//! what became of an order the node says does not exist (clob 3006 / 3010 on a stateful
//! cancel), and of a `pending` record before reconciliation sends a cancel for it.

use std::sync::Arc;
use std::time::Duration;

use ordermeta_core::{OrderMetadata, OrderStatus};

use super::OrderMetaClient;
use super::metrics::timed;
use crate::indexer::{Applied, IndexerApi, IndexerOrder, indexer_order_id};

/// How long to wait before asking the indexer a second time when it still reports open an
/// order the node says is gone (the indexer follows the chain a little behind).
const INDEXER_LAG: Duration = Duration::from_millis(500);

impl OrderMetaClient {
    /// Attaches an indexer: then a stateful cancel answered "does not exist" (clob 3006, or
    /// 3010 in its block) is recorded as what the indexer says happened — `filled`,
    /// `cancelled` or `expired` — instead of a guess; [`reconcile_pending`](Self::reconcile_pending)
    /// asks it whether a `pending` order filled or was removed before sending a cancel; and
    /// [`cancel_by_client_id`](Self::cancel_by_client_id) finds orders without a record.
    /// (The [`IndexerSync`](crate::IndexerSync) takes its indexer separately.)
    pub fn with_indexer(mut self, indexer: Arc<dyn IndexerApi>) -> Self {
        self.indexer = Some(indexer);
        self
    }

    /// The attached indexer, if any.
    pub fn indexer(&self) -> Option<&Arc<dyn IndexerApi>> {
        self.indexer.as_ref()
    }

    /// What the indexer says became of the order recorded under `order_id`, once it no longer
    /// reports it open — applied to the record. `None` when it cannot tell: no indexer, an
    /// error, the order unknown to it or still open there after a second look, or its report
    /// about a later placement with the same `OrderId`.
    pub(super) async fn resolve_gone(&self, order_id: &str) -> Option<Applied> {
        // The indexer sync may have recorded the outcome already (a fill races the cancel).
        let meta = timed("get", self.store.get(order_id)).await.ok()??;
        if let Some(done) = settled(meta.status) {
            return Some(done);
        }
        let report = self.indexer_report(&meta, true).await?;
        match self.apply_final(&report).await {
            Some(applied) => Some(applied),
            None => {
                let meta = timed("get", self.store.get(order_id)).await.ok()??;
                settled(meta.status)
            }
        }
    }

    /// Before reconciliation cancels a `pending` record: whether the indexer already knows
    /// the order filled, cancelled or expired (then recorded, and no cancel is needed).
    /// `None` when the order is open there, unknown, or the indexer cannot be asked: the
    /// cancel then makes sure it is dead.
    pub(super) async fn settle_pending_from_indexer(
        &self,
        meta: &OrderMetadata,
    ) -> Option<Applied> {
        let report = self.indexer_report(meta, false).await?;
        self.apply_final(&report).await
    }

    /// The indexer's report of `meta`'s order, once it is no longer open (with `wait_lag`,
    /// asked twice if it still is).
    async fn indexer_report(&self, meta: &OrderMetadata, wait_lag: bool) -> Option<IndexerOrder> {
        let indexer = self.indexer.as_ref()?;
        let id = meta
            .indexer_id
            .clone()
            .unwrap_or_else(|| indexer_order_id(&meta.dydx_order_id));
        for attempt in 0..2 {
            let report = match indexer.order(meta.owner(), &id).await {
                Ok(Some(o)) => o,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(order_id = meta.order_id, error = %e, "indexer lookup failed");
                    return None;
                }
            };
            // One indexer row per chain identity: a later placement's report is not ours.
            if report.order_id != meta.dydx_order_id
                || report.good_til.is_some_and(|g| g != meta.good_til)
            {
                return None;
            }
            if !report.status.is_open() {
                return Some(report);
            }
            if !wait_lag || attempt > 0 {
                return None;
            }
            tokio::time::sleep(INDEXER_LAG).await;
        }
        None
    }

    /// Applies a final report; the outcome if it settled the record.
    async fn apply_final(&self, report: &IndexerOrder) -> Option<Applied> {
        let clock = match self.indexer.as_ref() {
            Some(i) => i.clock().await.ok(),
            None => None,
        };
        match self.apply_indexer_order(report, clock, false).await {
            Ok(a @ (Applied::Filled | Applied::Cancelled | Applied::Expired)) => Some(a),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(indexer_id = report.indexer_id, error = %e, "indexer outcome not recorded");
                None
            }
        }
    }
}

/// What a record already settled by the chain amounts to.
fn settled(status: OrderStatus) -> Option<Applied> {
    match status {
        OrderStatus::Filled => Some(Applied::Filled),
        OrderStatus::Cancelled => Some(Applied::Cancelled),
        OrderStatus::Expired => Some(Applied::Expired),
        _ => None,
    }
}
