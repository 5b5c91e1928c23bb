//! `expire`: marks open orders expired once their good-til has passed (`lua/expire.lua`).
//!
//! The candidates come from `{ns}:open:gtb` and `{ns}:open:gtt` (ZRANGEBYSCORE up to the
//! height / block time, [`BATCH`] at a time), so the work is O(expired); the script re-checks
//! each, and clears the claim lease (`lease_token`, `lease_until`) of each order it expires.
//!
//! One bad order is that order's problem: an index member that is not UTF-8 (no order id) is
//! removed from the index, and a record the script cannot judge (a key of another type, a
//! status, good-til, history or version that does not parse) is skipped, reported (a `warn`
//! naming it; `get` and `list` report it as `InvalidMetadata`) and left in its index, which the
//! loop steps past, so that it expires once repaired.
//!
//! ```text
//! KEYS[1..11]  the index keys (Shared::invocation)
//! KEYS[12..]   {ns}:o:<order id> of the candidates
//! ARGV         height or '', block time or '', at (µs), history entry (JSON), retention TTL
//!              (ms, 0 for none), operation token, then the candidates' ids
//! Returns      {'ok', n, id, reason, …}: n orders marked expired, then the skipped ones; or
//!              {'index', key, type} (nothing written)
//! ```
//!
//! No read-back: a batch whose reply is lost is simply found again (or not) by the next
//! `expire`, which re-checks every order.

use std::sync::LazyLock;

use ordermeta_core::{ExpireRequest, OrderStatus, StoreError, to_micros, truncate_micros};
use redis::{Script, Value};

use super::{BATCH, Shared, index_reply, int, op_token, report_skipped, split_members, tagged};
use crate::error::{backend, index_read};

/// The script's source.
pub(crate) const LUA: &str = include_str!("../../lua/expire.lua");

/// The script, hashed once per process.
pub(crate) static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA));

/// Expires every open order whose good-til `req` has passed; returns how many.
pub(crate) async fn run(shared: &Shared, req: &ExpireRequest) -> Result<u64, StoreError> {
    // The entry is the same for every order: status, time and reason only.
    let entry = req
        .transition_for("", OrderStatus::Active)
        .history_entry()
        .to_json();
    let at = to_micros(truncate_micros(req.at));
    let height = req.height.map(|h| h.to_string()).unwrap_or_default();
    let block_time = req.block_time.map(|t| t.to_string()).unwrap_or_default();
    let mut total = 0u64;
    let indexes = [
        (shared.keys.open_by_block(), req.height),
        (shared.keys.open_by_time(), req.block_time),
    ];
    for (index, bound) in indexes {
        let Some(bound) = bound else { continue };
        // Skipped candidates stay at the front of the range: step past them.
        let mut offset = 0usize;
        loop {
            let cmd = redis::cmd("ZRANGEBYSCORE")
                .arg(&index)
                .arg("-inf")
                .arg(bound)
                .arg("LIMIT")
                .arg(offset)
                .arg(BATCH)
                .to_owned();
            let members: Vec<Vec<u8>> =
                shared.read(&cmd).await.map_err(|e| index_read(&index, e))?;
            let full = members.len() == BATCH;
            let (ids, junk) = split_members(members);
            if !junk.is_empty() {
                shared.unindex(&index, &junk).await?;
            }
            if !ids.is_empty() {
                let mut inv = shared.invocation(&SCRIPT);
                for id in &ids {
                    inv.key(shared.keys.order(id));
                }
                inv.arg(&height)
                    .arg(&block_time)
                    .arg(at)
                    .arg(&entry)
                    .arg(shared.ttl_ms)
                    .arg(op_token())
                    .arg(&ids);
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
                            "expire script answered {other:?}"
                        )));
                    }
                }
                let mut rest = rest.into_iter();
                total += int(rest.next())?;
                offset += report_skipped("expire", rest)?;
            }
            if !full {
                break;
            }
        }
    }
    Ok(total)
}
