//! [`RedisStore`]: the [`MetadataStore`] impl. The scripted writes are in `ops/`; reads and
//! `list`'s merge of the index ZSETs are here. Every call runs under one [`Deadline`].

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ordermeta_core::{
    ClientIdKey, ExpireRequest, InvalidRecord, ListQuery, MetadataStore, OrderMetadata, Page,
    StoreError, TransitionRequest, UpdateRequest,
};
use redis::Value;

use crate::codec::{self, RawHash};
use crate::connection::RedisConnection;
use crate::error::{backend, index_read, not_a_hash, wrong_type};
use crate::keys::KeyLayout;
use crate::known::Snapshot;
use crate::ops::{self, BATCH, Deadline, Shared};

/// A [`MetadataStore`] on Redis or Redis Cluster, in one namespace. Cheap to clone.
///
/// Built with [`RedisStore::options`] ([`RedisStoreOptions`](crate::RedisStoreOptions)). See
/// the [crate docs](crate) for the key layout, retention and failure handling.
#[derive(Clone, Debug)]
pub struct RedisStore {
    inner: Arc<Shared>,
}

/// One source of ids for `list`: an index ZSET read in byte order, a batch at a time. Members
/// are read as bytes: one that is not UTF-8 is no order id, and is reported, not fatal.
struct Source {
    key: String,
    after: Option<Vec<u8>>,
    buf: VecDeque<Vec<u8>>,
    done: bool,
}

impl RedisStore {
    /// A store over `shared`, which holds a connection with the scripts loaded.
    pub(crate) fn new(shared: Shared) -> Self {
        RedisStore {
            inner: Arc::new(shared),
        }
    }

    /// The key layout of this store's namespace.
    pub fn keys(&self) -> &KeyLayout {
        &self.inner.keys
    }

    /// The deadline of a call of `operation` starting now.
    fn deadline(&self, operation: &'static str) -> Deadline {
        Deadline::start(operation, self.inner.operation_timeout)
    }

    /// The connection (a clone), for commands of your own.
    pub fn connection(&self) -> RedisConnection {
        self.inner.connection()
    }

    /// Deletes every record and index of this namespace (not atomic; for tests and teardown).
    /// Lookup indexes are found through the records: one left behind by records a retention
    /// TTL removed (or by records damaged by hand) stays.
    pub async fn delete_namespace(&self) -> Result<(), StoreError> {
        let ids_key = self.inner.keys.ids();
        loop {
            // Bytes: an index member that is not UTF-8 must not stop the teardown.
            let ids: Vec<Vec<u8>> = redis::cmd("ZRANGE")
                .arg(&ids_key)
                .arg(0)
                .arg(BATCH - 1)
                .query_async(&mut self.connection())
                .await
                .map_err(|e| index_read(&ids_key, e))?;
            if ids.is_empty() {
                break;
            }
            // The lookup indexes the records name (entries of records already gone, by a
            // retention TTL, leave theirs behind).
            let (utf8, _) = ops::split_members(ids.clone());
            let lookups: Vec<Vec<u8>> = ops::purge::lookup_fields(&self.inner, &utf8)
                .await?
                .iter()
                .flat_map(|f| f.keys(&self.inner.keys))
                .collect();
            let mut p = redis::pipe();
            p.cmd("DEL")
                .arg(
                    ids.iter()
                        .map(|i| self.inner.keys.order_bytes(i))
                        .chain(lookups)
                        .collect::<Vec<_>>(),
                )
                .ignore();
            p.cmd("ZREM").arg(&ids_key).arg(&ids).ignore();
            p.exec_async(&mut self.connection())
                .await
                .map_err(backend)?;
        }
        redis::cmd("DEL")
            .arg(&self.inner.index_keys)
            .exec_async(&mut self.connection())
            .await
            .map_err(backend)
    }

    /// `get` without its deadline.
    async fn get_unbounded(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
        match self.inner.read_order(order_id).await? {
            None => {
                self.inner.known.forget(order_id);
                Ok(None)
            }
            Some(h) => match Snapshot::read(order_id, &h) {
                Ok(s) => {
                    let meta = s.meta.clone();
                    self.inner.known.put(order_id, s);
                    Ok(Some(meta))
                }
                Err(e) => {
                    self.inner.known.forget(order_id);
                    Err(e)
                }
            },
        }
    }

    /// `list` without its deadline.
    async fn list_unbounded(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let limit = q.effective_limit() as usize;
        let keys: Vec<String> = if q.statuses.is_empty() {
            vec![self.inner.keys.ids()]
        } else {
            let mut s = q.statuses.clone();
            s.sort();
            s.dedup();
            s.into_iter().map(|s| self.inner.keys.status(s)).collect()
        };
        let mut sources: Vec<Source> = keys
            .into_iter()
            .map(|key| Source {
                key,
                after: q.after.clone().map(String::into_bytes),
                buf: VecDeque::new(),
                done: false,
            })
            .collect();
        let batch = (limit + 1).clamp(16, 512);
        let mut page = Page::default();
        let mut taken: Option<Vec<u8>> = None;
        let mut counted = 0usize;
        let mut last_counted: Option<String> = None;
        let mut more = false;
        // Members that are not UTF-8: reported, but never counted and never a cursor (no
        // `String` can name them). Held until an order id after them is counted, so that a
        // page reports them only when its cursor passes them.
        let mut junk: Vec<InvalidRecord> = Vec::new();
        'scan: loop {
            // The next candidates, merged across sources in byte order, without repeats.
            let mut cands: Vec<Vec<u8>> = Vec::new();
            while cands.len() < limit + 1 - counted {
                self.refill(&mut sources, batch).await?;
                let Some(i) = (0..sources.len())
                    .filter(|&i| !sources[i].buf.is_empty())
                    .min_by(|&a, &b| sources[a].buf[0].cmp(&sources[b].buf[0]))
                else {
                    break;
                };
                let Some(id) = sources[i].buf.pop_front() else {
                    break;
                };
                if taken.as_deref() != Some(id.as_slice()) {
                    taken = Some(id.clone());
                    cands.push(id);
                }
            }
            if cands.is_empty() {
                break;
            }
            let mut p = redis::pipe();
            p.ignore_errors();
            for id in &cands {
                p.hgetall(self.inner.keys.order_bytes(id));
            }
            let hashes: Vec<redis::RedisResult<RawHash>> =
                self.inner.read_pipe(&p).await.map_err(backend)?;
            for (member, h) in cands.into_iter().zip(hashes) {
                let id = match String::from_utf8(member) {
                    Ok(id) => id,
                    Err(e) => {
                        let member = e.into_bytes();
                        match h {
                            Ok(h) if !h.is_empty() && !codec::raw_matches(q, &h) => {}
                            Ok(_) => junk.push(not_an_id(&member)),
                            Err(e) if wrong_type(&e) => junk.push(not_an_id(&member)),
                            Err(e) => return Err(backend(e)),
                        }
                        continue;
                    }
                };
                let entry = match h {
                    // Gone since the index was read, or removed by the retention TTL.
                    Ok(h) if h.is_empty() => continue,
                    Ok(h) => match codec::decode(&id, &h) {
                        Ok(m) if q.matches(&m) => Ok(m),
                        Ok(_) => continue,
                        Err(e) if codec::raw_matches(q, &h) => Err(e),
                        Err(_) => continue,
                    },
                    Err(e) if wrong_type(&e) => Err(not_a_hash(&id, "value of another type")),
                    Err(e) => return Err(backend(e)),
                };
                if counted == limit {
                    more = true;
                    break 'scan;
                }
                page.invalid.append(&mut junk);
                match entry {
                    Ok(m) => page.items.push(m),
                    Err(e) => page.invalid.push(InvalidRecord {
                        order_id: id.clone(),
                        reason: e.to_string(),
                    }),
                }
                counted += 1;
                last_counted = Some(id);
            }
        }
        if !more {
            page.invalid.append(&mut junk);
        }
        page.next = if more { last_counted } else { None };
        Ok(page)
    }

    /// Refills the empty buffers of `list`'s sources, one pipelined round trip.
    async fn refill(&self, sources: &mut [Source], batch: usize) -> Result<(), StoreError> {
        let want: Vec<usize> = (0..sources.len())
            .filter(|&i| sources[i].buf.is_empty() && !sources[i].done)
            .collect();
        if want.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for &i in &want {
            let s = &sources[i];
            let min = match &s.after {
                Some(a) => {
                    let mut m = Vec::with_capacity(a.len() + 1);
                    m.push(b'(');
                    m.extend_from_slice(a);
                    m
                }
                None => b"-".to_vec(),
            };
            p.cmd("ZRANGEBYLEX")
                .arg(&s.key)
                .arg(min)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(batch);
        }
        // Each reply on its own: an index of the wrong type is named.
        p.ignore_errors();
        let got: Vec<redis::RedisResult<Vec<Vec<u8>>>> =
            self.inner.read_pipe(&p).await.map_err(backend)?;
        for (&i, ids) in want.iter().zip(got) {
            let s = &mut sources[i];
            let ids = ids.map_err(|e| index_read(&s.key, e))?;
            s.done = ids.len() < batch;
            if let Some(last) = ids.last() {
                s.after = Some(last.clone());
            }
            s.buf.extend(ids);
        }
        Ok(())
    }
}

#[async_trait]
impl MetadataStore for RedisStore {
    async fn record(&self, meta: &OrderMetadata) -> Result<(), StoreError> {
        let d = self.deadline("record");
        d.run(ops::record::run(
            &self.inner,
            std::slice::from_ref(meta),
            &d,
        ))
        .await
    }

    async fn record_many(&self, metas: &[OrderMetadata]) -> Result<(), StoreError> {
        let d = self.deadline("record_many");
        d.run(ops::record::run(&self.inner, metas, &d)).await
    }

    async fn get(&self, order_id: &str) -> Result<Option<OrderMetadata>, StoreError> {
        self.deadline("get").run(self.get_unbounded(order_id)).await
    }

    async fn transition(&self, req: &TransitionRequest) -> Result<OrderMetadata, StoreError> {
        let d = self.deadline("transition");
        d.run(ops::transition::run(&self.inner, req, &d)).await
    }

    async fn list(&self, q: &ListQuery) -> Result<Page, StoreError> {
        self.deadline("list").run(self.list_unbounded(q)).await
    }

    async fn expire(&self, req: &ExpireRequest) -> Result<u64, StoreError> {
        self.deadline("expire")
            .run(ops::expire::run(&self.inner, req))
            .await
    }

    async fn purge(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        self.deadline("purge")
            .run(ops::purge::run(&self.inner, older_than))
            .await
    }

    async fn update(&self, req: &UpdateRequest) -> Result<OrderMetadata, StoreError> {
        let d = self.deadline("update");
        d.run(ops::update::run(&self.inner, req, &d)).await
    }

    async fn find_by_client_id(
        &self,
        key: &ClientIdKey,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        let index = self.inner.keys.client_id(key);
        self.deadline("find_by_client_id")
            .run(ops::lookup::newest(&self.inner, &index, |m| key.matches(m)))
            .await
    }

    async fn find_by_label(&self, label: &str) -> Result<Option<OrderMetadata>, StoreError> {
        // An invalid label is on no record: nothing to look up (and no key to build from it).
        if ordermeta_core::check_label(label).is_err() {
            return Ok(None);
        }
        let index = self.inner.keys.label(label);
        self.deadline("find_by_label")
            .run(ops::lookup::newest(&self.inner, &index, |m| {
                m.label.as_deref() == Some(label)
            }))
            .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        let ping = async {
            self.inner
                .read::<Value>(&redis::cmd("PING"))
                .await
                .map(drop)
                .map_err(backend)
        };
        self.deadline("health").run(ping).await
    }

    /// `redis, namespace <ns>` or `redis cluster, namespace <ns>`.
    fn description(&self) -> Option<String> {
        let kind = match self.inner.conn {
            RedisConnection::Single(_) => "redis",
            RedisConnection::Cluster(_) => "redis cluster",
        };
        Some(format!("{kind}, namespace {}", self.inner.keys.namespace()))
    }
}

/// How `list` reports an index member that is not UTF-8: no order id, so never a cursor; the
/// reason shows its bytes.
fn not_an_id(member: &[u8]) -> InvalidRecord {
    InvalidRecord {
        order_id: String::from_utf8_lossy(member).into_owned(),
        reason: format!(
            "the index holds {:?}, which is not UTF-8 and so no order id; remove it with ZREM",
            member.escape_ascii().to_string()
        ),
    }
}
