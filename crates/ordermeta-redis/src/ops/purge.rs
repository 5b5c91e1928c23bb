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
//! ```text
//! KEYS[1..11]  the index keys (Shared::invocation)
//! KEYS[12..]   {ns}:o:<order id> of the candidates
//! ARGV         the cut-off (µs), the earliest and latest updated_at (µs) a record may hold,
//!              then the candidates' ids
//! Returns      {'ok', deleted, kept, id, reason, …}: kept and skipped candidates stay in
//!              {ns}:terminal and are stepped past; or {'index', key, type} (nothing written)
//! ```

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use ordermeta_core::{StoreError, to_micros};
use redis::{Script, Value};

use super::{BATCH, Shared, index_reply, int, report_skipped, split_members, tagged};
use crate::error::{backend, index_read};

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
            let mut inv = shared.invocation(&SCRIPT);
            for id in &ids {
                inv.key(shared.keys.order(id));
            }
            inv.arg(cut).arg(earliest).arg(latest).arg(&ids);
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
