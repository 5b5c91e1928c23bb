//! [`MemoryStore`]: the in-process reference implementation of [`MetadataStore`].

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::model::OrderMetadata;
use crate::status::OrderStatus;
use crate::store::{ExpireRequest, ListQuery, MetadataStore, Page, TransitionRequest};
use crate::update::{ClientIdKey, UpdateRequest, is_newer};

/// A complete, concurrency-safe store in memory.
///
/// It is the model the [conformance suite](crate::conformance) compares every backend with,
/// and a fine store for tests and for bots that need no durability. Nothing survives the
/// process. Lookups by client id and label scan every record (fine for a model and for
/// the small stores of tests; the persistent stores use indexes).
#[derive(Debug, Default)]
pub struct MemoryStore {
    // One lock over the whole map: every operation is then trivially atomic, which is what a
    // reference model must be. BTreeMap keeps byte order for keyset paging.
    orders: Mutex<BTreeMap<String, OrderMetadata>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, OrderMetadata>> {
        // A panic while holding the lock cannot leave a half-applied change: every mutation
        // below is computed first and inserted last, so the data stays usable.
        self.orders.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl MetadataStore for MemoryStore {
    async fn record(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        self.record_many(std::slice::from_ref(meta)).await
    }

    async fn record_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError> {
        for m in metas {
            m.validate()?;
        }
        let mut orders = self.lock();
        let mut seen = std::collections::HashSet::new();
        for m in metas {
            if orders.contains_key(&m.order_id) || !seen.insert(m.order_id.as_str()) {
                return Err(StoreError::AlreadyExists {
                    order_id: m.order_id.clone(),
                });
            }
        }
        for m in metas {
            orders.insert(m.order_id.clone(), m.clone());
        }
        Ok(())
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
        Ok(self.lock().get(order_id).cloned())
    }

    async fn transition(&self, req: &TransitionRequest) -> Result<OrderMetadata, StoreError> {
        req.check()?;
        let mut orders = self.lock();
        let meta = orders
            .get_mut(&req.order_id)
            .ok_or_else(|| StoreError::NotFound {
                order_id: req.order_id.clone(),
            })?;
        if !req.allows(meta) {
            return Err(StoreError::conflict(&req.order_id, meta.status, &req.from));
        }
        req.apply(meta);
        Ok(meta.clone())
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.effective_limit() as usize;
        let orders = self.lock();
        let range = match &query.after {
            Some(after) => orders.range::<String, _>((
                std::ops::Bound::Excluded(after.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => orders.range::<String, _>(..),
        };
        let mut matching = range.map(|(_, m)| m).filter(|m| query.matches(m));
        let items: Vec<OrderMetadata> = matching.by_ref().take(limit).cloned().collect();
        let next = match (matching.next(), items.last()) {
            (Some(_), Some(last)) => Some(last.order_id.clone()),
            _ => None,
        };
        Ok(Page {
            items,
            invalid: Vec::new(),
            next,
        })
    }

    async fn expire(&self, req: &ExpireRequest) -> Result<u64, StoreError> {
        let mut orders = self.lock();
        let mut n = 0;
        for meta in orders.values_mut() {
            if OrderStatus::OPEN.contains(&meta.status)
                && meta.good_til.is_expired(req.height, req.block_time)
            {
                req.transition_for(&meta.order_id, meta.status).apply(meta);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn purge(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut orders = self.lock();
        let before = orders.len();
        orders.retain(|_, m| !(m.status.is_terminal() && m.updated_at < older_than));
        Ok((before - orders.len()) as u64)
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn update(&self, req: &UpdateRequest) -> Result<OrderMetadata, StoreError> {
        req.check()?;
        let mut orders = self.lock();
        let meta = orders
            .get_mut(&req.order_id)
            .ok_or_else(|| StoreError::NotFound {
                order_id: req.order_id.clone(),
            })?;
        if !req.allows(meta) {
            return Err(req.conflict(meta));
        }
        req.apply(meta);
        Ok(meta.clone())
    }

    async fn find_by_client_id(
        &self,
        key: &ClientIdKey,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        Ok(newest(self.lock().values().filter(|m| key.matches(m))))
    }

    async fn find_by_label(&self, label: &str) -> Result<Option<OrderMetadata>, StoreError> {
        Ok(newest(
            self.lock()
                .values()
                .filter(|m| m.label.as_deref() == Some(label)),
        ))
    }

    fn description(&self) -> Option<String> {
        Some("memory (this process only: nothing survives it)".to_owned())
    }
}

fn newest<'a>(records: impl Iterator<Item = &'a OrderMetadata>) -> Option<OrderMetadata> {
    records
        .fold(None::<&OrderMetadata>, |best, m| match best {
            Some(b) if !is_newer(m, b) => Some(b),
            _ => Some(m),
        })
        .cloned()
}
