//! The `active` write of an accepted placement, off the caller's path ([`ActiveWrite`]).
//!
//! The write-ahead `pending` record stays before the broadcast; what follows an accepted
//! broadcast — `pending -> active` with the tx hash, one more cancel if a canceller claimed
//! the record meanwhile, marking a replaced order — is a [`Job`], run by a bounded background
//! writer per client (the default) or inline. Every job sits in a slot keyed by its order id
//! until it has run, so that whoever needs the record settled first — a cancel of that order,
//! reconciliation, the kill switch, a flush — runs the job itself (or waits for the writer
//! that is running it), exactly once.
//!
//! A job is a compare-and-set from `pending`: a claim or an outcome that reached the record
//! first always wins. A job that fails, or that is abandoned (the runtime stops with jobs
//! queued), leaves the record `pending`, which reconciliation settles against the chain, as
//! it settles a placement whose outcome was never learnt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use ordermeta_core::{
    Lease, MetadataStore, MetadataStoreExt, OrderMetadata, OrderStatus, StoreError,
    TransitionRequest, now,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::metrics::{count_active_write, count_recording_failure, set_active_queued, timed};
use super::retry::CancelRetry;
use crate::gateway::OrderGateway;

/// Where a placement's `active` write (after the node accepted the order) runs:
/// [`ChainSettings::active_write`](crate::ChainSettings::active_write), or per placement
/// [`PlaceOptions::active_write`](crate::PlaceOptions::active_write).
///
/// Either way the `pending` record is written **before** the broadcast and the `active`
/// write is a compare-and-set from `pending` (a cancel or claim that got there first wins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActiveWrite {
    /// The default: `place_order` returns as soon as the node accepted the order, and the
    /// client's background writer (a bounded queue,
    /// [`ChainSettings::active_write_queue`](crate::ChainSettings::active_write_queue)) writes
    /// `active`. The record reads `pending` until then. This client's own operations on the
    /// order — [`cancel_order`](crate::OrderMetaClient::cancel_order), reconciliation, the kill
    /// switch, [`mark_filled`](crate::OrderMetaClient::mark_filled) — run its queued write first;
    /// another process may see `pending` for that short while (its reconciliation waits
    /// [`SupervisorConfig::pending_after`](crate::SupervisorConfig::pending_after) before it acts).
    /// With the queue full (or no runtime to run the writer on) the write runs inline.
    /// Call [`flush_active_writes`](crate::OrderMetaClient::flush_active_writes) before a
    /// graceful shutdown: a write abandoned by a stopped runtime leaves its record `pending`,
    /// and reconciliation then cancels the order on chain.
    #[default]
    Background,
    /// `place_order` returns once `active` is written (the behaviour before
    /// [`Background`](Self::Background)): one more store round trip on the caller's path.
    Inline,
}

/// Default bound of a client's queue of `active` writes
/// ([`ChainSettings::active_write_queue`](crate::ChainSettings::active_write_queue)).
pub const DEFAULT_ACTIVE_WRITE_QUEUE: usize = 1024;

/// Writes a background writer runs at once (a burst of placements from many tasks must not
/// queue behind one store round trip at a time; a store that groups commits batches them).
const CONCURRENT_WRITES: usize = 16;

/// How long a caller waits for a write the background writer is running on the order it
/// needs settled. The write itself is bounded by the store's deadline; this only bounds the
/// rare job that also sends a cancel (with its retries).
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// What follows an accepted broadcast.
#[derive(Debug)]
pub(crate) struct Job {
    /// The order's record as written `pending` (its id, chain identity and good-til).
    pub(crate) meta: OrderMetadata,
    /// The placement's tx hash.
    pub(crate) tx_hash: String,
    /// The open record the placement replaced on chain (client-id reuse), to mark.
    pub(crate) replaced: Option<OrderMetadata>,
}

/// One order's job, taken by exactly one runner.
#[derive(Debug)]
struct Slot {
    job: tokio::sync::Mutex<Option<Job>>,
}

/// What finishing a placement needs, shared by the client and its background writer.
pub(crate) struct Finisher {
    store: Arc<dyn MetadataStore>,
    gateway: Arc<dyn OrderGateway>,
    cancel_retry: CancelRetry,
    claim_token: String,
    claim_lease: Duration,
    /// Jobs not run yet (or running), by order id.
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl std::fmt::Debug for Finisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finisher")
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

/// A client's `active` writes: the shared [`Finisher`] and, once a placement needed it, the
/// queue of its background writer. Dropping it (with the client) closes the queue: the
/// writer runs what is queued, then ends.
#[derive(Debug)]
pub(crate) struct ActiveWrites {
    pub(crate) finisher: Arc<Finisher>,
    capacity: usize,
    queue: OnceLock<mpsc::Sender<Arc<Slot>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ActiveWrites {
    pub(crate) fn new(
        store: Arc<dyn MetadataStore>,
        gateway: Arc<dyn OrderGateway>,
        cancel_retry: CancelRetry,
        claim_token: String,
        claim_lease: Duration,
        capacity: usize,
    ) -> Self {
        ActiveWrites {
            finisher: Arc::new(Finisher {
                store,
                gateway,
                cancel_retry,
                claim_token,
                claim_lease,
                slots: Mutex::default(),
            }),
            capacity: capacity.max(1),
            queue: OnceLock::new(),
        }
    }

    /// Hands `job` to the background writer; runs it here when the queue is full or closed,
    /// or when there is no runtime to run the writer on.
    pub(crate) async fn enqueue(&self, job: Job) {
        let order_id = job.meta.order_id.clone();
        let slot = Arc::new(Slot {
            job: tokio::sync::Mutex::new(Some(job)),
        });
        lock(&self.finisher.slots).insert(order_id.clone(), slot.clone());
        let sent = match self.sender() {
            Some(tx) => tx.try_send(slot.clone()).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => "queue full",
                mpsc::error::TrySendError::Closed(_) => "writer stopped",
            }),
            None => Err("no runtime"),
        };
        match sent {
            Ok(()) => set_active_queued(self.finisher.queued()),
            Err(why) => {
                tracing::debug!(order_id, why, "active write runs on the caller's path");
                lock(&self.finisher.slots).remove(&order_id);
                self.inline(job_of(&slot)).await;
            }
        }
    }

    /// Runs `job` on the caller's path ([`ActiveWrite::Inline`], or a full queue).
    pub(crate) async fn inline(&self, job: Option<Job>) {
        if let Some(job) = job {
            let outcome = self.finisher.finish(job).await;
            count_active_write(if outcome == "written" {
                "inline"
            } else {
                outcome
            });
        }
    }

    /// The writer's queue, spawning the writer on the current runtime at first use.
    fn sender(&self) -> Option<&mpsc::Sender<Arc<Slot>>> {
        if let Some(tx) = self.queue.get() {
            return Some(tx);
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        Some(self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.capacity);
            handle.spawn(drain(self.finisher.clone(), rx));
            tx
        }))
    }
}

impl super::OrderMetaClient {
    /// Runs every `active` write still queued for the background writer
    /// ([`ActiveWrite::Background`]) within `within`, a few at a time; returns how many are
    /// left. For a graceful shutdown (a write abandoned with the runtime leaves its record
    /// `pending` for reconciliation, which then cancels the order), or a caller that reads
    /// the store itself right after placing.
    pub async fn flush_active_writes(&self, within: Duration) -> usize {
        self.active.finisher.flush(within).await
    }

    /// How many accepted placements' `active` writes are queued (or running).
    pub fn active_writes_queued(&self) -> usize {
        self.active.finisher.queued()
    }
}

/// The job of a slot nobody else can reach (never queued).
fn job_of(slot: &Slot) -> Option<Job> {
    slot.job.try_lock().ok().and_then(|mut j| j.take())
}

/// The background writer: runs queued jobs, a few at a time, until the client is dropped and
/// the queue is empty. A job a caller already ran is skipped.
async fn drain(finisher: Arc<Finisher>, rx: mpsc::Receiver<Arc<Slot>>) {
    let jobs = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|slot| (slot, rx))
    });
    jobs.for_each_concurrent(CONCURRENT_WRITES, |slot| {
        let finisher = finisher.clone();
        async move {
            let order_id = match slot.job.try_lock() {
                Ok(job) => job.as_ref().map(|j| j.meta.order_id.clone()),
                // A caller is running it.
                Err(_) => None,
            };
            if let Some(order_id) = order_id {
                finisher.run(&order_id, &slot, SETTLE_WAIT).await;
            }
            set_active_queued(finisher.queued());
        }
    })
    .await;
}

impl Finisher {
    /// Jobs not run yet (or running).
    pub(crate) fn queued(&self) -> usize {
        lock(&self.slots).len()
    }

    /// Runs the job queued for `order_id`, if any — or waits (at most [`SETTLE_WAIT`]) for the
    /// writer running it — so that the record says what the placement learnt. Returns whether
    /// there was one.
    pub(crate) async fn settle(&self, order_id: &str) -> bool {
        let Some(slot) = lock(&self.slots).get(order_id).cloned() else {
            return false;
        };
        self.run(order_id, &slot, SETTLE_WAIT).await;
        true
    }

    /// Runs every queued job (a few at a time), starting none after `within`; returns how many
    /// are left.
    pub(crate) async fn flush(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let all: Vec<(String, Arc<Slot>)> = lock(&self.slots)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        futures::stream::iter(all)
            .for_each_concurrent(CONCURRENT_WRITES, |(id, slot)| async move {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if !left.is_zero() {
                    self.run(&id, &slot, left).await;
                }
            })
            .await;
        let left = self.queued();
        set_active_queued(left);
        left
    }

    /// Takes the slot's job and runs it if nobody has; waits at most `wait` for a runner that
    /// holds it. A job once taken runs to its end (each store call within the store's
    /// deadline): giving up half-way would leave its outcome to chance.
    async fn run(&self, order_id: &str, slot: &Arc<Slot>, wait: Duration) {
        let Ok(mut job) = tokio::time::timeout(wait, slot.job.lock()).await else {
            tracing::warn!(
                order_id,
                "the order's active write is still running; going on"
            );
            return;
        };
        if let Some(j) = job.take() {
            let outcome = Box::pin(self.finish(j)).await;
            count_active_write(if outcome == "written" {
                "background"
            } else {
                outcome
            });
        }
        drop(job);
        let mut slots = lock(&self.slots);
        if slots.get(order_id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(order_id);
        }
    }

    /// Everything that follows an accepted broadcast: `pending -> active` with the tx hash
    /// (a compare-and-set: what reached the record first wins), one more cancel if a canceller
    /// claimed it meanwhile, and the replaced order marked.
    /// Returns what became of the write: `written`, `raced` or `failed`.
    pub(crate) async fn finish(&self, job: Job) -> &'static str {
        let Job {
            meta,
            tx_hash,
            replaced,
        } = job;
        let order_id = meta.order_id.as_str();
        let req = TransitionRequest::new(order_id, &[OrderStatus::Pending], OrderStatus::Active)
            .tx_hash(&tx_hash)
            .reason("placement accepted");
        let outcome = match timed("transition", self.store.transition(&req)).await {
            Ok(_) => "written",
            Err(e)
                if matches!(
                    e.current_status(),
                    Some(OrderStatus::Cancelling | OrderStatus::Cancelled)
                ) =>
            {
                self.cancel_raced_placement(&meta).await;
                "raced"
            }
            // The indexer sync or the block's result recorded what the chain did first.
            Err(e)
                if matches!(
                    e.current_status(),
                    Some(OrderStatus::Filled | OrderStatus::Expired | OrderStatus::Failed)
                ) =>
            {
                tracing::info!(order_id, error = %e, "placement outcome already recorded from the chain");
                "raced"
            }
            Err(e) => {
                // The order is live and its metadata is recorded (pending), so it stays
                // cancellable after reconciliation; report, do not fail the placement.
                count_recording_failure();
                tracing::error!(order_id, error = %e, "placed, but marking it active failed; left pending for reconciliation");
                "failed"
            }
        };
        if let Some(previous) = &replaced {
            // The previous order's own job first: run after this mark, its compare-and-set
            // would find the record cancelled and send a cancel for the shared `OrderId`.
            self.settle(&previous.order_id).await;
            self.mark_replaced(previous, &meta).await;
        }
        outcome
    }

    /// Sends one more cancel for an order whose placement was accepted after a canceller had
    /// claimed its `pending` record (best effort: the canceller records the outcome).
    async fn cancel_raced_placement(&self, meta: &OrderMetadata) {
        let order_id = meta.order_id.as_str();
        tracing::warn!(
            order_id,
            "placement accepted after a cancel claimed it; sending the cancel again"
        );
        let sent = self
            .cancel_retry
            .run("cancel", || {
                self.gateway.cancel(&meta.dydx_order_id, meta.good_til)
            })
            .await;
        match sent {
            Ok(tx_hash) => tracing::info!(order_id, tx_hash, "raced placement cancelled"),
            Err(e) => tracing::warn!(order_id, error = %e, "cancel of a raced placement"),
        }
    }

    /// Records that `previous` was replaced on chain by the accepted placement `by` (same
    /// `OrderId`): `cancelled`, with a reason naming the new order. A previous order with
    /// other flags is another chain order, still live: left as it is.
    async fn mark_replaced(&self, previous: &OrderMetadata, by: &OrderMetadata) {
        let order_id = previous.order_id.as_str();
        if previous.dydx_order_id != by.dydx_order_id {
            tracing::warn!(
                order_id,
                new_order_id = by.order_id,
                "client id reused with other order flags: both orders are live on chain"
            );
            return;
        }
        let reason = format!(
            "replaced by {} (its client id was placed again: the chain replaces the order)",
            by.order_id
        );
        let req = TransitionRequest::new(
            order_id,
            &[OrderStatus::Active, OrderStatus::Cancelling],
            OrderStatus::Cancelled,
        )
        .reason(reason.as_str());
        match timed("transition", self.store.transition(&req)).await {
            Ok(_) => {}
            // `pending -> cancelled` goes through a claim, as every cancel does.
            Err(e) if e.current_status() == Some(OrderStatus::Pending) => {
                if self.claim(order_id, &[OrderStatus::Pending]).await.is_ok() {
                    let req = TransitionRequest::new(
                        order_id,
                        &[OrderStatus::Cancelling],
                        OrderStatus::Cancelled,
                    )
                    .reason(reason.as_str());
                    self.record_outcome(req).await;
                }
            }
            Err(e) => {
                tracing::warn!(order_id, error = %e, "could not mark the replaced order");
            }
        }
    }

    /// Claims `order_id` for cancelling with the client's lease, from any of `from`.
    pub(crate) async fn claim(
        &self,
        order_id: &str,
        from: &[OrderStatus],
    ) -> Result<OrderMetadata, StoreError> {
        let at = now();
        let until = at
            + chrono::Duration::from_std(self.claim_lease)
                .unwrap_or_else(|_| chrono::Duration::seconds(30));
        let lease = Lease::new(self.claim_token.clone(), until);
        timed("transition", self.store.claim(order_id, from, lease, at)).await
    }

    /// Records a transition whose failure must not hide the chain outcome from the caller;
    /// returns whether it was recorded.
    pub(crate) async fn record_outcome(&self, req: TransitionRequest) -> bool {
        let (order_id, to) = (req.order_id.as_str(), req.to);
        match timed("transition", self.store.transition(&req)).await {
            Ok(_) => true,
            // Already settled by what the chain reported meanwhile (the indexer sync: filled,
            // cancelled, expired): nothing is left to record.
            Err(e)
                if e.current_status()
                    .is_some_and(|s| s == to || s.is_terminal()) =>
            {
                tracing::info!(order_id, to = %to, error = %e, "outcome already recorded");
                true
            }
            Err(e) => {
                count_recording_failure();
                tracing::error!(order_id, to = %to, error = %e, "could not record outcome");
                false
            }
        }
    }
}
