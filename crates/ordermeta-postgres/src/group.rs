//! Group commit: concurrent `record`s and transitions from many tasks, coalesced by a few
//! writer tasks into one statement per kind and batch (`INSERT … SELECT FROM UNNEST … ON
//! CONFLICT DO NOTHING RETURNING order_id`, `UPDATE … FROM UNNEST … RETURNING v_seq`).
//!
//! Each caller keeps its own answer: the writer tells each job what its statement did
//! ([`Outcome`]) and the caller turns that into its result, resolving what the batch could
//! not decide (a lost compare-and-set, a batch the server refused) alone, on today's
//! single-statement path. A job is answered only after the statement holding its write
//! returned (autocommit: committed). A caller gone before its batch is built (deadline
//! passed) is left out of it; one gone while its batch runs resolves by reading back.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ordermeta_core::OrderMetadata;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Executor, Row};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::cas::{Cas, CasColumns};
use crate::error::is_unique_violation;
use crate::row::{self, Columns};
use crate::sql::Sql;

/// What the writer did with one job.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The record was inserted.
    Inserted,
    /// The record's id was taken (before, or by an earlier job of the same batch).
    Exists,
    /// The compare-and-set held: the updated row.
    Won(PgRow),
    /// The compare-and-set did not hold (or its row was locked by another transaction and
    /// skipped): the caller reads what it lost to, as after a lost single statement.
    Lost,
    /// Nothing was written (the server refused the batch's statement, or no connection):
    /// the caller runs its write alone.
    Alone,
    /// The job ran alone and failed: its statement's own error, as on the caller's path.
    Failed(sqlx::Error),
    /// The batch's statement failed in a way that leaves its outcome unknown (connection
    /// lost mid-statement): the caller reads back.
    Unknown(Arc<sqlx::Error>),
}

/// One caller's write, waiting for a writer.
#[derive(Debug)]
enum Job {
    Record(Arc<OrderMetadata>, oneshot::Sender<Outcome>),
    Transition(Arc<Cas>, oneshot::Sender<Outcome>),
}

impl Job {
    fn gone(&self) -> bool {
        match self {
            Job::Record(_, reply) | Job::Transition(_, reply) => reply.is_closed(),
        }
    }

    fn answer(self, outcome: Outcome) {
        match self {
            // A caller that gave up meanwhile reads back instead.
            Job::Record(_, reply) | Job::Transition(_, reply) => drop(reply.send(outcome)),
        }
    }
}

/// The group commit of one store: its queue and how many writes are in progress.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: mpsc::UnboundedSender<Job>,
    active: AtomicUsize,
    threshold: usize,
    counts: Arc<Counts>,
}

/// What the writers did, for [`GroupCommitStats`].
#[derive(Debug, Default)]
struct Counts {
    batches: AtomicU64,
    batched_writes: AtomicU64,
}

impl Counts {
    fn count(&self, writes: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_writes
            .fetch_add(writes as u64, Ordering::Relaxed);
    }
}

/// What a store's group commit has done so far
/// ([`PgStore::group_commit_stats`](crate::PgStore::group_commit_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// `record`s and transitions in progress right now (running alone or waiting for, or in,
    /// a batch).
    pub in_progress: usize,
    /// Multi-row statements the writers ran (a batch of one runs the single statement and is
    /// not counted).
    pub batches: u64,
    /// Writes those statements carried.
    pub batched_writes: u64,
}

/// A write in progress (counted while it lives); `alone` when fewer than the threshold of
/// others were in progress as it started, so it takes the single-statement path directly: a
/// lone caller pays nothing, and a few concurrent ones run in parallel on the pool (batches
/// of two or three, one after another, are slower than that).
pub(crate) struct Entered<'a> {
    group: &'a GroupCommit,
    pub(crate) alone: bool,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.group.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How the writers are set up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupOptions {
    pub(crate) writers: u32,
    pub(crate) max_batch: usize,
    /// Writes in progress from which a new one joins a batch instead of running directly.
    pub(crate) threshold: usize,
    /// Bounds each batch (the operation deadline): a writer never waits for ever.
    pub(crate) deadline: Duration,
}

impl GroupCommit {
    /// Starts the writers on the current tokio runtime; `None` outside one. They stop when
    /// the store (its last clone) is dropped: the queue closes.
    pub(crate) fn start(pool: &PgPool, sql: &Arc<Sql>, opts: GroupOptions) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (queue, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let counts = Arc::new(Counts::default());
        for _ in 0..opts.writers.max(1) {
            let writer = Writer {
                pool: pool.clone(),
                sql: sql.clone(),
                rx: rx.clone(),
                opts,
                counts: counts.clone(),
            };
            runtime.spawn(writer.run());
        }
        Some(GroupCommit {
            queue,
            active: AtomicUsize::new(0),
            threshold: opts.threshold.max(1),
            counts,
        })
    }

    pub(crate) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            in_progress: self.active.load(Ordering::Acquire),
            batches: self.counts.batches.load(Ordering::Relaxed),
            batched_writes: self.counts.batched_writes.load(Ordering::Relaxed),
        }
    }

    /// Counts a write in progress until the guard drops.
    pub(crate) fn enter(&self) -> Entered<'_> {
        let before = self.active.fetch_add(1, Ordering::AcqRel);
        Entered {
            group: self,
            alone: before < self.threshold,
        }
    }

    pub(crate) async fn record(&self, meta: Arc<OrderMetadata>) -> Outcome {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Record(meta, tx), rx).await
    }

    pub(crate) async fn transition(&self, cas: Arc<Cas>) -> Outcome {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Transition(cas, tx), rx).await
    }

    async fn submit(&self, job: Job, rx: oneshot::Receiver<Outcome>) -> Outcome {
        if self.queue.send(job).is_err() {
            // No writer (the runtime that ran them is gone): nothing was sent.
            return Outcome::Alone;
        }
        // A writer that dropped the job mid-batch (its deadline passed) leaves the outcome
        // unknown.
        rx.await.unwrap_or_else(|_| {
            Outcome::Unknown(Arc::new(sqlx::Error::Protocol(
                "the group commit writer did not finish the batch holding this write".into(),
            )))
        })
    }
}

/// One writer task: takes what is queued (up to `max_batch`), runs it, answers each job.
struct Writer {
    pool: PgPool,
    sql: Arc<Sql>,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    opts: GroupOptions,
    counts: Arc<Counts>,
}

impl Writer {
    async fn run(self) {
        // Kept while jobs keep coming (no acquire, no release ping between batches), given
        // back to the pool as soon as the queue is empty.
        let mut conn: Option<PoolConnection<Postgres>> = None;
        loop {
            let mut jobs = {
                let mut rx = self.rx.lock().await;
                let first = match rx.try_recv() {
                    Ok(job) => job,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        conn = None;
                        match rx.recv().await {
                            Some(job) => job,
                            None => return,
                        }
                    }
                };
                let mut jobs = vec![first];
                while jobs.len() < self.opts.max_batch {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                jobs
            };
            // A caller past its deadline has answered Timeout and reads back: its write
            // must not happen later than that.
            jobs.retain(|j| !j.gone());
            if jobs.is_empty() {
                continue;
            }
            let mut c = match conn.take() {
                Some(c) => c,
                None => match self.pool.acquire().await {
                    Ok(c) => c,
                    Err(_) => {
                        // Nothing sent: each caller tries alone and gets its own error.
                        jobs.into_iter().for_each(|j| j.answer(Outcome::Alone));
                        continue;
                    }
                },
            };
            // Again: waiting for a connection may have outlasted some deadlines.
            jobs.retain(|j| !j.gone());
            let batch = run_batch(&mut c, &self.pool, &self.sql, &self.counts, jobs);
            // Past the deadline the jobs are dropped unanswered (their callers read back) and
            // the connection with them: its release ping tells the pool whether it lives.
            if let Ok(true) = tokio::time::timeout(self.opts.deadline, batch).await {
                conn = Some(c);
            }
        }
    }
}

/// Runs one batch on `conn`; false when the connection failed and must not be kept. With
/// records and transitions both in it, the records go on a second idle connection at the
/// same time when the pool has one: each statement waits for its own commit, so two at once
/// halve the batch's time.
async fn run_batch(
    conn: &mut PoolConnection<Postgres>,
    pool: &PgPool,
    sql: &Sql,
    counts: &Counts,
    jobs: Vec<Job>,
) -> bool {
    let (mut records, mut transitions) = (Vec::new(), Vec::new());
    for job in jobs {
        match job {
            Job::Record(meta, reply) => records.push((meta, reply)),
            Job::Transition(cas, reply) => transitions.push((cas, reply)),
        }
    }
    if !records.is_empty()
        && !transitions.is_empty()
        && let Some(mut other) = pool.try_acquire()
    {
        let (_, healthy) = tokio::join!(
            run_records(&mut other, sql, counts, records),
            run_transitions(conn, sql, counts, transitions)
        );
        // `other` goes back to the pool, which checks it on the way.
        return healthy;
    }
    if !run_records(conn, sql, counts, records).await {
        // The connection failed: the rest try alone, nothing of theirs was sent.
        transitions
            .into_iter()
            .for_each(|(_, reply)| drop(reply.send(Outcome::Alone)));
        return false;
    }
    run_transitions(conn, sql, counts, transitions).await
}

async fn run_records(
    conn: &mut PoolConnection<Postgres>,
    sql: &Sql,
    counts: &Counts,
    mut records: Vec<(Arc<OrderMetadata>, Reply)>,
) -> bool {
    match records.len() {
        0 => true,
        1 => record_one(conn, sql, records.pop()).await,
        n => {
            counts.count(n);
            record_many(conn, sql, records).await
        }
    }
}

async fn run_transitions(
    conn: &mut PoolConnection<Postgres>,
    sql: &Sql,
    counts: &Counts,
    mut transitions: Vec<(Arc<Cas>, Reply)>,
) -> bool {
    match transitions.len() {
        0 => true,
        1 => transition_one(conn, sql, transitions.pop()).await,
        n => {
            counts.count(n);
            transition_many(conn, sql, transitions).await
        }
    }
}

type Reply = oneshot::Sender<Outcome>;

/// Whether the connection is still usable after `e`: a server's error answer leaves it so.
fn still_usable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(_))
}

/// A batch of one: the single statement, its own error.
async fn record_one(
    conn: &mut PoolConnection<Postgres>,
    sql: &Sql,
    job: Option<(Arc<OrderMetadata>, Reply)>,
) -> bool {
    let Some((meta, reply)) = job else {
        return true;
    };
    let (outcome, healthy) = match row::encode(&meta) {
        // Checked by the caller before queueing; answered alone all the same.
        Err(_) => (Outcome::Alone, true),
        Ok(e) => match e
            .bind(sqlx::query(&sql.insert_one))
            .execute(&mut **conn)
            .await
        {
            Ok(_) => (Outcome::Inserted, true),
            Err(err) if is_unique_violation(&err) => (Outcome::Exists, true),
            Err(err) => {
                let healthy = still_usable(&err);
                (Outcome::Failed(err), healthy)
            }
        },
    };
    drop(reply.send(outcome));
    healthy
}

async fn record_many(
    conn: &mut PoolConnection<Postgres>,
    sql: &Sql,
    jobs: Vec<(Arc<OrderMetadata>, Reply)>,
) -> bool {
    let mut c = Columns::with_capacity(jobs.len());
    for (meta, _) in &jobs {
        match row::encode(meta) {
            Ok(e) => c.push(e),
            Err(_) => {
                // Checked by the callers before queueing; should one slip through, nobody
                // is failed for it.
                jobs.into_iter()
                    .for_each(|(_, reply)| drop(reply.send(Outcome::Alone)));
                return true;
            }
        }
    }
    let r = conn
        .fetch_all(c.bind(sqlx::query(&sql.record_batch)))
        .await
        .and_then(|rows| {
            rows.iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<HashSet<String>, _>>()
        });
    drop(c);
    match r {
        Ok(mut inserted) => {
            for (meta, reply) in jobs {
                // Of ids repeated in the batch, the first (inserted in batch order) wins.
                let outcome = if inserted.remove(&meta.order_id) {
                    Outcome::Inserted
                } else {
                    Outcome::Exists
                };
                drop(reply.send(outcome));
            }
            true
        }
        Err(e) => answer_failed(jobs, e),
    }
}

/// A failed batch statement: refused by the server, nothing was written and each caller
/// runs alone (one bad row must not fail the others); otherwise the outcome is unknown.
fn answer_failed<T>(jobs: Vec<(T, Reply)>, e: sqlx::Error) -> bool {
    if still_usable(&e) {
        jobs.into_iter()
            .for_each(|(_, reply)| drop(reply.send(Outcome::Alone)));
        return true;
    }
    let e = Arc::new(e);
    jobs.into_iter()
        .for_each(|(_, reply)| drop(reply.send(Outcome::Unknown(e.clone()))));
    false
}

async fn transition_one(
    conn: &mut PoolConnection<Postgres>,
    sql: &Sql,
    job: Option<(Arc<Cas>, Reply)>,
) -> bool {
    let Some((cas, reply)) = job else {
        return true;
    };
    let (outcome, healthy) = match conn.fetch_optional(cas.bind_single(sql)).await {
        Ok(Some(row)) => (Outcome::Won(row), true),
        Ok(None) => (Outcome::Lost, true),
        Err(err) => {
            let healthy = still_usable(&err);
            (Outcome::Failed(err), healthy)
        }
    };
    drop(reply.send(outcome));
    healthy
}

async fn transition_many(
    conn: &mut PoolConnection<Postgres>,
    sql: &Sql,
    jobs: Vec<(Arc<Cas>, Reply)>,
) -> bool {
    let mut c = CasColumns::default();
    for (seq, (cas, _)) in jobs.iter().enumerate() {
        // A batch never nears i32::MAX jobs (max_batch is a u16).
        c.push(seq as i32, cas);
    }
    let r = conn.fetch_all(c.bind(sql)).await;
    drop(c);
    let rows = match r {
        Ok(rows) => rows,
        Err(e) => return answer_failed(jobs, e),
    };
    let mut won: Vec<Option<PgRow>> = jobs.iter().map(|_| None).collect();
    let mut unmatched = None;
    for row in rows {
        // `v_seq` follows the record's columns.
        match row.try_get::<i32, _>(row::COLUMN_COUNT) {
            Ok(seq) if usize::try_from(seq).is_ok_and(|s| s < won.len()) => {
                won[seq as usize] = Some(row);
            }
            Ok(seq) => unmatched = Some(format!("batch row with v_seq {seq}")),
            Err(e) => unmatched = Some(format!("batch row without v_seq: {e}")),
        }
    }
    if let Some(why) = unmatched {
        // Cannot happen with our own statement; should it, a job without its row may have
        // been applied all the same: those read back rather than retry.
        let e = Arc::new(sqlx::Error::Protocol(why));
        for ((_, reply), row) in jobs.into_iter().zip(won) {
            let outcome = row.map_or_else(|| Outcome::Unknown(e.clone()), Outcome::Won);
            drop(reply.send(outcome));
        }
        return true;
    }
    for ((_, reply), row) in jobs.into_iter().zip(won) {
        drop(reply.send(row.map_or(Outcome::Lost, Outcome::Won)));
    }
    true
}
