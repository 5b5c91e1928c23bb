//! Remembered records: what this store last wrote or read for an order, so that a transition
//! or an update can be one script call instead of a read and a write.
//!
//! A [`Snapshot`] holds the decoded record *and* the raw bytes of every field the HASH held
//! (including `op`) and its field count. `cas.lua` writes only if the HASH still holds exactly
//! those bytes (every model field, `op`, and the field count), so a remembered record that went
//! stale — another process wrote, an operator edited a field by hand, a TTL removed it — is
//! never written over: the script answers `changed`, and the caller reads the order and
//! judges it again, as without a cache. A stale entry costs one extra round trip, never a
//! wrong write or a wrong answer (an answer other than success is only ever given from a
//! record just read).
//!
//! [`KnownRecords`] bounds the entries: the oldest remembered order is forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use ordermeta_core::OrderMetadata;

use crate::codec::{self, FIELDS, OP_FIELD, RawHash};

/// Index of `op` in [`FIELDS`].
const OP_INDEX: usize = FIELDS.len() - 1;

/// The raw value of each of [`FIELDS`] (in that order), `None` when absent. Shared: the
/// snapshot after a write shares the values it did not change with the one before.
pub(crate) type RawFields = [Option<Arc<[u8]>>; FIELDS.len()];

/// One order's HASH as this store last saw it.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The record, decoded strictly from `fields`.
    pub(crate) meta: OrderMetadata,
    /// The stored bytes of every model field and `op`.
    pub(crate) fields: RawFields,
    /// How many fields the HASH held (model fields, `op`, and any field of another tool).
    pub(crate) len: usize,
    /// Whether the stored [`FIXED_FIELDS`](codec::FIXED_FIELDS) are exactly the encoding of
    /// `meta`'s, so that a change keeping those values need not encode them again.
    fixed_canonical: bool,
}

/// The position of `field` in [`FIELDS`].
pub(crate) fn field_index(field: &str) -> usize {
    FIELDS
        .iter()
        .position(|f| *f == field)
        .unwrap_or_else(|| unreachable!("{field} is one of FIELDS"))
}

impl Snapshot {
    /// The snapshot of a HASH just read; `InvalidMetadata` when it does not decode.
    pub(crate) fn read(order_id: &str, raw: &RawHash) -> Result<Self, ordermeta_core::StoreError> {
        let meta = codec::decode(order_id, raw)?;
        let mut fixed = Vec::with_capacity(codec::FIXED_FIELDS.len());
        codec::encode_fixed(&meta, &mut fixed);
        let present = codec::FIXED_FIELDS
            .iter()
            .filter(|f| raw.contains_key(f.as_bytes()))
            .count();
        let fixed_canonical = present == fixed.len()
            && fixed
                .iter()
                .all(|(f, v)| raw.get(f.as_bytes()).map(Vec::as_slice) == Some(v.as_bytes()));
        Ok(Snapshot {
            meta,
            fields: FIELDS.map(|f| raw.get(f.as_bytes()).map(|v| Arc::from(v.as_slice()))),
            len: raw.len(),
            fixed_canonical,
        })
    }

    /// The HASH `record` wrote for `meta` with `token` (on a key that did not exist).
    #[cfg(test)]
    pub(crate) fn recorded(meta: &OrderMetadata, token: &str) -> Self {
        Self::encoded(meta.clone(), codec::encode(meta), token)
    }

    /// The HASH `record` wrote for `meta`, whose fields are `fields` (its
    /// [`encode`](codec::encode)), with `token`.
    pub(crate) fn encoded(
        meta: OrderMetadata,
        fields: Vec<(&'static str, String)>,
        token: &str,
    ) -> Self {
        let mut raw: RawFields = Default::default();
        let len = fields.len() + 1;
        for (f, v) in fields {
            raw[field_index(f)] = Some(Arc::from(v.as_bytes()));
        }
        raw[OP_INDEX] = Some(Arc::from(token.as_bytes()));
        Snapshot {
            meta,
            fields: raw,
            len,
            fixed_canonical: true,
        }
    }

    /// The HASH after a compare-and-set over this one wrote `set` (with `op` = `token`) and
    /// deleted `delete`: the record `next`.
    pub(crate) fn after(
        &self,
        next: OrderMetadata,
        token: &str,
        set: &[(&'static str, String)],
        delete: &[&'static str],
    ) -> Self {
        let mut fields = self.fields.clone();
        let mut len = self.len;
        let mut put = |i: usize, v: &[u8]| {
            if fields[i].replace(Arc::from(v)).is_none() {
                len += 1;
            }
        };
        put(OP_INDEX, token.as_bytes());
        for (f, v) in set {
            put(field_index(f), v.as_bytes());
        }
        for f in delete {
            if fields[field_index(f)].take().is_some() {
                len -= 1;
            }
        }
        // `changes` made every model field the encoding of `next`.
        Snapshot {
            meta: next,
            fields,
            len,
            fixed_canonical: true,
        }
    }

    /// Whether the HASH holds no field outside the model and `op` (every HASH this store
    /// writes). Only such a HASH is remembered: `cas.lua` names the fields it compares and
    /// counts the rest, which is exact when there is no other field to count.
    pub(crate) fn plain(&self) -> bool {
        self.len == self.fields.iter().flatten().count()
    }

    /// The `op` token the HASH held (empty when none).
    pub(crate) fn op(&self) -> &[u8] {
        self.fields[OP_INDEX].as_deref().unwrap_or_default()
    }

    /// What `cas.lua` compares the HASH's model fields with (`op` is compared on its own):
    /// the names of the present model fields (in [`FIELDS`] order), a separator byte that
    /// occurs in no present value, and the present values (in that order) joined by it. With
    /// the field count this is exact: the join splits back into one sequence of values only,
    /// because no value holds the separator.
    pub(crate) fn expected(&self) -> (Vec<&'static str>, u8, Vec<u8>) {
        let present = || {
            FIELDS[..OP_INDEX]
                .iter()
                .zip(&self.fields[..OP_INDEX])
                .filter_map(|(f, v)| Some((*f, &**v.as_ref()?)))
        };
        // Every model field decoded as UTF-8 text, which never holds 0xFF; a control byte
        // none of them holds is almost always 0.
        let sep = (0u8..0xFF)
            .find(|b| present().all(|(_, v)| !v.contains(b)))
            .unwrap_or(0xFF);
        let mut joined = Vec::with_capacity(present().map(|(_, v)| v.len() + 1).sum());
        let mut names = Vec::with_capacity(OP_INDEX);
        for (i, (f, v)) in present().enumerate() {
            if i > 0 {
                joined.push(sep);
            }
            joined.extend_from_slice(v);
            names.push(f);
        }
        (names, sep, joined)
    }

    /// What turns this HASH into the encoding of `next`: the fields to set (those whose stored
    /// bytes differ) and the model fields to delete (stored, but absent from `next`). `op`
    /// and fields outside the model are left alone. Afterwards every model field is the
    /// encoding of `next`.
    pub(crate) fn changes(
        &self,
        next: &OrderMetadata,
    ) -> (Vec<(&'static str, String)>, Vec<&'static str>) {
        let mut wanted = [false; FIELDS.len()];
        // The fixed fields are what they should be already: encode only the others.
        let encoded = if self.fixed_canonical && codec::same_fixed(&self.meta, next) {
            for f in codec::FIXED_FIELDS {
                wanted[field_index(f)] = true;
            }
            let mut e = Vec::with_capacity(FIELDS.len() - codec::FIXED_FIELDS.len());
            codec::encode_changeable(next, &mut e);
            e
        } else {
            codec::encode(next)
        };
        let mut set = Vec::new();
        for (f, v) in encoded {
            let i = field_index(f);
            wanted[i] = true;
            if self.fields[i].as_deref() != Some(v.as_bytes()) {
                set.push((f, v));
            }
        }
        let delete = FIELDS
            .iter()
            .enumerate()
            .filter(|&(i, f)| *f != OP_FIELD && !wanted[i] && self.fields[i].is_some())
            .map(|(_, f)| *f)
            .collect();
        (set, delete)
    }
}

/// A bounded map from order id to the [`Snapshot`] this store last saw of it; 0 entries turns
/// it off. The oldest entry (by when it was last stored) goes first.
#[derive(Debug)]
pub(crate) struct KnownRecords {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Order id to (generation, snapshot).
    map: HashMap<String, (u64, Arc<Snapshot>)>,
    /// Order ids in the order they were stored, with the generation stored then: an id whose
    /// generation has moved on was stored again later, so this entry is no longer its place.
    order: VecDeque<(String, u64)>,
    next: u64,
}

impl KnownRecords {
    /// At most `capacity` orders (0: none, nothing is remembered).
    pub(crate) fn new(capacity: usize) -> Self {
        KnownRecords {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a map that is still consistent enough: every
        // entry is only a hint checked by the server.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many orders it holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The remembered snapshot of `order_id`.
    pub(crate) fn get(&self, order_id: &str) -> Option<Arc<Snapshot>> {
        if self.capacity == 0 {
            return None;
        }
        self.lock().map.get(order_id).map(|(_, s)| s.clone())
    }

    /// Remembers `snap` for `order_id`, forgetting the oldest entries beyond the capacity (a
    /// HASH holding fields of another tool is forgotten instead, see [`Snapshot::plain`]).
    pub(crate) fn put(&self, order_id: &str, snap: Snapshot) {
        if self.capacity == 0 {
            return;
        }
        if !snap.plain() {
            self.forget(order_id);
            return;
        }
        let mut g = self.lock();
        let gen_ = g.next;
        g.next += 1;
        g.map.insert(order_id.to_owned(), (gen_, Arc::new(snap)));
        g.order.push_back((order_id.to_owned(), gen_));
        while g.map.len() > self.capacity {
            let Some((id, gen_)) = g.order.pop_front() else {
                break;
            };
            if g.map.get(&id).is_some_and(|(g2, _)| *g2 == gen_) {
                g.map.remove(&id);
            }
        }
        // Orders stored again and again leave dead places behind: drop them now and then.
        if g.order.len() > 2 * self.capacity + 64 {
            let Inner { map, order, .. } = &mut *g;
            order.retain(|(id, gen_)| map.get(id).is_some_and(|(g2, _)| g2 == gen_));
        }
    }

    /// Forgets `order_id` (its record is gone, or no longer what was remembered).
    pub(crate) fn forget(&self, order_id: &str) {
        if self.capacity == 0 {
            return;
        }
        self.lock().map.remove(order_id);
    }

    /// How many orders are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordermeta_core::conformance::short_term;
    use ordermeta_core::{OrderStatus, TransitionRequest};

    fn snap(id: &str) -> Snapshot {
        Snapshot::recorded(&short_term(id, OrderStatus::Active, 5), "t")
    }

    #[test]
    fn holds_at_most_its_capacity_and_forgets_the_oldest() {
        let k = KnownRecords::new(3);
        for i in 0..10 {
            k.put(&format!("o{i}"), snap(&format!("o{i}")));
            assert!(k.len() <= 3);
        }
        assert_eq!(k.len(), 3);
        assert!(k.get("o6").is_none());
        assert!(k.get("o9").is_some() && k.get("o7").is_some());
        // Storing one order again and again keeps the others and the bound.
        for _ in 0..1000 {
            k.put("o7", snap("o7"));
        }
        assert_eq!(k.len(), 3);
        assert!(k.lock().order.len() <= 2 * 3 + 64 + 1);
        assert!(k.get("o8").is_some());
        k.forget("o8");
        assert!(k.get("o8").is_none());
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let k = KnownRecords::new(0);
        k.put("a", snap("a"));
        assert!(k.get("a").is_none());
        assert_eq!(k.len(), 0);
    }

    #[test]
    fn after_a_write_the_snapshot_is_the_encoding_of_the_next_record() {
        let mut m = short_term("a", OrderStatus::Active, 5);
        let s = Snapshot::recorded(&m, "t1");
        let req = TransitionRequest::new("a", &[OrderStatus::Active], OrderStatus::Cancelled);
        req.apply(&mut m);
        let (set, delete) = s.changes(&m);
        let after = s.after(m.clone(), "t2", &set, &delete);
        let direct = Snapshot::recorded(&m, "t2");
        assert_eq!(after.fields, direct.fields);
        assert_eq!(after.len, direct.len);
        assert_eq!(after.op(), b"t2");
        // Nothing changes: nothing to set.
        assert_eq!(direct.changes(&m), (vec![], vec![]));
    }

    #[test]
    fn a_stored_field_in_another_form_is_rewritten_canonically() {
        let m = short_term("a", OrderStatus::Active, 5);
        let mut raw: RawHash = codec::encode(&m)
            .into_iter()
            .map(|(f, v)| (f.as_bytes().to_vec(), v.into_bytes()))
            .collect();
        raw.insert(b"op".to_vec(), b"t".to_vec());
        let canonical = Snapshot::read("a", &raw).expect("decodes");
        assert!(canonical.fixed_canonical && canonical.plain());
        // A leading zero decodes the same, but is not what `encode` writes.
        raw.insert(b"client_id".to_vec(), b"07".to_vec());
        let s = Snapshot::read("a", &raw).expect("decodes");
        assert!(!s.fixed_canonical);
        let mut next = m.clone();
        TransitionRequest::new("a", &[OrderStatus::Active], OrderStatus::Cancelled)
            .apply(&mut next);
        let (set, delete) = s.changes(&next);
        assert!(
            set.iter().any(|(f, v)| *f == "client_id" && v == "7"),
            "{set:?}"
        );
        assert!(delete.is_empty());
        let after = s.after(next.clone(), "t2", &set, &delete);
        assert_eq!(after.fields, Snapshot::recorded(&next, "t2").fields);
        // The canonical one sends only what changed.
        let (set, _) = canonical.changes(&next);
        let names: Vec<&str> = set.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            names,
            ["updated_at", "cancelled_at", "status", "version", "history"]
        );
    }

    #[test]
    fn the_expected_join_avoids_bytes_the_values_hold() {
        let mut s = snap("a");
        s.fields[field_index("symbol")] = Some(Arc::from(&b"x\0y"[..]));
        let (names, sep, joined) = s.expected();
        assert_eq!(names.len(), s.fields[..OP_INDEX].iter().flatten().count());
        assert_ne!(sep, 0);
        let parts: Vec<&[u8]> = joined.split(|b| *b == sep).collect();
        assert_eq!(parts.len(), s.fields[..OP_INDEX].iter().flatten().count());
    }
}
