//! Group commit: one writer task per store coalesces the `record`, `transition` and `update`
//! calls of many tasks into one transaction.
//!
//! Through sqlx every statement costs a hand-off to the connection's worker thread and back
//! (~250 µs on the reference machine), more than SQLite needs to commit a row. A call queues
//! its write for the store's writer task and waits for the answer; the task takes whatever is
//! queued (up to [`max_batch`](crate::SqliteStoreOptions::max_batch)) and writes it:
//!
//! - **one call**: the call's own single statement (`crate::write`), exactly as with group
//!   commit off. A call that finds nobody waiting for the task and nobody writing runs it
//!   itself, without the hand-off to the task and back;
//! - **several**: one `BEGIN IMMEDIATE` transaction with as few statements as the batch allows
//!   (`batch`): one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` for the records, one
//!   compare-and-set `UPDATE … FROM (VALUES …) RETURNING` per round of transitions and updates
//!   (one call per order in a round), one `SELECT` of the orders whose compare-and-set lost,
//!   then `COMMIT`.
//!
//! Every call keeps its own answer (`AlreadyExists`, `StatusConflict`, `NotFound`, a corrupt
//! row: each decided for its own order, as its single statement would) and its own
//! durability: the answer is sent after the `COMMIT` holding its write. While the task writes
//! one batch the next calls queue, so batches grow with the load by themselves; nothing waits
//! to fill one.
//!
//! Deadlines stay the caller's: a call waits for its answer (queue and batch) under its
//! operation deadline, and past it reads its record back as without group commit. A call whose
//! caller gave up before its batch began is left out, never written. The task lives as long as
//! the store (it ends when the last clone of the store is dropped or the store is closed), and
//! is started on the runtime of the first write that needs it — again if that runtime has gone.

mod batch;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ordermeta_core::{OrderMetadata, StoreError, TransitionRequest, UpdateRequest};
use sqlx::sqlite::SqliteRow;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, error::SendError, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::write::Writes;

/// A write a call hands to the writer task.
#[derive(Debug)]
pub(crate) enum Op {
    Record(OrderMetadata),
    Transition(TransitionRequest),
    Update(UpdateRequest),
}

impl Op {
    fn order_id(&self) -> &str {
        match self {
            Op::Record(m) => &m.order_id,
            Op::Transition(r) => &r.order_id,
            Op::Update(r) => &r.order_id,
        }
    }

    fn operation(&self) -> &'static str {
        match self {
            Op::Record(_) => "record",
            Op::Transition(_) => "transition",
            Op::Update(_) => "update",
        }
    }
}

/// What a call's write did: a record written, or a compare-and-set's stored record.
pub(crate) enum Done {
    Recorded,
    Record(Box<OrderMetadata>),
    /// The row a batch statement returned, decoded by the caller: the decoding (base64,
    /// protobuf, JSON, validation) runs on the caller's task, beside the writer's next batch
    /// instead of before it.
    Row(SqliteRow),
}

impl std::fmt::Debug for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Recorded => f.write_str("Recorded"),
            Done::Record(m) => f.debug_tuple("Record").field(m).finish(),
            Done::Row(r) => write!(f, "Row({})", crate::row::order_id_lossy(r)),
        }
    }
}

/// A call's answer.
pub(crate) type Answer = Result<Done, StoreError>;

/// A queued write and where its answer goes.
#[derive(Debug)]
struct Pending {
    op: Op,
    reply: oneshot::Sender<Answer>,
}

/// The writer task of a store: its queue and the handle to await its end.
#[derive(Debug)]
struct Task {
    queue: UnboundedSender<Pending>,
    handle: JoinHandle<()>,
}

/// A store's group commit: the queue of its writer task (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct GroupCommit {
    writes: Writes,
    max_batch: usize,
    /// Bounds each batch in the task, so that a hung statement cannot hold the queue for ever
    /// (its callers have given up by then: each waits under the same deadline).
    deadline: Duration,
    task: Mutex<Option<Task>>,
    /// Calls waiting for the writer task's answer.
    waiting: AtomicUsize,
}

/// Counts a call among those waiting for the writer task while it lives (until answered, or
/// given up).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl GroupCommit {
    pub(crate) fn new(writes: Writes, max_batch: usize, deadline: Duration) -> Self {
        GroupCommit {
            writes,
            max_batch: max_batch.max(1),
            deadline,
            task: Mutex::new(None),
            waiting: AtomicUsize::new(0),
        }
    }

    pub(crate) async fn record(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        if self.alone() {
            return self.writes.insert(meta).await;
        }
        self.submit(Op::Record(meta.clone())).await.map(drop)
    }

    pub(crate) async fn transition(
        &self,
        req: &TransitionRequest,
    ) -> Result<OrderMetadata, StoreError> {
        if self.alone() {
            return self.writes.compare_and_set(req).await;
        }
        record_of(
            &req.order_id,
            self.submit(Op::Transition(req.clone())).await,
        )
    }

    pub(crate) async fn update(&self, req: &UpdateRequest) -> Result<OrderMetadata, StoreError> {
        if self.alone() {
            return self.writes.update_cas(req).await;
        }
        record_of(&req.order_id, self.submit(Op::Update(req.clone())).await)
    }

    /// Whether a call is alone: nobody waits for the writer task and nobody writes. It then
    /// runs its single statement itself, as with group commit off, without the hand-off to
    /// the task and back (a lone caller pays nothing). A call arriving meanwhile queues for
    /// the task, which waits for the write lock like any writer.
    fn alone(&self) -> bool {
        self.waiting.load(Ordering::Acquire) == 0 && self.writes.lock.try_lock().is_ok()
    }

    /// Queues `op` and waits for its answer. A task that ended without answering (its runtime
    /// shut down mid-batch) leaves the outcome unknown: `Timeout`, which the caller reads back.
    async fn submit(&self, op: Op) -> Answer {
        let operation = op.operation();
        let started = Instant::now();
        let _waiting = Waiting::new(&self.waiting);
        let (reply, answer) = oneshot::channel();
        self.send(Pending { op, reply });
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Timeout {
                operation,
                after: started.elapsed(),
            })
        })
    }

    fn send(&self, pending: Pending) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = match task.as_ref() {
            None => pending,
            Some(t) => match t.queue.send(pending) {
                Ok(()) => return,
                // The task is gone (its runtime shut down): nothing of this call was taken.
                Err(SendError(p)) => p,
            },
        };
        let (queue, receiver) = unbounded_channel();
        let handle = tokio::spawn(run(
            receiver,
            self.writes.clone(),
            self.max_batch,
            self.deadline,
        ));
        // Fails only if the new task was dropped already (a runtime shutting down): the reply
        // is dropped with it, and the caller learns of an unknown outcome.
        let _ = queue.send(pending);
        *task = Some(Task { queue, handle });
    }

    /// Stops the writer task once it has written what is queued, and waits for it (within the
    /// batch deadline).
    pub(crate) async fn close(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(Task { queue, handle }) = task {
            drop(queue);
            let _ = tokio::time::timeout(self.deadline, handle).await;
        }
    }

    /// Whether a writer task is running (tests: it ends with the store).
    #[cfg(test)]
    pub(crate) fn running(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|t| !t.handle.is_finished())
    }
}

/// The record of a compare-and-set's answer (a corrupt row is `InvalidMetadata` naming the
/// order: changed all the same, as by the single statement).
fn record_of(order_id: &str, answer: Answer) -> Result<OrderMetadata, StoreError> {
    match answer? {
        Done::Record(m) => Ok(*m),
        Done::Row(r) => crate::row::decode(&r).map_err(|e| e.for_order(order_id)),
        Done::Recorded => Err(StoreError::backend(
            "group commit: a compare-and-set answered without a record",
        )),
    }
}

/// The writer task: waits for a call, then for the write lock, then takes what is queued by
/// then, up to `max_batch` calls, and writes it; ends when every sender is gone (the store was
/// dropped or closed) and the queue is empty.
async fn run(
    mut queue: UnboundedReceiver<Pending>,
    writes: Writes,
    max_batch: usize,
    deadline: Duration,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = queue.recv().await {
        // The batch is formed once the task can write: calls that queue while another writer
        // (a lone caller, bulk work) holds the lock join it, and a caller that gave up in the
        // meantime is left out.
        let _writing = writes.lock.lock().await;
        batch.push(first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // A caller that gave up while queued (its deadline passed) is not written at all.
        batch.retain(|p| !p.reply.is_closed());
        if batch.len() == 1 {
            if let Some(Pending { op, reply }) = batch.pop() {
                let answer = tokio::time::timeout(deadline, writes.one_held(&op))
                    .await
                    .unwrap_or_else(|_| Err(timeout(&op, deadline)));
                let _ = reply.send(answer);
            }
        } else if !batch.is_empty() {
            let (ops, replies): (Vec<Op>, Vec<_>) =
                batch.drain(..).map(|p| (p.op, p.reply)).unzip();
            let answers = match tokio::time::timeout(deadline, writes.group_held(&ops)).await {
                Ok(answers) => answers,
                Err(_) => ops.iter().map(|op| Err(timeout(op, deadline))).collect(),
            };
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
    }
}

/// A batch that missed the deadline was abandoned (rolled back, unless its `COMMIT` was under
/// way): the outcome is unknown.
fn timeout(op: &Op, after: Duration) -> StoreError {
    StoreError::Timeout {
        operation: op.operation(),
        after,
    }
}

impl Writes {
    /// One call's write, as its own single statement, the write lock held by the caller.
    async fn one_held(&self, op: &Op) -> Answer {
        match op {
            Op::Record(m) => self.insert_held(m).await.map(|()| Done::Recorded),
            Op::Transition(r) => self
                .compare_and_set_held(r)
                .await
                .map(|m| Done::Record(Box::new(m))),
            Op::Update(r) => self
                .update_cas_held(r)
                .await
                .map(|m| Done::Record(Box::new(m))),
        }
    }
}
