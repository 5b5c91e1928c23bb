//! `find_by_client_id` and `find_by_label`: the newest order of a lookup index, and
//! `lua/lookup.lua`, which drops the stale members a lookup meets.
//!
//! A lookup index (`{ns}:cid:…`, `{ns}:lbl:…`) is a ZSET scored by `placed_at` (µs), members
//! the order ids: ZREVRANGE 0 0 names the newest (equal scores: the greatest id, byte order,
//! exactly [`is_newer`](ordermeta_core::is_newer)). The lookup then reads that order:
//!
//! - found, sound and still belonging to the index (same client id, same label): the answer;
//! - found but corrupt (or its key of another type): `InvalidMetadata` naming it, nothing
//!   written — the newest record is damaged, and an older one is not the answer;
//! - gone, or sound but belonging elsewhere (recorded again under the same id after its
//!   retention TTL): stale — dropped from the index (`lookup.lua`, only if the order is still
//!   as read) and the next newest is read;
//! - a member that is not UTF-8 is no order id: dropped, with a warning.
//!
//! ```text
//! KEYS[1]      the lookup index
//! KEYS[2]      {ns}:o:<member>
//! ARGV         member, the order as read ('' missing, '=' + its op token)
//! Returns      1 removed, 0 kept (the order changed since read)
//! ```
//!
//! Two reads per lookup when the newest member is sound; each stale member met costs a
//! script call and two more reads. The call's deadline bounds the whole walk.

use std::sync::LazyLock;

use ordermeta_core::{OrderMetadata, StoreError};
use redis::Script;

use super::Shared;
use crate::codec::{self, OP_FIELD};
use crate::error::index_read;

/// The script's source.
pub(crate) const LUA: &str = include_str!("../../lua/lookup.lua");

/// The script, hashed once per process.
pub(crate) static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA));

/// The newest order of the lookup index `index` that `belongs` to it; `None` when there is
/// none. Stale members met on the way are dropped.
pub(crate) async fn newest(
    shared: &Shared,
    index: &str,
    belongs: impl Fn(&OrderMetadata) -> bool,
) -> Result<Option<OrderMetadata>, StoreError> {
    loop {
        let cmd = redis::cmd("ZREVRANGE").arg(index).arg(0).arg(0).to_owned();
        let top: Vec<Vec<u8>> = shared.read(&cmd).await.map_err(|e| index_read(index, e))?;
        let Some(member) = top.into_iter().next() else {
            return Ok(None);
        };
        let id = match String::from_utf8(member) {
            Ok(id) => id,
            Err(e) => {
                shared.unindex(index, &[e.into_bytes()]).await?;
                continue;
            }
        };
        let seen = match shared.read_order(&id).await? {
            None => Vec::new(),
            Some(h) => {
                let m = codec::decode(&id, &h)?;
                if belongs(&m) {
                    return Ok(Some(m));
                }
                // Bytes: the token of a write by another tool need not be UTF-8.
                let mut seen = b"=".to_vec();
                seen.extend_from_slice(h.get(OP_FIELD.as_bytes()).map_or(&[][..], Vec::as_slice));
                seen
            }
        };
        drop_stale(shared, index, &id, &seen).await?;
    }
}

/// Drops `id` from `index` if its order is still as read (`seen`, in `lookup.lua`'s form).
async fn drop_stale(shared: &Shared, index: &str, id: &str, seen: &[u8]) -> Result<(), StoreError> {
    let mut inv = SCRIPT.prepare_invoke();
    inv.key(index).key(shared.keys.order(id)).arg(id).arg(seen);
    let removed: i64 = inv
        .invoke_async(&mut shared.connection())
        .await
        .map_err(|e| index_read(index, e))?;
    if removed == 1 {
        tracing::info!(
            index,
            order_id = id,
            "dropped a stale lookup-index member (its order is gone or indexed elsewhere)"
        );
    }
    Ok(())
}
