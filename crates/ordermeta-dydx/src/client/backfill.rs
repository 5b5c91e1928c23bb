//! The fail-open write-behind: records the store refused before a broadcast are written after
//! it, by one background task per client with bounded retries; what it gives up on is kept
//! for the [`Supervisor`](crate::Supervisor)'s later attempts and reported as live without
//! metadata.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use backon::{BackoffBuilder, ExponentialBuilder};
use ordermeta_core::{
    ErrorKind, MetadataStore, OrderMetadata, OrderStatus, StoreError, TransitionRequest,
};
use tokio::time::Instant;

use super::OrderMetaClient;
use super::metrics::{count_late_write, set_late_gauges, timed};
use super::rollout::{Backfill, Counters, Rollout};
use crate::error::{NotRecorded, SweepError};

/// The records waiting to be written after their broadcast, and those given up on.
#[derive(Debug, Default)]
pub(crate) struct WriteBehind {
    queue: Mutex<VecDeque<Late>>,
    running: AtomicBool,
    /// Given up by the task: retried by the supervisor. At most `Backfill::capacity`.
    unwritten: Mutex<Vec<OrderMetadata>>,
    /// Given up beyond that capacity: never retried, only counted.
    lost: AtomicU64,
}

#[derive(Debug)]
struct Late {
    meta: OrderMetadata,
    deadline: Instant,
}

/// Why a late write did not land.
enum WriteError {
    /// The store is unreachable or slow: try again later.
    Transient(StoreError),
    /// The store refuses this record for good (it does not validate).
    Permanent(StoreError),
}

impl WriteBehind {
    /// Records waiting in the queue.
    pub(crate) fn pending(&self) -> u64 {
        lock(&self.queue).len() as u64
    }

    /// Orders given up on and not written since.
    pub(crate) fn live_without_metadata(&self) -> u64 {
        lock(&self.unwritten).len() as u64 + self.lost.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Rollout {
    /// Queues `meta` to be written after its broadcast and makes sure the writer task runs.
    pub(crate) fn defer(
        self: &Arc<Self>,
        store: &Arc<dyn MetadataStore>,
        backfill: Backfill,
        meta: OrderMetadata,
    ) {
        let handle = tokio::runtime::Handle::try_current();
        {
            let mut queue = lock(&self.late.queue);
            if queue.len() >= backfill.capacity || handle.is_err() {
                drop(queue);
                self.give_up(meta, backfill, "the write-behind queue is full");
                return;
            }
            queue.push_back(Late {
                meta,
                deadline: Instant::now() + backfill.budget,
            });
        }
        self.publish();
        if let Ok(handle) = handle
            && !self.late.running.swap(true, Ordering::AcqRel)
        {
            handle.spawn(write_behind(self.clone(), store.clone(), backfill));
        }
    }

    /// Hands an order the task could not write to the supervisor (or, beyond the capacity,
    /// only counts it), logging its identity: it is live without metadata.
    fn give_up(&self, meta: OrderMetadata, backfill: Backfill, why: &str) {
        tracing::error!(
            order_id = %meta.order_id,
            dydx_order_id = %meta.dydx_order_id,
            good_til = %meta.good_til,
            why,
            "order live without metadata: its record could not be written after the broadcast"
        );
        count_late_write("given_up");
        self.remembered
            .remember(&meta.order_id, NotRecorded::RecordingFailed);
        let mut unwritten = lock(&self.late.unwritten);
        if unwritten.len() < backfill.capacity {
            unwritten.push(meta);
        } else {
            self.late.lost.fetch_add(1, Ordering::Relaxed);
        }
        drop(unwritten);
        self.publish();
    }

    fn written(&self, meta: &OrderMetadata) {
        Counters::bump(&self.counters.written_late);
        count_late_write("written");
        self.remembered.forget(&meta.order_id);
        tracing::info!(order_id = %meta.order_id, status = %meta.status, "record written after the broadcast");
    }

    fn publish(&self) {
        set_late_gauges(self.late.pending(), self.late.live_without_metadata());
    }
}

/// The writer task: drains the queue in order, backing off while the store fails; exits when
/// the queue is empty (the next deferred record starts a new one).
async fn write_behind(rollout: Arc<Rollout>, store: Arc<dyn MetadataStore>, backfill: Backfill) {
    let backoff = || {
        ExponentialBuilder::default()
            .with_min_delay(backfill.min_delay)
            .with_max_delay(backfill.max_delay.max(backfill.min_delay))
            .without_max_times()
            .with_jitter()
            .build()
    };
    let mut delays = backoff();
    // Whether the last write failed: then an item past its deadline is given up without
    // another call to a store that is most likely still down.
    let mut failing = false;
    loop {
        let next = lock(&rollout.late.queue).pop_front();
        let Some(item) = next else {
            rollout.late.running.store(false, Ordering::Release);
            // A record queued between the pop and the store above must not wait for the next
            // placement: take the task back if nobody else did.
            let queued = !lock(&rollout.late.queue).is_empty();
            if queued && !rollout.late.running.swap(true, Ordering::AcqRel) {
                continue;
            }
            return;
        };
        if failing && Instant::now() >= item.deadline {
            rollout.give_up(
                item.meta,
                backfill,
                "retry budget spent while the store was down",
            );
            continue;
        }
        match write_late(store.as_ref(), &item.meta).await {
            Ok(()) => {
                failing = false;
                delays = backoff();
                rollout.written(&item.meta);
                rollout.publish();
            }
            Err(WriteError::Permanent(e)) => {
                rollout.give_up(item.meta, backfill, &e.to_string());
            }
            Err(WriteError::Transient(e)) => {
                failing = true;
                if Instant::now() >= item.deadline {
                    rollout.give_up(item.meta, backfill, &e.to_string());
                    continue;
                }
                tracing::warn!(order_id = %item.meta.order_id, error = %e, "late record not written yet; retrying");
                lock(&rollout.late.queue).push_front(item);
                let delay = delays.next().unwrap_or(backfill.max_delay);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Writes a record after its broadcast. If the store already has it (the write-ahead
/// `pending` record landed after all, past its deadline), it is brought to what the
/// broadcast decided instead.
async fn write_late(store: &dyn MetadataStore, meta: &OrderMetadata) -> Result<(), WriteError> {
    let classify = |e: StoreError| match e.kind() {
        ErrorKind::InvalidMetadata | ErrorKind::IllegalTransition => WriteError::Permanent(e),
        _ => WriteError::Transient(e),
    };
    match timed("record", store.record(meta)).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            if meta.status != OrderStatus::Active {
                return Ok(());
            }
            let mut req = TransitionRequest::new(
                &meta.order_id,
                &[OrderStatus::Pending],
                OrderStatus::Active,
            )
            .reason("placement accepted (recorded after the broadcast)");
            req.tx_hash = meta.tx_hash.clone();
            match timed("transition", store.transition(&req)).await {
                // Settled by someone else meanwhile (reconciliation, a cancel): nothing to do.
                Ok(_) => Ok(()),
                Err(e) if e.kind() == ErrorKind::StatusConflict => Ok(()),
                Err(e) => Err(classify(e)),
            }
        }
        Err(e) => Err(classify(e)),
    }
}

/// What one supervisor attempt at the given-up records did.
#[derive(Debug, Default)]
pub(crate) struct LateStep {
    /// Written now.
    pub(crate) written: u64,
    /// Dropped: their good-til has passed, so they are no longer live.
    pub(crate) expired: u64,
    /// Still live without metadata after the attempt.
    pub(crate) live_without_metadata: u64,
}

impl OrderMetaClient {
    /// One supervisor attempt at the orders the write-behind gave up on: at most `limit` are
    /// written (or dropped once their good-til has passed, by the chain's clock). Calls
    /// nothing when there are none.
    pub(crate) async fn retry_unwritten(&self, limit: u32) -> Result<LateStep, SweepError> {
        let late = &self.rollout.late;
        if lock(&late.unwritten).is_empty() {
            return Ok(LateStep {
                live_without_metadata: late.live_without_metadata(),
                ..LateStep::default()
            });
        }
        let clock = self.gateway.clock().await.map_err(SweepError::Gateway)?;
        let batch: Vec<OrderMetadata> = {
            let mut unwritten = lock(&late.unwritten);
            let n = unwritten.len().min(limit as usize);
            unwritten.drain(..n).collect()
        };
        let mut step = LateStep::default();
        let mut keep = Vec::new();
        for meta in batch {
            if meta
                .good_til
                .is_expired(Some(clock.height), Some(clock.block_time))
            {
                step.expired += 1;
                self.rollout.remembered.forget(&meta.order_id);
                continue;
            }
            match write_late(self.store.as_ref(), &meta).await {
                Ok(()) => {
                    step.written += 1;
                    self.rollout.written(&meta);
                }
                Err(WriteError::Transient(e) | WriteError::Permanent(e)) => {
                    tracing::warn!(order_id = %meta.order_id, error = %e, "order still live without metadata");
                    keep.push(meta);
                }
            }
        }
        lock(&late.unwritten).extend(keep);
        step.live_without_metadata = late.live_without_metadata();
        self.rollout.publish();
        Ok(step)
    }
}
