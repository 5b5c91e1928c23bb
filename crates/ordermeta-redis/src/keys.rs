//! The key layout of one namespace (see the [crate docs](crate#key-layout)).

use ordermeta_core::{ClientIdKey, OrderMetadata, OrderStatus, StoreError};

/// Longest namespace accepted, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 128;

/// The keys of one namespace. Every key starts with the hash tag `{<namespace>}`, so all of
/// them live in one Redis Cluster slot and one script may touch any of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLayout {
    namespace: String,
    tag: String,
}

impl KeyLayout {
    /// The layout of `namespace`: 1..=128 bytes, no `{`, `}` or control characters (a brace
    /// would change which part of the key Redis Cluster hashes).
    pub fn new(namespace: &str) -> Result<Self, StoreError> {
        if namespace.is_empty() || namespace.len() > MAX_NAMESPACE_LEN {
            return Err(StoreError::invalid(
                None,
                format!("namespace must be 1..={MAX_NAMESPACE_LEN} bytes"),
            ));
        }
        if namespace
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_control())
        {
            return Err(StoreError::invalid(
                None,
                format!("namespace {namespace:?} contains a brace or a control character"),
            ));
        }
        Ok(KeyLayout {
            namespace: namespace.to_owned(),
            tag: format!("{{{namespace}}}"),
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `{ns}:o:<order id>`: the HASH holding one order.
    pub fn order(&self, order_id: &str) -> String {
        format!("{}:o:{order_id}", self.tag)
    }

    /// `{ns}:o:<member>` for an index member read as bytes (which may not be UTF-8, so no
    /// order id: such a key still names what an index points to).
    pub(crate) fn order_bytes(&self, member: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.tag.len() + 3 + member.len());
        k.extend_from_slice(self.tag.as_bytes());
        k.extend_from_slice(b":o:");
        k.extend_from_slice(member);
        k
    }

    /// `{ns}:ids`: ZSET of every order id, score 0 (paged with ZRANGEBYLEX, byte order).
    pub fn ids(&self) -> String {
        format!("{}:ids", self.tag)
    }

    /// `{ns}:open:gtb`: ZSET of open short-term orders, score = good-til block.
    pub fn open_by_block(&self) -> String {
        format!("{}:open:gtb", self.tag)
    }

    /// `{ns}:open:gtt`: ZSET of open stateful orders, score = good-til block time.
    pub fn open_by_time(&self) -> String {
        format!("{}:open:gtt", self.tag)
    }

    /// `{ns}:terminal`: ZSET of terminal orders, score = `updated_at` in microseconds.
    pub fn terminal(&self) -> String {
        format!("{}:terminal", self.tag)
    }

    /// `{ns}:status:<status>`: ZSET of the orders in `status`, score 0.
    pub fn status(&self, status: OrderStatus) -> String {
        format!("{}:status:{}", self.tag, status.as_str())
    }

    /// `{ns}:cid:<owner length>:<owner>:<subaccount>:<clob pair>:<client id>`: ZSET of the
    /// orders with this chain identity but for flags and good-til, score = `placed_at` (µs),
    /// member = order id ([`find_by_client_id`](ordermeta_core::MetadataStore::find_by_client_id)).
    pub fn client_id(&self, key: &ClientIdKey) -> String {
        let owner = &key.owner;
        format!(
            "{}:cid:{}:{owner}:{}:{}:{}",
            self.tag,
            owner.len(),
            key.subaccount_number,
            key.clob_pair_id,
            key.client_id
        )
    }

    /// [`client_id`](Self::client_id) of a record.
    pub fn client_id_of(&self, meta: &OrderMetadata) -> String {
        self.client_id(&ClientIdKey::of(meta))
    }

    /// [`client_id`](Self::client_id) from a HASH's raw `owner`, `subaccount_number`,
    /// `clob_pair_id` and `client_id` fields (for sweeps, which must not fail on a corrupt
    /// record: a field this store wrote is canonical, so this is the key it indexed under).
    pub(crate) fn client_id_raw(
        &self,
        owner: &[u8],
        sub: &[u8],
        clob: &[u8],
        cid: &[u8],
    ) -> Vec<u8> {
        let mut k = format!("{}:cid:{}:", self.tag, owner.len()).into_bytes();
        for (i, part) in [owner, sub, clob, cid].into_iter().enumerate() {
            if i > 0 {
                k.push(b':');
            }
            k.extend_from_slice(part);
        }
        k
    }

    /// `{ns}:lbl:<label length>:<label>`: ZSET of the orders carrying this caller label,
    /// score = `placed_at` (µs), member = order id
    /// ([`find_by_label`](ordermeta_core::MetadataStore::find_by_label)).
    pub fn label(&self, label: &str) -> String {
        format!("{}:lbl:{}:{label}", self.tag, label.len())
    }

    /// [`label`](Self::label) from a HASH's raw `label` field.
    pub(crate) fn label_raw(&self, label: &[u8]) -> Vec<u8> {
        let mut k = format!("{}:lbl:{}:", self.tag, label.len()).into_bytes();
        k.extend_from_slice(label);
        k
    }

    /// The lookup-index keys a record is indexed under: its client-id key, then its label
    /// key when it carries a label.
    pub(crate) fn lookups_of(&self, meta: &OrderMetadata) -> Vec<String> {
        let mut keys = vec![self.client_id_of(meta)];
        keys.extend(meta.label.as_deref().map(|l| self.label(l)));
        keys
    }

    /// The eleven index keys every script takes first, in the order the scripts expect:
    /// ids, open by block, open by time, terminal, then one per status in
    /// [`OrderStatus::ALL`] order.
    pub fn index_keys(&self) -> Vec<String> {
        let mut keys = vec![
            self.ids(),
            self.open_by_block(),
            self.open_by_time(),
            self.terminal(),
        ];
        keys.extend(OrderStatus::ALL.into_iter().map(|s| self.status(s)));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_namespace_hash_tag() {
        let k = KeyLayout::new("bot-1").expect("namespace");
        let cid = ClientIdKey {
            owner: "{x}".into(),
            subaccount_number: 0,
            clob_pair_id: 0,
            client_id: 0,
        };
        let lookups = [k.client_id(&cid), k.label("{y}")];
        for key in k
            .index_keys()
            .into_iter()
            .chain([k.order("a{b}c")])
            .chain(lookups)
        {
            assert!(key.starts_with("{bot-1}:"), "{key}");
        }
        assert_eq!(k.order("x"), "{bot-1}:o:x");
    }

    #[test]
    fn lookup_keys_are_length_prefixed_and_agree_with_their_raw_form() {
        let k = KeyLayout::new("ns").expect("namespace");
        let key = ClientIdKey {
            owner: "dydx1a:b".into(),
            subaccount_number: 3,
            clob_pair_id: 4_294_967_295,
            client_id: 0,
        };
        let cid = k.client_id(&key);
        assert_eq!(cid, "{ns}:cid:8:dydx1a:b:3:4294967295:0");
        assert_eq!(
            k.client_id_raw(b"dydx1a:b", b"3", b"4294967295", b"0"),
            cid.as_bytes()
        );
        // An owner holding what looks like more components is still told apart.
        let other = ClientIdKey {
            owner: "dydx1a".into(),
            subaccount_number: 0,
            ..key.clone()
        };
        assert_ne!(k.client_id(&other), cid);
        assert_eq!(k.label("bot Ü 🚀"), "{ns}:lbl:11:bot Ü 🚀");
        assert_eq!(
            k.label_raw("bot Ü 🚀".as_bytes()),
            k.label("bot Ü 🚀").as_bytes()
        );
        assert_ne!(k.label("a:1:b"), k.label("a"));
    }

    #[test]
    fn bad_namespaces_are_refused() {
        for bad in ["", "a{b", "a}b", "a\nb"] {
            assert!(KeyLayout::new(bad).is_err(), "{bad:?}");
        }
        assert!(KeyLayout::new(&"x".repeat(MAX_NAMESPACE_LEN + 1)).is_err());
    }

    #[test]
    fn lua_status_order_matches_the_index_keys() {
        let names: Vec<String> = OrderStatus::ALL
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let line = format!("local STATUSES = {{{}}}", names.join(", "));
        for (name, src) in crate::scripts::SOURCES {
            if src.contains("STATUSES") {
                assert!(src.contains(&line), "{name} lists the statuses as {line}");
            }
        }
    }
}
