//! `record` / `record_many`: writes new orders, all or nothing (`lua/record.lua`).
//!
//! ```text
//! KEYS[1..11]  the index keys (Shared::invocation)
//! KEYS[12..]   per record: {ns}:o:<order id>, then its lookup indexes ({ns}:cid:…, and
//!              {ns}:lbl:… when it has a label)
//! ARGV         retention TTL (ms, 0 for none), operation token, number of records, then per
//!              record: id, KEYS position of its status set, KEYS position of its place (open
//!              index by good-til, or terminal) and its score there, placed_at (µs, the lookup
//!              score), number of lookup keys, field count, field/value pairs (op first;
//!              lease_token and lease_until when the record holds a lease)
//! Returns      {'ok'}, or (nothing written) {'exists', <order id>}, {'corrupt', <order id>,
//!              <why>} (its key holds no hash) or {'index', <key>, <type>}
//! ```
//!
//! A lost reply (an I/O error, or no reply by [`Deadline::write_end`]) is resolved by reading
//! the first order back: all or nothing, it tells for the batch.

use std::sync::LazyLock;

use ordermeta_core::{GoodTil, OrderMetadata, OrderStatus, StoreError, to_micros};
use redis::{Script, Value};

use super::{Deadline, ReadBack, Shared, index_reply, op_token, tagged, text};
use crate::codec::{self, OP_FIELD};
use crate::error::backend;
use crate::known::Snapshot;

/// The script's source.
pub(crate) const LUA: &str = include_str!("../../lua/record.lua");

/// The script, hashed once per process.
pub(crate) static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA));

/// Records `metas` (validated first) within `deadline`; an empty slice is a no-op.
pub(crate) async fn run(
    shared: &Shared,
    metas: &[OrderMetadata],
    deadline: &Deadline,
) -> Result<(), StoreError> {
    for m in metas {
        m.validate()?;
    }
    let Some(first) = metas.first() else {
        return Ok(());
    };
    let token = op_token();
    let mut inv = shared.invocation(&SCRIPT);
    let lookups: Vec<Vec<String>> = metas.iter().map(|m| shared.keys.lookups_of(m)).collect();
    for (m, lk) in metas.iter().zip(&lookups) {
        inv.key(shared.keys.order(&m.order_id));
        for k in lk {
            inv.key(k);
        }
    }
    inv.arg(shared.ttl_ms).arg(&token).arg(metas.len());
    let encoded: Vec<Vec<(&'static str, String)>> = metas.iter().map(codec::encode).collect();
    for ((m, lk), fields) in metas.iter().zip(&lookups).zip(&encoded) {
        let status = OrderStatus::ALL
            .iter()
            .position(|s| *s == m.status)
            .unwrap_or_default();
        // Where the record waits: its open index by good-til, or `{ns}:terminal`.
        let (place, score) = match (m.status.is_terminal(), m.good_til) {
            (true, _) => (4, to_micros(m.updated_at)),
            (false, GoodTil::Block(b)) => (2, i64::from(b)),
            (false, GoodTil::BlockTime(t)) => (3, i64::from(t)),
        };
        inv.arg(&m.order_id)
            .arg(5 + status)
            .arg(place)
            .arg(score)
            .arg(to_micros(m.placed_at))
            .arg(lk.len())
            .arg(fields.len() + 1)
            .arg(OP_FIELD)
            .arg(&token);
        for (f, v) in fields {
            inv.arg(*f).arg(v);
        }
    }
    let mut conn = shared.connection();
    let sent = tokio::time::timeout_at(
        deadline.write_end(),
        inv.invoke_async::<Vec<Value>>(&mut conn),
    )
    .await;
    let lost = match sent {
        Ok(Ok(reply)) => {
            let (tag, rest) = tagged(reply)?;
            return match tag.as_str() {
                "ok" => {
                    remember(shared, metas, encoded, &token);
                    Ok(())
                }
                "exists" => Err(StoreError::AlreadyExists {
                    order_id: text(rest.into_iter().next())?,
                }),
                "corrupt" => {
                    let mut it = rest.into_iter();
                    let id = text(it.next())?;
                    Err(StoreError::invalid(Some(&id), text(it.next())?))
                }
                "index" => Err(index_reply(rest)),
                other => Err(StoreError::backend(format!(
                    "record script answered {other:?}"
                ))),
            };
        }
        Ok(Err(e)) if shared.write_may_have_run(&e) => backend(e),
        Ok(Err(e)) => return Err(backend(e)),
        // Only returned when the read-back answers that nothing was written.
        Err(_) => StoreError::backend("no reply to record in time, and nothing was written"),
    };
    // The script may have run: ask the first order, never re-send.
    match shared.read_back(&first.order_id, &token, deadline).await? {
        ReadBack::Applied => {
            remember(shared, metas, encoded, &token);
            Ok(())
        }
        ReadBack::NotApplied => Err(lost),
    }
}

/// Remembers what `record` wrote: each HASH is exactly the record's fields and `token` (the
/// script writes only orders whose key did not exist). A large batch remembers its last
/// orders, as many as the store keeps.
fn remember(
    shared: &Shared,
    metas: &[OrderMetadata],
    encoded: Vec<Vec<(&'static str, String)>>,
    token: &str,
) {
    let skip = metas.len() - shared.known.capacity().min(metas.len());
    for (m, fields) in metas.iter().zip(encoded).skip(skip) {
        shared
            .known
            .put(&m.order_id, Snapshot::encoded(m.clone(), fields, token));
    }
}
