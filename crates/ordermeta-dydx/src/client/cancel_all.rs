//! [`OrderMetaClient::cancel_all`], the kill switch: every order of the signer that may be
//! live, short-term ones in `MsgBatchCancel`s.

use std::collections::BTreeMap;

use ordermeta_core::{InvalidRecord, ListQuery, OrderMetadata, OrderStatus, now};

use super::cancel::{expired, status_gate};
use super::metrics::timed;
use super::{OrderMetaClient, is_stale_claim};
use crate::error::CancelError;
use crate::gateway::{ChainClock, codes};
use crate::recording::RecordingSwitch;

/// Most client ids one `MsgBatchCancel` may carry (chain limit).
pub const MAX_BATCH_CANCEL_IDS: usize = 100;

/// Which orders [`OrderMetaClient::cancel_all`] cancels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelScope {
    /// Every open order of the signing account.
    All,
    /// Open orders of the signing account in this market symbol.
    Market(String),
}

/// What [`OrderMetaClient::cancel_all`] did.
#[derive(Debug, Default)]
pub struct CancelAllReport {
    /// Orders whose cancel the node accepted, with the tx hash.
    pub cancelled: Vec<(String, String)>,
    /// Orders not cancelled, and why.
    pub failed: Vec<(String, CancelError)>,
    /// `MsgBatchCancel` transactions sent.
    pub batches: usize,
}

impl CancelAllReport {
    /// How many orders ended in each outcome: `"cancelled"` for accepted cancels, else the
    /// [`CancelErrorKind`](crate::CancelErrorKind) label (`"order_expired"`,
    /// `"cancel_in_progress"`, `"network_error"`, …). Outcomes with no order are left out.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        if !self.cancelled.is_empty() {
            counts.insert("cancelled", self.cancelled.len());
        }
        for (_, e) in &self.failed {
            *counts.entry(e.kind().as_str()).or_default() += 1;
        }
        counts
    }
}

/// How long the kill switch lets this client's queued `active` writes land before it lists.
const FLUSH_BEFORE_KILL: std::time::Duration = std::time::Duration::from_secs(1);

/// The statuses a kill switch must cover: everything that may be live on chain.
const MAYBE_LIVE: [OrderStatus; 3] = [
    OrderStatus::Pending,
    OrderStatus::Active,
    OrderStatus::Cancelling,
];

impl OrderMetaClient {
    /// The kill switch: cancels every order of the signing account (or of one market) that
    /// may be live, from stored metadata — `active` ones, `pending` ones (their placement
    /// may have landed) and `cancelling` ones whose claim is stale (their canceller died).
    /// Each is claimed first (`pending|active -> cancelling`, or a stale claim re-claimed),
    /// so that concurrent cancellers skip it; a `cancelling` order with a live claim is left
    /// to its canceller and reported [`CancelInProgress`](CancelError::CancelInProgress).
    /// Orders past their good-til are marked expired instead.
    ///
    /// Short-term orders go out in `MsgBatchCancel`s of at most 100 ids per subaccount,
    /// stateful ones one `MsgCancelOrder` each; both are re-sent on transport failures within
    /// the retry policy. The store is read one page at a time. See
    /// [`CancelAllReport::counts`] for the outcome of each order.
    pub async fn cancel_all(&self, scope: CancelScope) -> Result<CancelAllReport, CancelError> {
        let scope_label = match &scope {
            CancelScope::All => "*".to_owned(),
            CancelScope::Market(m) => m.clone(),
        };
        // It works from records, whatever the switch says about recording new orders; only
        // the rollback build has none.
        if !RecordingSwitch::compiled_in() {
            return Err(CancelError::RecordingDisabled {
                order_id: scope_label,
            });
        }
        let mut query = ListQuery {
            statuses: MAYBE_LIVE.to_vec(),
            owner: Some(self.gateway.signer()),
            symbol: match scope {
                CancelScope::All => None,
                CancelScope::Market(m) => Some(m),
            },
            limit: ordermeta_core::MAX_PAGE_SIZE,
            ..ListQuery::default()
        };
        // Queued `active` writes first (bounded): a `pending` record is claimed and cancelled
        // all the same, but its placement's write would then find the claim and re-send the
        // cancel.
        self.active.finisher.flush(FLUSH_BEFORE_KILL).await;
        let clock = self.clock(&scope_label).await?;
        let mut report = CancelAllReport::default();
        loop {
            let page = match timed("list", self.store.list(&query)).await {
                Ok(page) => page,
                // Nothing done yet: the caller gets the error itself.
                Err(e) if report.cancelled.is_empty() && report.failed.is_empty() => {
                    return Err(CancelError::from_store(&scope_label, e));
                }
                // Some orders are done: report them, and the page that could not be read.
                Err(e) => {
                    report.failed.push((
                        scope_label.clone(),
                        CancelError::from_store(&scope_label, e),
                    ));
                    return Ok(report);
                }
            };
            self.cancel_page(clock, page.items, page.invalid, &mut report)
                .await;
            match page.next {
                Some(next) => query.after = Some(next),
                None => return Ok(report),
            }
        }
    }

    /// Claims and cancels one page of possibly live orders.
    async fn cancel_page(
        &self,
        clock: ChainClock,
        items: Vec<OrderMetadata>,
        invalid: Vec<InvalidRecord>,
        report: &mut CancelAllReport,
    ) {
        for bad in invalid {
            report.failed.push((
                bad.order_id.clone(),
                CancelError::InvalidMetadata {
                    order_id: bad.order_id,
                    reason: bad.reason,
                },
            ));
        }
        // Claim everything first so concurrent cancellers skip these orders.
        let at = now();
        let mut short_term: BTreeMap<u32, Vec<OrderMetadata>> = BTreeMap::new();
        for meta in items {
            if meta
                .good_til
                .is_expired(Some(clock.height), Some(clock.block_time))
            {
                self.settle(
                    &meta.order_id,
                    &[meta.status],
                    OrderStatus::Expired,
                    "good-til passed",
                    None,
                )
                .await;
                let err = expired(&meta);
                report.failed.push((meta.order_id, err));
                continue;
            }
            let from: &[OrderStatus] = match meta.status {
                OrderStatus::Pending => &[OrderStatus::Pending],
                OrderStatus::Active => &[OrderStatus::Active],
                OrderStatus::Cancelling if is_stale_claim(&meta, at) => &[OrderStatus::Cancelling],
                other => {
                    // A live claim (its canceller is at work), or a status the page should
                    // not have held.
                    if let Err(err) = status_gate(&meta, other) {
                        report.failed.push((meta.order_id, err));
                    }
                    continue;
                }
            };
            let claimed = match self.claim(&meta.order_id, from).await {
                Ok(m) => m,
                Err(e) => {
                    let err =
                        match e.current_status() {
                            Some(cur) => status_gate(&meta, cur).err().unwrap_or(
                                CancelError::CancelInProgress {
                                    order_id: meta.order_id.clone(),
                                },
                            ),
                            None => CancelError::from_store(&meta.order_id, e),
                        };
                    report.failed.push((meta.order_id, err));
                    continue;
                }
            };
            if claimed.dydx_order_id.is_short_term() {
                short_term
                    .entry(claimed.subaccount_number())
                    .or_default()
                    .push(claimed);
            } else {
                match self.send_cancel(&claimed).await {
                    Ok(c) => report.cancelled.push((c.order_id, c.tx_hash)),
                    Err(e) => report.failed.push((claimed.order_id, e)),
                }
            }
        }
        for (subaccount, orders) in short_term {
            for chunk in orders.chunks(MAX_BATCH_CANCEL_IDS) {
                self.batch_cancel_chunk(clock.height, subaccount, chunk, report)
                    .await;
            }
        }
    }

    async fn batch_cancel_chunk(
        &self,
        height: u32,
        subaccount: u32,
        chunk: &[OrderMetadata],
        report: &mut CancelAllReport,
    ) {
        let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for m in chunk {
            groups
                .entry(m.clob_pair_id())
                .or_default()
                .push(m.client_id());
        }
        // A batch cancel removes an order only if its GTB >= the order's: use the largest,
        // capped at the chain's window past the next block (valid orders never exceed it).
        let gtb = chunk
            .iter()
            .filter_map(|m| m.good_til.block())
            .max()
            .unwrap_or_default()
            .min(
                height
                    .saturating_add(1)
                    .saturating_add(self.settings.short_block_window),
            );
        report.batches += 1;
        let batches: Vec<(u32, Vec<u32>)> = groups.into_iter().collect();
        let sent = self
            .settings
            .cancel_retry
            .run("batch_cancel", || {
                self.gateway.batch_cancel(subaccount, batches.clone(), gtb)
            })
            .await;
        match sent {
            Ok(tx_hash) => {
                for m in chunk {
                    self.settle(
                        &m.order_id,
                        &[OrderStatus::Cancelling],
                        OrderStatus::Cancelled,
                        "batch cancel accepted",
                        Some(&tx_hash),
                    )
                    .await;
                    report.cancelled.push((m.order_id.clone(), tx_hash.clone()));
                }
            }
            Err(e) => {
                for m in chunk {
                    self.release(&m.order_id, &e.to_string()).await;
                    let err = match e.chain() {
                        Some(c) if c.is_clob(codes::BLOCK_RATE_LIMIT_EXCEEDED) => {
                            CancelError::RateLimited {
                                order_id: m.order_id.clone(),
                            }
                        }
                        Some(c) => CancelError::rejected(&m.order_id, c),
                        None => CancelError::NetworkError {
                            order_id: m.order_id.clone(),
                            source: e.to_string().into(),
                        },
                    };
                    report.failed.push((m.order_id.clone(), err));
                }
            }
        }
    }
}
