//! One group commit: the writes of several calls in one `BEGIN IMMEDIATE` transaction, in as
//! few statements as the batch allows, each call answered for its own order.
//!
//! All calls of a batch are concurrent (none has been answered), so any order among them is
//! one they could have run in: records first, then the compare-and-sets in rounds of one call
//! per order, in the order they were queued.
//!
//! A statement that fails for one of its rows must not fail the others: rows are checked and
//! encoded before the statement is built, stored rows that cannot be updated are excluded by
//! the statement's conditions (as the single statements exclude them), and a statement that
//! still fails with an error SQLite confines to the statement ([`statement_only`]) is run
//! again row by row, each row's error its own call's. Any other error (busy, I/O, disk full)
//! fails the whole transaction, nothing written, and every call of the batch with it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ordermeta_core::{
    LeaseCondition, OrderStatus, StoreError, TransitionRequest, UpdateRequest, to_micros,
    truncate_micros,
};
use sqlx::Row as _;
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;

use super::{Answer, Done, Op};
use crate::error::{SqliteError, backend, insert_error, statement_only};
use crate::row;
use crate::sql::{
    CAS_PARAMS, RECORD_PARAMS, cas_rows, distinct, insert_rows, rows_for, select_claims,
    status_mask,
};
use crate::write::{CAS_ATTEMPTS, Claim, Writes, kept_losing, lost_transition, lost_update};

/// Where each call's answer is kept while the batch runs: `None` until decided.
type Answers = Vec<Option<Answer>>;

impl Writes {
    /// Writes `ops` (two or more calls) in one transaction, the write lock held by the caller;
    /// one answer per call, in order.
    pub(super) async fn group_held(&self, ops: &[Op]) -> Vec<Answer> {
        let mut answers: Answers = ops.iter().map(|_| None).collect();
        let outcome = async {
            // IMMEDIATE: the write lock is taken (or waited for) at BEGIN, so no statement
            // inside meets SQLITE_BUSY half-way.
            let mut tx = self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(|e| (e, false))?;
            records(&mut tx, ops, &mut answers)
                .await
                .map_err(|e| (e, false))?;
            compare_and_sets(&mut tx, ops, &mut answers)
                .await
                .map_err(|e| (e, false))?;
            tx.commit().await.map_err(|e| (e, true))
        }
        .await;
        match outcome {
            Ok(()) => answers
                .into_iter()
                .map(|a| a.unwrap_or_else(|| Err(StoreError::backend("group commit: no answer"))))
                .collect(),
            // Before COMMIT the transaction is rolled back (dropped): no call's write happened,
            // and answers decided inside it (a duplicate of an earlier row of the batch) no
            // longer hold. A failed COMMIT leaves the outcome unknown: the store reads back.
            Err((e, at_commit)) => {
                let source = Arc::new(e);
                ops.iter()
                    .map(|_| {
                        Err(SqliteError::GroupCommit {
                            source: source.clone(),
                            at_commit,
                        }
                        .into())
                    })
                    .collect()
            }
        }
    }
}

/// The records of the batch: one multi-row INSERT that skips taken ids. Of two records of one
/// id, the first is written and the second is `AlreadyExists`, as one after the other.
async fn records(
    conn: &mut SqliteConnection,
    ops: &[Op],
    answers: &mut Answers,
) -> Result<(), sqlx::Error> {
    let mut ids = HashSet::new();
    let mut rows = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let Op::Record(m) = op else { continue };
        match row::db_version(m) {
            Err(e) => answers[i] = Some(Err(e)),
            Ok(_) if !ids.insert(m.order_id.as_str()) => {
                answers[i] = Some(Err(StoreError::AlreadyExists {
                    order_id: m.order_id.clone(),
                }));
            }
            Ok(version) => rows.push((i, version)),
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    match insert(conn, ops, &rows).await {
        Ok(inserted) => settle_records(ops, &rows, &inserted, answers),
        Err(e) if statement_only(&e) => {
            for row in rows {
                match insert(conn, ops, &[row]).await {
                    Ok(inserted) => settle_records(ops, &[row], &inserted, answers),
                    Err(e) if statement_only(&e) => {
                        answers[row.0] = Some(Err(insert_error(ops[row.0].order_id(), e)));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// One INSERT of the records at `rows` (index in `ops`, checked version); the ids it wrote.
async fn insert(
    conn: &mut SqliteConnection,
    ops: &[Op],
    rows: &[(usize, i64)],
) -> Result<HashSet<String>, sqlx::Error> {
    let size = rows_for(rows.len());
    let sql = insert_rows(size);
    let mut q = sqlx::query(&sql);
    for &(i, version) in rows {
        if let Op::Record(m) = &ops[i] {
            q = row::bind_row(q, m, version);
        }
    }
    for _ in 0..(size - rows.len()) * RECORD_PARAMS {
        q = q.bind(None::<i64>);
    }
    let inserted = q.fetch_all(&mut *conn).await?;
    Ok(inserted.iter().map(row::order_id_lossy).collect())
}

fn settle_records(
    ops: &[Op],
    rows: &[(usize, i64)],
    inserted: &HashSet<String>,
    answers: &mut Answers,
) {
    for &(i, _) in rows {
        let id = ops[i].order_id();
        answers[i] = Some(if inserted.contains(id) {
            Ok(Done::Recorded)
        } else {
            Err(StoreError::AlreadyExists {
                order_id: id.to_owned(),
            })
        });
    }
}

/// A transition or update of the batch, with what its row of [`cas_rows`] needs.
struct Cas<'a> {
    /// Index in the batch.
    i: usize,
    kind: CasKind<'a>,
    /// The request's instant, µs.
    at: i64,
    /// The statuses allowed, distinct (none: any, for an update).
    statuses: Vec<OrderStatus>,
}

enum CasKind<'a> {
    Transition {
        req: &'a TransitionRequest,
        entry: String,
    },
    Update {
        req: &'a UpdateRequest,
        /// `None`: a version beyond `i64::MAX`, on no row: only read, never sent.
        version: Option<Option<i64>>,
    },
}

impl<'a> Cas<'a> {
    fn new(i: usize, op: &'a Op) -> Option<Self> {
        let (kind, at, statuses) = match op {
            Op::Record(_) => return None,
            Op::Transition(req) => (
                CasKind::Transition {
                    req,
                    entry: req.history_entry().to_json(),
                },
                req.at,
                distinct(&req.from),
            ),
            Op::Update(req) => (
                CasKind::Update {
                    req,
                    version: req.version.map(|v| i64::try_from(v).ok()),
                },
                req.at,
                distinct(&req.statuses),
            ),
        };
        Some(Cas {
            i,
            kind,
            at: to_micros(truncate_micros(at)),
            statuses,
        })
    }

    fn order_id(&self) -> &'a str {
        match self.kind {
            CasKind::Transition { req, .. } => &req.order_id,
            CasKind::Update { req, .. } => &req.order_id,
        }
    }

    fn sendable(&self) -> bool {
        !matches!(
            self.kind,
            CasKind::Update {
                version: Some(None),
                ..
            }
        )
    }

    /// The error its lost compare-and-set answers, or `None` to send it again.
    fn lost(&self, claim: Option<Claim>) -> Option<StoreError> {
        match self.kind {
            CasKind::Transition { req, .. } => lost_transition(req, &self.statuses, self.at, claim),
            CasKind::Update { req, .. } => lost_update(req, &self.statuses, claim),
        }
    }
}

/// The transitions and updates of the batch, in rounds of one call per order: which row of an
/// `UPDATE … FROM` wins an order two rows name is not defined, so the second call on an order
/// waits for the next round and meets the first's outcome, as one after the other.
async fn compare_and_sets(
    conn: &mut SqliteConnection,
    ops: &[Op],
    answers: &mut Answers,
) -> Result<(), sqlx::Error> {
    let mut todo: Vec<usize> = (0..ops.len())
        .filter(|&i| !matches!(ops[i], Op::Record(_)))
        .collect();
    let mut attempts = vec![0; ops.len()];
    while !todo.is_empty() {
        let mut ids = HashSet::new();
        let mut later = Vec::new();
        let mut round = Vec::new();
        for i in todo {
            if !ids.insert(ops[i].order_id()) {
                later.push(i);
            } else if let Some(c) = Cas::new(i, &ops[i]) {
                round.push(c);
            }
        }
        let (send, unsent): (Vec<&Cas<'_>>, Vec<&Cas<'_>>) =
            round.iter().partition(|c| c.sendable());
        let mut lost = unsent;
        match update(conn, &send).await {
            Ok(rows) => lost.extend(settle_updates(&send, rows, answers)),
            Err(e) if statement_only(&e) => {
                for c in send {
                    match update(conn, &[c]).await {
                        Ok(rows) => lost.extend(settle_updates(&[c], rows, answers)),
                        Err(e) if statement_only(&e) => answers[c.i] = Some(Err(backend(e))),
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
        if !lost.is_empty() {
            let mut claims = read_claims(conn, &lost).await?;
            for c in lost {
                let claim = match claims.remove(c.order_id()) {
                    None => None,
                    Some(Ok(claim)) => Some(claim),
                    Some(Err(e)) => {
                        answers[c.i] = Some(Err(e.for_order(c.order_id())));
                        continue;
                    }
                };
                // Allowed after all: a change in between (not inside this transaction, which
                // holds the write lock; a row the statement's conditions and the check here
                // read differently). Tried again, bounded as the single statement is.
                match c.lost(claim) {
                    Some(e) => answers[c.i] = Some(Err(e)),
                    None if attempts[c.i] + 1 >= CAS_ATTEMPTS => {
                        answers[c.i] = Some(Err(kept_losing(c.order_id())));
                    }
                    None => {
                        attempts[c.i] += 1;
                        later.push(c.i);
                    }
                }
            }
        }
        later.sort_unstable();
        todo = later;
    }
    Ok(())
}

/// One compare-and-set statement for `cas` (one per order); the rows it changed.
async fn update(
    conn: &mut SqliteConnection,
    cas: &[&Cas<'_>],
) -> Result<Vec<SqliteRow>, sqlx::Error> {
    if cas.is_empty() {
        return Ok(Vec::new());
    }
    let size = rows_for(cas.len());
    let sql = cas_rows(size);
    let mut q = sqlx::query(&sql);
    for c in cas {
        let mask = (!c.statuses.is_empty()).then(|| status_mask(&c.statuses));
        q = match &c.kind {
            CasKind::Transition { req, entry } => {
                let lease = req.lease.as_ref();
                let cancelled_at = (req.to == OrderStatus::Cancelled).then_some(c.at);
                // A transition always names its statuses (none allows no order).
                let mask = mask.unwrap_or(0);
                q.bind(req.order_id.as_str())
                    .bind(req.to.as_str())
                    .bind(c.at)
                    .bind(cancelled_at)
                    .bind(req.tx_hash.as_deref())
                    .bind(req.cancel_tx_hash.as_deref())
                    .bind(lease.map(|l| l.token.as_str()))
                    .bind(lease.map(|l| to_micros(l.until)))
                    .bind(req.patch.indexer_id.as_deref())
                    .bind(req.patch.filled_quantity.as_deref())
                    .bind(req.patch.cancel_confirmed_at.map(to_micros))
                    .bind(entry.as_str())
                    .bind(mask)
                    .bind(matches!(req.require, Some(LeaseCondition::Expired)).then_some(c.at))
                    .bind(match &req.require {
                        Some(LeaseCondition::HeldBy(t)) => Some(t.as_str()),
                        _ => None,
                    })
                    .bind(None::<i64>)
            }
            CasKind::Update { req, version } => q
                .bind(req.order_id.as_str())
                .bind(None::<&str>)
                .bind(c.at)
                .bind(None::<i64>)
                .bind(None::<&str>)
                .bind(None::<&str>)
                .bind(None::<&str>)
                .bind(None::<i64>)
                .bind(req.patch.indexer_id.as_deref())
                .bind(req.patch.filled_quantity.as_deref())
                .bind(req.patch.cancel_confirmed_at.map(to_micros))
                .bind(None::<&str>)
                .bind(mask)
                .bind(None::<i64>)
                .bind(None::<&str>)
                .bind(version.flatten()),
        };
    }
    for _ in 0..(size - cas.len()) * CAS_PARAMS {
        q = q.bind(None::<i64>);
    }
    q.fetch_all(&mut *conn).await
}

/// Answers the calls whose order `rows` (changed by their statement) holds with the row, for
/// the caller to decode. Returns the calls whose compare-and-set did not hold.
fn settle_updates<'c, 'a>(
    cas: &[&'c Cas<'a>],
    rows: Vec<SqliteRow>,
    answers: &mut Answers,
) -> Vec<&'c Cas<'a>> {
    let mut by_id: HashMap<&str, &Cas<'_>> = cas.iter().map(|c| (c.order_id(), *c)).collect();
    for r in rows {
        let id = row::order_id_lossy(&r);
        if let Some(c) = by_id.remove(id.as_str()) {
            answers[c.i] = Some(Ok(Done::Row(r)));
        }
    }
    cas.iter()
        .filter(|c| by_id.contains_key(c.order_id()))
        .copied()
        .collect()
}

/// What the orders of `lost` hold ([`select_claims`]), by order id.
async fn read_claims(
    conn: &mut SqliteConnection,
    lost: &[&Cas<'_>],
) -> Result<HashMap<String, Result<Claim, StoreError>>, sqlx::Error> {
    let size = rows_for(lost.len());
    let sql = select_claims(size);
    let mut q = sqlx::query(&sql);
    for c in lost {
        q = q.bind(c.order_id());
    }
    for _ in lost.len()..size {
        q = q.bind(None::<&str>);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let id = r
                .try_get::<&[u8], _>(4)
                .map(row::lossy_id)
                .unwrap_or_default();
            (id, row::claim(r))
        })
        .collect())
}
