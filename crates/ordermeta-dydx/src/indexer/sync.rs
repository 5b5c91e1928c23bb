//! [`IndexerSync`]: the background task that keeps a signer's records true to the chain as
//! the indexer reports it — backfill of orders without a record, live order updates, and a
//! REST re-snapshot after every gap in the feed.

use std::collections::HashSet;
use std::ops::AddAssign;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ordermeta_core::{ListQuery, MAX_PAGE_SIZE, OrderStatus};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::apply::{Applied, Clock};
use super::{
    FeedEvent, IndexerApi, IndexerError, IndexerOrder, IndexerSubaccount, indexer_order_id,
};
use crate::client::OrderMetaClient;

/// Order reports applied, by `outcome` (`imported`, `filled`, `partial_fill`, …).
const METRIC_APPLIED: &str = "ordermeta_indexer_applied_total";
/// Feed gaps (connection lost or re-established), by nothing.
const METRIC_GAPS: &str = "ordermeta_indexer_gaps_total";
/// Indexer or store failures of the sync, by `what` (`indexer`, `store`).
const METRIC_ERRORS: &str = "ordermeta_indexer_errors_total";

/// What an [`IndexerSync`] follows, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    /// The signer's subaccounts to follow. Default `[0]`.
    pub subaccounts: Vec<u32>,
    /// Whether open orders without a record (placed before ordermeta, or by another tool)
    /// are imported, so that they become cancellable by id. Only orders the
    /// [rollout scope](crate::RolloutScope) admits are. Default on.
    pub import: bool,
    /// A REST re-snapshot runs this often even without a gap: it catches what a silently
    /// stalled connection (no error, no messages) would hide. Default 30 s.
    pub resync_interval: Duration,
    /// The first wait before re-subscribing (and before retrying a failed re-snapshot); it
    /// doubles up to [`max_reconnect_delay`](Self::max_reconnect_delay). Default 250 ms.
    pub reconnect_delay: Duration,
    /// The longest wait between two subscription attempts. Default 10 s.
    pub max_reconnect_delay: Duration,
    /// Most recently changed orders a re-snapshot reads per subaccount. Default 500.
    pub latest_limit: u32,
    /// Most fills a re-snapshot reads per subaccount (those after the last block seen).
    /// Default 500.
    pub fills_limit: u32,
    /// Most of the signer's open records a re-snapshot looks up one by one (those the
    /// listings did not cover), per subaccount; the next re-snapshot goes on from there.
    /// Default 100.
    pub lookup_batch: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            subaccounts: vec![0],
            import: true,
            resync_interval: Duration::from_secs(30),
            reconnect_delay: Duration::from_millis(250),
            max_reconnect_delay: Duration::from_secs(10),
            latest_limit: 500,
            fills_limit: 500,
            lookup_batch: 100,
        }
    }
}

/// What an [`IndexerSync`] did: totals since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Feed subscriptions that succeeded.
    pub connections: u64,
    /// Order reports applied (feed and REST), whatever they changed.
    pub reports: u64,
    /// Open orders without a record, imported.
    pub imported: u64,
    /// `pending` records found live, made `active`.
    pub activated: u64,
    /// Records that became `filled`.
    pub filled: u64,
    /// Partial fills recorded (filled quantity raised).
    pub partial_fills: u64,
    /// Records that became `cancelled`.
    pub cancelled: u64,
    /// Cancels confirmed on records already `cancelled`.
    pub cancel_confirmed: u64,
    /// Records that became `expired`.
    pub expired: u64,
    /// Reports that changed nothing (duplicates, older news) or only stored the indexer id.
    pub unchanged: u64,
    /// Reports of orders without a record that were not imported.
    pub unknown: u64,
    /// REST re-snapshots completed.
    pub snapshots: u64,
    /// Gaps in the feed: connections lost or re-established underneath.
    pub gaps: u64,
    /// Indexer or store failures (each retried).
    pub errors: u64,
}

impl AddAssign for SyncReport {
    fn add_assign(&mut self, o: Self) {
        self.connections += o.connections;
        self.reports += o.reports;
        self.imported += o.imported;
        self.activated += o.activated;
        self.filled += o.filled;
        self.partial_fills += o.partial_fills;
        self.cancelled += o.cancelled;
        self.cancel_confirmed += o.cancel_confirmed;
        self.expired += o.expired;
        self.unchanged += o.unchanged;
        self.unknown += o.unknown;
        self.snapshots += o.snapshots;
        self.gaps += o.gaps;
        self.errors += o.errors;
    }
}

impl SyncReport {
    fn count(&mut self, applied: Applied) {
        self.reports += 1;
        let (field, label) = match applied {
            Applied::Imported => (&mut self.imported, "imported"),
            Applied::Activated => (&mut self.activated, "activated"),
            Applied::Filled => (&mut self.filled, "filled"),
            Applied::PartialFill => (&mut self.partial_fills, "partial_fill"),
            Applied::Cancelled => (&mut self.cancelled, "cancelled"),
            Applied::CancelConfirmed => (&mut self.cancel_confirmed, "cancel_confirmed"),
            Applied::Expired => (&mut self.expired, "expired"),
            Applied::Unknown => (&mut self.unknown, "unknown"),
            Applied::Unchanged | Applied::IndexerId => (&mut self.unchanged, "unchanged"),
        };
        *field += 1;
        ::metrics::counter!(METRIC_APPLIED, "outcome" => label).increment(1);
    }
}

/// The indexer sync of one signer: spawn it beside the bot (or let the
/// [`Supervisor`](crate::Supervisor) spawn it: [`Supervisor::spawn_with_indexer`](crate::Supervisor::spawn_with_indexer)),
/// [`stop`](Self::stop) it, or drop it to stop it.
///
/// For each of [`SyncConfig::subaccounts`] of the client's signer it:
///
/// 1. subscribes to the `v4_subaccounts` feed;
/// 2. takes a **REST snapshot**: the open orders (an open order without a record is
///    **imported** — the backfill — as `active`, its history saying "imported from the
///    indexer", under the id [`place_order`](OrderMetaClient::place_order) would have given
///    it, so it is cancellable by id), the latest changed orders, the fills since the last
///    block seen (their orders looked up by id), and the signer's open records the listings
///    did not cover (looked up by id, [`lookup_batch`](SyncConfig::lookup_batch) at a time; a
///    short-term order the indexer reported before and no longer knows at all was removed
///    without a fill: `cancelled`, or `expired` past its good-til);
/// 3. applies every order update of the feed to its record **through the state machine**
///    (see below), idempotently: duplicated and reordered messages change nothing wrongly;
/// 4. after a **gap** — the connection lost (the stream ends) or re-established underneath
///    (a second snapshot) — re-subscribes with backoff and takes a new REST snapshot, so no
///    update is lost; a REST snapshot also runs every
///    [`resync_interval`](SyncConfig::resync_interval), for a connection that stalls without
///    an error.
///
/// The rules: `FILLED` makes the record `filled` with the filled quantity — also from
/// `cancelled` or `expired` (a cancel that lost the race to a fill); a partial fill raises the
/// recorded filled quantity (compared as decimals, written with compare-and-set on the
/// version: never lowered); `CANCELED` makes an open record `cancelled` and sets
/// [`cancel_confirmed_at`](ordermeta_core::OrderMetadata::cancel_confirmed_at) (on a
/// `cancelled` record it only confirms), or `expired` when the chain removed it at its
/// good-til; `BEST_EFFORT_CANCELED` makes it `cancelled` as accepted, unconfirmed; an open
/// report makes a `pending` record `active`. The indexer's order id is stored on the record.
///
/// Several syncs (processes) may follow one signer: every write is a compare-and-set, and a
/// report that lost a race is re-planned from a fresh read.
///
/// Metrics: `ordermeta_indexer_applied_total{outcome}`, `ordermeta_indexer_gaps_total`,
/// `ordermeta_indexer_errors_total{what}`.
#[derive(Debug)]
pub struct IndexerSync {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    report: Arc<Mutex<SyncReport>>,
}

impl IndexerSync {
    /// Spawns the sync of `client`'s signer on the current tokio runtime.
    pub fn spawn(
        client: Arc<OrderMetaClient>,
        indexer: Arc<dyn IndexerApi>,
        config: SyncConfig,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let report = Arc::new(Mutex::new(SyncReport::default()));
        let engine = Arc::new(Engine {
            client,
            indexer,
            config,
            report: report.clone(),
        });
        let task = tokio::spawn(async move {
            let owner = engine.client.gateway().signer();
            let runs = engine.config.subaccounts.iter().map(|&n| {
                let engine = engine.clone();
                let stopped = stopped.clone();
                let sub = IndexerSubaccount::new(owner.clone(), n);
                async move { engine.follow(sub, stopped).await }
            });
            futures::future::join_all(runs).await;
        });
        IndexerSync { stop, task, report }
    }

    /// One REST snapshot of every subaccount, now, without the feed: the backfill as a
    /// one-shot (e.g. at start-up, or from an operator's command). Failures are counted in
    /// [`errors`](SyncReport::errors).
    pub async fn run_once(
        client: Arc<OrderMetaClient>,
        indexer: Arc<dyn IndexerApi>,
        config: &SyncConfig,
    ) -> SyncReport {
        let report = Arc::new(Mutex::new(SyncReport::default()));
        let engine = Engine {
            client,
            indexer,
            config: config.clone(),
            report: report.clone(),
        };
        let owner = engine.client.gateway().signer();
        for &n in &config.subaccounts {
            let sub = IndexerSubaccount::new(owner.clone(), n);
            let _ = engine.snapshot(&sub, None, &mut None).await;
        }
        engine.totals()
    }

    /// What the sync did so far.
    pub fn report(&self) -> SyncReport {
        *self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the task after the report in progress and returns its totals.
    pub async fn stop(self) -> SyncReport {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        *self.report.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sync's shared state: one per [`IndexerSync`], shared by its subaccounts' loops.
struct Engine {
    client: Arc<OrderMetaClient>,
    indexer: Arc<dyn IndexerApi>,
    config: SyncConfig,
    report: Arc<Mutex<SyncReport>>,
}

impl Engine {
    fn bump(&self, f: impl FnOnce(&mut SyncReport)) {
        f(&mut self.report.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn totals(&self) -> SyncReport {
        *self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, what: &'static str) {
        self.bump(|r| r.errors += 1);
        ::metrics::counter!(METRIC_ERRORS, "what" => what).increment(1);
    }

    fn gap(&self, sub: &IndexerSubaccount, why: &str) {
        tracing::warn!(subaccount = %sub, why, "indexer feed gap: re-snapshot over REST");
        self.bump(|r| r.gaps += 1);
        ::metrics::counter!(METRIC_GAPS).increment(1);
    }

    /// Applies one report; false if the store failed (the caller re-snapshots later).
    async fn apply(&self, o: &IndexerOrder, clock: Clock) -> bool {
        match self
            .client
            .apply_indexer_order(o, clock, self.config.import)
            .await
        {
            Ok(applied) => {
                self.bump(|r| r.count(applied));
                true
            }
            Err(e) => {
                tracing::warn!(indexer_id = o.indexer_id, error = %e, "indexer report not applied");
                self.error("store");
                false
            }
        }
    }

    /// Settles a record whose order the indexer no longer knows at all (see
    /// [`OrderMetaClient::settle_absent`]); false if the store failed.
    async fn settle_absent(&self, meta: &ordermeta_core::OrderMetadata, clock: Clock) -> bool {
        match self.client.settle_absent(meta, clock).await {
            Ok(Some(applied)) => {
                self.bump(|r| r.count(applied));
                true
            }
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(order_id = meta.order_id, error = %e, "absent order not settled");
                self.error("store");
                false
            }
        }
    }

    /// Follows one subaccount until stopped: subscribe, snapshot, apply the feed; after a
    /// gap, again.
    async fn follow(&self, sub: IndexerSubaccount, mut stopped: watch::Receiver<bool>) {
        let mut last_height: Option<u32> = None;
        let mut cursor: Option<String> = None;
        let mut backoff = self.config.reconnect_delay;
        loop {
            if stop_requested(&stopped) {
                return;
            }
            let subscribed = tokio::select! {
                r = self.indexer.subscribe(&sub) => r,
                _ = stopped.changed() => return,
            };
            let mut stream = match subscribed {
                Ok(stream) => {
                    self.bump(|r| r.connections += 1);
                    backoff = self.config.reconnect_delay;
                    stream
                }
                Err(e) => {
                    tracing::warn!(subaccount = %sub, error = %e, "indexer feed subscription failed");
                    self.error("indexer");
                    // Keep the records true over REST meanwhile, if it answers.
                    let _ = self.snapshot(&sub, last_height, &mut cursor).await;
                    if !pause(&mut stopped, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(self.config.max_reconnect_delay);
                    continue;
                }
            };
            // Whatever happened before this subscription comes from REST: no gap.
            let mut dirty = !self.snapshot(&sub, last_height, &mut cursor).await;
            let retry = tokio::time::sleep(self.config.reconnect_delay);
            tokio::pin!(retry);
            let mut resync = tokio::time::interval_at(
                Instant::now() + self.config.resync_interval,
                self.config.resync_interval.max(Duration::from_millis(10)),
            );
            let mut snapshots_seen = 0u32;
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = resync.tick() => {
                        dirty = !self.snapshot(&sub, last_height, &mut cursor).await;
                    }
                    () = &mut retry, if dirty => {
                        dirty = !self.snapshot(&sub, last_height, &mut cursor).await;
                    }
                    event = stream.next() => match event {
                        None => {
                            self.gap(&sub, "connection lost");
                            break;
                        }
                        Some(FeedEvent::Snapshot { orders, height, .. }) => {
                            snapshots_seen += 1;
                            let mut ok = true;
                            for o in &orders {
                                ok &= self.apply(o, None).await;
                            }
                            if snapshots_seen > 1 {
                                self.gap(&sub, "re-subscribed underneath");
                                ok &= self.snapshot(&sub, last_height, &mut cursor).await;
                            }
                            raise(&mut last_height, Some(height));
                            dirty |= !ok;
                        }
                        Some(FeedEvent::Update { orders, fills, height, .. }) => {
                            let mut ok = true;
                            for o in &orders {
                                ok &= self.apply(o, None).await;
                            }
                            raise(&mut last_height, height);
                            raise(&mut last_height, orders.iter().filter_map(|o| o.height).max());
                            raise(&mut last_height, fills.iter().map(|f| f.height).max());
                            dirty |= !ok;
                        }
                    },
                }
                if dirty {
                    retry
                        .as_mut()
                        .reset(Instant::now() + self.config.reconnect_delay);
                }
            }
            if !pause(&mut stopped, self.config.reconnect_delay).await {
                return;
            }
        }
    }

    /// One REST snapshot of `sub`: open orders (imported when unknown), the latest changed
    /// orders, the orders of fills after `after_height`, then open records the listings did
    /// not cover, looked up by id from `cursor` on. True if it completed.
    async fn snapshot(
        &self,
        sub: &IndexerSubaccount,
        after_height: Option<u32>,
        cursor: &mut Option<String>,
    ) -> bool {
        match self.try_snapshot(sub, after_height, cursor).await {
            Ok(()) => {
                self.bump(|r| r.snapshots += 1);
                true
            }
            Err(SnapshotError::Indexer(e)) => {
                tracing::warn!(subaccount = %sub, error = %e, "indexer snapshot failed");
                self.error("indexer");
                false
            }
            Err(SnapshotError::Store) => false,
        }
    }

    async fn try_snapshot(
        &self,
        sub: &IndexerSubaccount,
        after_height: Option<u32>,
        cursor: &mut Option<String>,
    ) -> Result<(), SnapshotError> {
        let clock = Some(self.indexer.clock().await?);
        let mut seen: HashSet<String> = HashSet::new();
        let mut ok = true;
        for o in self.indexer.open_orders(sub).await? {
            ok &= self.apply(&o, clock).await;
            seen.insert(o.indexer_id);
        }
        for o in self
            .indexer
            .latest_orders(sub, self.config.latest_limit)
            .await?
        {
            if seen.insert(o.indexer_id.clone()) {
                ok &= self.apply(&o, clock).await;
            }
        }
        if let Some(after) = after_height {
            let fills = self
                .indexer
                .fills_since(sub, after, self.config.fills_limit)
                .await?;
            for id in fills.into_iter().filter_map(|f| f.order_indexer_id) {
                if seen.insert(id.clone())
                    && let Some(o) = self.indexer.order(&sub.owner, &id).await?
                {
                    ok &= self.apply(&o, clock).await;
                }
            }
        }
        ok &= self.look_up_open_records(sub, clock, &seen, cursor).await?;
        if ok {
            Ok(())
        } else {
            Err(SnapshotError::Store)
        }
    }

    /// Looks up by id, one page at a time from `cursor`, the signer's open records of `sub`
    /// that no listing covered (an order that changed long ago, or beyond the listings'
    /// limits).
    async fn look_up_open_records(
        &self,
        sub: &IndexerSubaccount,
        clock: Clock,
        seen: &HashSet<String>,
        cursor: &mut Option<String>,
    ) -> Result<bool, SnapshotError> {
        let query = ListQuery {
            statuses: OrderStatus::OPEN.to_vec(),
            owner: Some(sub.owner.clone()),
            subaccount_number: Some(sub.number),
            after: cursor.take(),
            limit: self.config.lookup_batch.clamp(1, MAX_PAGE_SIZE),
            ..ListQuery::default()
        };
        let page = match self.client.store().list(&query).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(subaccount = %sub, error = %e, "listing open records failed");
                self.error("store");
                return Ok(false);
            }
        };
        *cursor = page.next;
        let mut ok = true;
        for meta in page.items {
            let id = meta
                .indexer_id
                .clone()
                .unwrap_or_else(|| indexer_order_id(&meta.dydx_order_id));
            if seen.contains(&id) {
                continue;
            }
            // The indexer keeps one row per chain identity: a report of a later placement
            // with the same OrderId is not about this record (`record_of` checks the good-til).
            match self.indexer.order(&sub.owner, &id).await? {
                Some(o) => ok &= self.apply(&o, clock).await,
                None => ok &= self.settle_absent(&meta, clock).await,
            }
        }
        Ok(ok)
    }
}

/// Why a snapshot did not complete.
enum SnapshotError {
    /// The indexer failed.
    Indexer(IndexerError),
    /// A store write failed (already logged and counted).
    Store,
}

impl From<IndexerError> for SnapshotError {
    fn from(e: IndexerError) -> Self {
        SnapshotError::Indexer(e)
    }
}

/// Raises `last` to `seen` (heights only go up).
fn raise(last: &mut Option<u32>, seen: Option<u32>) {
    if let Some(h) = seen {
        *last = Some(last.map_or(h, |l| l.max(h)));
    }
}

/// Whether stop was asked for (or the handle dropped).
fn stop_requested(stopped: &watch::Receiver<bool>) -> bool {
    *stopped.borrow() || stopped.has_changed().is_err()
}

/// Waits `delay` unless stopped first; false when stopped.
async fn pause(stopped: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => !stop_requested(stopped),
        _ = stopped.changed() => false,
    }
}
