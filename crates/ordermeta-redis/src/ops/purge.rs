//! `purge`: deletes terminal orders last updated before a cut-off (`lua/purge.lua`).
//!
//! The candidates come from `{ns}:terminal` (ZRANGEBYSCORE up to the cut-off, [`BATCH`] at a
//! time), so the work is O(purged); the script re-checks each, comparing exact integers.
//!
//! One bad order is that order's problem: an index member that is not UTF-8 (no order id) is
//! removed from the index, and a record the script cannot judge (a key of another type, a
//! status or `updated_at` that does not parse) is skipped, reported (a `warn` naming it; `get`
//! and `list` report it as `InvalidMetadata`) and left in `{ns}:terminal`, which the loop steps
//! past.
//!
//! A deleted order also leaves its lookup indexes (`{ns}:cid:…`, `{ns}:lbl:…`). Their names
//! derive from the record's fields, which the script may not build keys from: the candidates'
//! `owner`, `subaccount_number`, `clob_pair_id`, `client_id` and `label` are read first (one
//! pipelined HMGET per batch), the keys derived from their raw bytes, and the script deletes
//! only if those fields are still what was read (a fingerprint of them). A field missing or
//! damaged by hand derives a key the order was never indexed under: its real entry is left
//! behind, and a lookup that meets it drops it (its order is gone).
//!
//! ```text
//! KEYS[1..11]  the index keys (Shared::invocation)
//! KEYS[12..]   per candidate: {ns}:o:<order id>, then its lookup indexes
//! ARGV         the cut-off (µs), the earliest and latest updated_at (µs) a record may hold,
//!              then per candidate: id, number of lookup keys, fingerprint of its lookup
//!              fields
//! Returns      {'ok', deleted, kept, id, reason, …}: kept and skipped candidates stay in
//!              {ns}:terminal and are stepped past; or {'index', key, type} (nothing written)
//! ```

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use ordermeta_core::{StoreError, to_micros};
use redis::{Script, Value};

use super::{BATCH, Shared, index_reply, int, report_skipped, split_members, tagged};
use crate::error::{backend, index_read};
use crate::keys::KeyLayout;

/// The script's source.
pub(crate) const LUA: &str = include_str!("../../lua/purge.lua");

/// The script, hashed once per process.
pub(crate) static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA));

/// Deletes every terminal order updated before `older_than`; returns how many.
pub(crate) async fn run(shared: &Shared, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
    let cut = to_micros(older_than);
    // The range `from_micros` decodes: a stored time outside it is corrupt, never compared.
    let earliest = DateTime::<Utc>::MIN_UTC.timestamp_micros();
    let latest = DateTime::<Utc>::MAX_UTC.timestamp_micros();
    let terminal = shared.keys.terminal();
    let mut total = 0u64;
    let mut offset = 0usize;
    loop {
        // Scores are doubles: this may return a few too many near the cut-off; the script
        // compares the exact integers and reports those it kept, which are skipped.
        let cmd = redis::cmd("ZRANGEBYSCORE")
            .arg(&terminal)
            .arg("-inf")
            .arg(cut)
            .arg("LIMIT")
            .arg(offset)
            .arg(BATCH)
            .to_owned();
        let members: Vec<Vec<u8>> = shared
            .read(&cmd)
            .await
            .map_err(|e| index_read(&terminal, e))?;
        let full = members.len() == BATCH;
        let (ids, junk) = split_members(members);
        if !junk.is_empty() {
            shared.unindex(&terminal, &junk).await?;
        }
        if !ids.is_empty() {
            let lookups = lookup_fields(shared, &ids).await?;
            let mut inv = shared.invocation(&SCRIPT);
            inv.arg(cut).arg(earliest).arg(latest);
            for (id, fields) in ids.iter().zip(&lookups) {
                let keys = fields.keys(&shared.keys);
                inv.key(shared.keys.order(id));
                for k in &keys {
                    inv.key(k.as_slice());
                }
                inv.arg(id).arg(keys.len()).arg(fields.fingerprint());
            }
            let reply: Vec<Value> = inv
                .invoke_async(&mut shared.connection())
                .await
                .map_err(backend)?;
            let (tag, rest) = tagged(reply)?;
            match tag.as_str() {
                "ok" => {}
                "index" => return Err(index_reply(rest)),
                other => {
                    return Err(StoreError::backend(format!(
                        "purge script answered {other:?}"
                    )));
                }
            }
            let mut rest = rest.into_iter();
            total += int(rest.next())?;
            let kept = usize::try_from(int(rest.next())?).unwrap_or(usize::MAX);
            offset = offset
                .saturating_add(kept)
                .saturating_add(report_skipped("purge", rest)?);
        }
        if !full {
            break;
        }
    }
    Ok(total)
}

/// The raw fields of one record that its lookup keys derive from, as read; all `None` when the
/// record is gone or its key holds another type.
#[derive(Debug, Default)]
pub(crate) struct LookupFields {
    owner: Option<Vec<u8>>,
    subaccount_number: Option<Vec<u8>>,
    clob_pair_id: Option<Vec<u8>>,
    client_id: Option<Vec<u8>>,
    label: Option<Vec<u8>>,
}

/// The fields [`LookupFields`] holds, in `purge.lua`'s `LOOKUP_FIELDS` order.
const LOOKUP_FIELDS: [&str; 5] = [
    "owner",
    "subaccount_number",
    "clob_pair_id",
    "client_id",
    "label",
];

impl LookupFields {
    /// The lookup keys the record was indexed under, if these fields are what `record`
    /// wrote: the client-id key when all four identity fields are present, then the label
    /// key when there is a label.
    pub(crate) fn keys(&self, layout: &KeyLayout) -> Vec<Vec<u8>> {
        let mut keys = Vec::with_capacity(2);
        if let (Some(o), Some(s), Some(c), Some(i)) = (
            &self.owner,
            &self.subaccount_number,
            &self.clob_pair_id,
            &self.client_id,
        ) {
            keys.push(layout.client_id_raw(o, s, c, i));
        }
        if let Some(l) = &self.label {
            keys.push(layout.label_raw(l));
        }
        keys
    }

    /// The fields of a HASH already read whole (the fuzz tests' way in).
    #[cfg(test)]
    pub(crate) fn from_hash(h: &crate::codec::RawHash) -> Self {
        let f = |name: &str| h.get(name.as_bytes()).cloned();
        LookupFields {
            owner: f("owner"),
            subaccount_number: f("subaccount_number"),
            clob_pair_id: f("clob_pair_id"),
            client_id: f("client_id"),
            label: f("label"),
        }
    }

    /// `purge.lua`'s fingerprint: each field as `<length>:<bytes>;`, or `-;` when absent.
    pub(crate) fn fingerprint(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for f in [
            &self.owner,
            &self.subaccount_number,
            &self.clob_pair_id,
            &self.client_id,
            &self.label,
        ] {
            match f {
                Some(v) => {
                    out.extend_from_slice(format!("{}:", v.len()).as_bytes());
                    out.extend_from_slice(v);
                    out.push(b';');
                }
                None => out.extend_from_slice(b"-;"),
            }
        }
        out
    }
}

/// The [`LookupFields`] of each of `ids`, in one pipelined round trip. A key of another type
/// reads as no fields (the script skips that order anyway).
pub(crate) async fn lookup_fields(
    shared: &Shared,
    ids: &[String],
) -> Result<Vec<LookupFields>, StoreError> {
    let mut p = redis::pipe();
    p.ignore_errors();
    for id in ids {
        p.cmd("HMGET")
            .arg(shared.keys.order(id))
            .arg(&LOOKUP_FIELDS[..]);
    }
    let got: Vec<redis::RedisResult<Vec<Option<Vec<u8>>>>> =
        shared.read_pipe(&p).await.map_err(backend)?;
    Ok(got
        .into_iter()
        .map(|r| match r {
            Ok(v) => {
                let mut it = v.into_iter();
                LookupFields {
                    owner: it.next().flatten(),
                    subaccount_number: it.next().flatten(),
                    clob_pair_id: it.next().flatten(),
                    client_id: it.next().flatten(),
                    label: it.next().flatten(),
                }
            }
            Err(_) => LookupFields::default(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rust_and_lua_lookup_fields_agree() {
        let line = format!(
            "local LOOKUP_FIELDS = {{{}}}",
            LOOKUP_FIELDS.map(|f| format!("'{f}'")).join(", ")
        );
        assert!(LUA.contains(&line), "purge.lua lists {line}");
        let f = LookupFields {
            owner: Some(b"o:1".to_vec()),
            label: Some("é".as_bytes().to_vec()),
            ..LookupFields::default()
        };
        assert_eq!(f.fingerprint(), "3:o:1;-;-;-;2:é;".as_bytes());
    }
}
