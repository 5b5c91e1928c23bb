//! The write side of a store: one connection at a time behind the store's write lock, and the
//! single statements of `record`, `record_many`, `transition` and `update` — what a call runs
//! with group commit off, and what a group commit of one call runs (see [`crate::writer`]).

use std::sync::Arc;

use ordermeta_core::{
    LeaseCondition, OrderMetadata, OrderStatus, StoreError, TransitionRequest, UpdateRequest,
    to_micros, truncate_micros,
};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use tokio::sync::Mutex;

use crate::error::{backend, insert_error};
use crate::row;
use crate::sql::{
    INSERT, SELECT_CLAIM, TRANSITION, UPDATE, condition_holds, condition_index, distinct,
};

/// What a lost compare-and-set reads of the order ([`row::claim`]): status, lease token,
/// lease end (µs), version.
pub(crate) type Claim = (String, Option<String>, Option<i64>, i64);

/// How often a compare-and-set is sent again when the order, read after it lost, turns out
/// to allow it (another process wrote in between): each retry needs another writer.
pub(crate) const CAS_ATTEMPTS: usize = 8;

/// The writer pool and the store's write lock. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Writes {
    pub(crate) pool: SqlitePool,
    /// Held by every write: one writer per process at a time, served in order.
    pub(crate) lock: Arc<Mutex<()>>,
}

impl Writes {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Writes {
            pool,
            lock: Arc::default(),
        }
    }

    pub(crate) async fn insert(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        let _writing = self.lock.lock().await;
        self.insert_held(meta).await
    }

    /// [`insert`](Self::insert), the write lock held by the caller.
    pub(crate) async fn insert_held(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        let q = row::bind_record(sqlx::query(INSERT), meta)?;
        q.execute(&self.pool)
            .await
            .map_err(|e| insert_error(&meta.order_id, e))?;
        Ok(())
    }

    pub(crate) async fn insert_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError> {
        let queries = metas
            .iter()
            .map(|m| row::bind_record(sqlx::query(INSERT), m))
            .collect::<Result<Vec<_>, _>>()?;
        // IMMEDIATE: the write lock is taken (or waited for) at BEGIN, so no statement inside
        // can meet SQLITE_BUSY half-way; an error drops the transaction, which rolls back.
        let _writing = self.lock.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        for (q, m) in queries.into_iter().zip(metas) {
            q.execute(&mut *tx)
                .await
                .map_err(|e| insert_error(&m.order_id, e))?;
        }
        tx.commit().await.map_err(backend)
    }

    /// `transition`'s compare-and-set: one `UPDATE … RETURNING`; when it matches no row, the
    /// status and lease it lost to say `NotFound`, `StatusConflict` or a corrupt row.
    pub(crate) async fn compare_and_set(
        &self,
        req: &TransitionRequest,
    ) -> Result<OrderMetadata, StoreError> {
        let _writing = self.lock.lock().await;
        self.compare_and_set_held(req).await
    }

    /// [`compare_and_set`](Self::compare_and_set), the write lock held by the caller.
    pub(crate) async fn compare_and_set_held(
        &self,
        req: &TransitionRequest,
    ) -> Result<OrderMetadata, StoreError> {
        let from = distinct(&req.from);
        let at = to_micros(truncate_micros(req.at));
        let entry = req.history_entry().to_json();
        let cancelled_at = (req.to == OrderStatus::Cancelled).then_some(at);
        // The lease the record holds afterwards: the request's when entering cancelling
        // (`check` allows a lease only then), none otherwise.
        let lease = req.lease.as_ref();
        let condition = req.require.as_ref();
        let sql = &TRANSITION[condition_index(condition)][from.len()];
        // A lost compare-and-set re-reads the status and lease; if the order moved back to
        // where the request allows it (another process, in between), it is simply tried again.
        for _ in 0..CAS_ATTEMPTS {
            let mut q = sqlx::query(sql)
                .bind(req.to.as_str())
                .bind(at)
                .bind(cancelled_at)
                .bind(req.tx_hash.as_deref())
                .bind(req.cancel_tx_hash.as_deref())
                .bind(lease.map(|l| l.token.as_str()))
                .bind(lease.map(|l| to_micros(l.until)))
                .bind(req.patch.indexer_id.as_deref())
                .bind(req.patch.filled_quantity.as_deref())
                .bind(req.patch.cancel_confirmed_at.map(to_micros))
                .bind(entry.as_str())
                .bind(req.order_id.as_str());
            for s in &from {
                q = q.bind(s.as_str());
            }
            q = match condition {
                None => q,
                Some(LeaseCondition::Expired) => q.bind(at),
                Some(LeaseCondition::HeldBy(t)) => q.bind(t.as_str()),
            };
            let updated: Option<SqliteRow> = q.fetch_optional(&self.pool).await.map_err(backend)?;
            if let Some(row) = updated {
                return row::decode(&row).map_err(|e| e.for_order(&req.order_id));
            }
            let claim = self.claim(&req.order_id).await?;
            if let Some(e) = lost_transition(req, &from, at, claim) {
                return Err(e);
            }
        }
        Err(kept_losing(&req.order_id))
    }

    /// `update`'s compare-and-set: one `UPDATE … RETURNING`; when it matches no row, the
    /// status and version it lost to say `NotFound`, `StatusConflict` or a corrupt row.
    pub(crate) async fn update_cas(
        &self,
        req: &UpdateRequest,
    ) -> Result<OrderMetadata, StoreError> {
        let _writing = self.lock.lock().await;
        self.update_cas_held(req).await
    }

    /// [`update_cas`](Self::update_cas), the write lock held by the caller.
    pub(crate) async fn update_cas_held(
        &self,
        req: &UpdateRequest,
    ) -> Result<OrderMetadata, StoreError> {
        let id = req.order_id.as_str();
        let statuses = distinct(&req.statuses);
        // A version beyond i64::MAX is on no row: such a request is only read, never sent.
        let version = req.version.map(|v| i64::try_from(v).ok());
        let sendable = !matches!(version, Some(None));
        let sql = &UPDATE[usize::from(version.is_some())][statuses.len()];
        let at = to_micros(truncate_micros(req.at));
        let patch = &req.patch;
        for _ in 0..CAS_ATTEMPTS {
            if sendable {
                let mut q = sqlx::query(sql)
                    .bind(at)
                    .bind(patch.indexer_id.as_deref())
                    .bind(patch.filled_quantity.as_deref())
                    .bind(patch.cancel_confirmed_at.map(to_micros))
                    .bind(id);
                for s in &statuses {
                    q = q.bind(s.as_str());
                }
                if let Some(Some(v)) = version {
                    q = q.bind(v);
                }
                let updated: Option<SqliteRow> =
                    q.fetch_optional(&self.pool).await.map_err(backend)?;
                if let Some(row) = updated {
                    return row::decode(&row).map_err(|e| e.for_order(id));
                }
            }
            let claim = self.claim(id).await?;
            if let Some(e) = lost_update(req, &statuses, claim) {
                return Err(e);
            }
        }
        Err(kept_losing(id))
    }

    /// What a lost compare-and-set reads of `order_id` ([`SELECT_CLAIM`]).
    async fn claim(&self, order_id: &str) -> Result<Option<Claim>, StoreError> {
        let claim: Option<SqliteRow> = sqlx::query(SELECT_CLAIM)
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        claim
            .as_ref()
            .map(row::claim)
            .transpose()
            .map_err(|e| e.for_order(order_id))
    }
}

/// The answer of a compare-and-set that kept finding its order allowed again.
pub(crate) fn kept_losing(order_id: &str) -> StoreError {
    StoreError::backend(format!(
        "order {order_id}: compare-and-set kept losing to concurrent writers"
    ))
}

/// Why a transition's compare-and-set (from the distinct statuses `from`, at `at` µs) changed
/// nothing, from what the order holds (`claim`, `None` for no such order): the error to
/// answer, or `None` when the order allows the request after all (changed in between: send it
/// again).
pub(crate) fn lost_transition(
    req: &TransitionRequest,
    from: &[OrderStatus],
    at: i64,
    claim: Option<Claim>,
) -> Option<StoreError> {
    let Some((status, token, until, version)) = claim else {
        return Some(StoreError::NotFound {
            order_id: req.order_id.clone(),
        });
    };
    let current: OrderStatus = match status.parse() {
        Ok(s) => s,
        Err(e) => {
            return Some(StoreError::invalid(
                Some(&req.order_id),
                format!("column status: {e}"),
            ));
        }
    };
    // A lease where none can be (half of one, or on an order not being cancelled) is a corrupt
    // row, not a conflict: its own claim says so instead of looking live.
    if token.is_some() != until.is_some() || (token.is_some() && current != OrderStatus::Cancelling)
    {
        return Some(StoreError::invalid(
            Some(&req.order_id),
            format!("lease columns: a lease that cannot be on a {current} order"),
        ));
    }
    let condition = req.require.as_ref();
    if !from.contains(&current) || !condition_holds(condition, token.as_deref(), until, at) {
        return Some(StoreError::conflict(&req.order_id, current, &req.from));
    }
    (version == i64::MAX).then(|| {
        StoreError::invalid(
            Some(&req.order_id),
            "column version: at its maximum, the record can no longer change",
        )
    })
}

/// Why an update's compare-and-set (on the distinct `statuses`, none meaning any) changed
/// nothing, from what the order holds: the error to answer, or `None` to send it again (see
/// [`lost_transition`]).
pub(crate) fn lost_update(
    req: &UpdateRequest,
    statuses: &[OrderStatus],
    claim: Option<Claim>,
) -> Option<StoreError> {
    let id = req.order_id.as_str();
    let Some((status, _, _, stored_version)) = claim else {
        return Some(StoreError::NotFound {
            order_id: id.to_owned(),
        });
    };
    let current: OrderStatus = match status.parse() {
        Ok(s) => s,
        Err(e) => return Some(StoreError::invalid(Some(id), format!("column status: {e}"))),
    };
    let Ok(stored_version) = u64::try_from(stored_version) else {
        return Some(StoreError::invalid(
            Some(id),
            format!("column version: {stored_version} is negative"),
        ));
    };
    let allowed = (statuses.is_empty() || statuses.contains(&current))
        && req.version.is_none_or(|v| v == stored_version);
    if !allowed {
        let expected: &[OrderStatus] = if statuses.is_empty() {
            &OrderStatus::ALL
        } else {
            &req.statuses
        };
        return Some(StoreError::conflict(id, current, expected));
    }
    (stored_version >= i64::MAX as u64).then(|| {
        StoreError::invalid(
            Some(id),
            "column version: at its maximum, the record can no longer change",
        )
    })
}
