//! `update`: compare-and-set of one order's status and version that sets a
//! [`FieldPatch`](ordermeta_core::FieldPatch) without a status change (`lua/update.lua`).
//!
//! Like `transition`: the order is read and decoded whole here (a record with any malformed
//! field is `InvalidMetadata` and is never written), the request's condition (status, version)
//! checked, the new record computed with the reference [`UpdateRequest::apply`] (the version
//! saturating at `i64::MAX`), and the script writes the fields that change if the record's `op`
//! token is still the one read; when it is not, the order is read again. No history entry, the
//! lease untouched; a terminal order's `{ns}:terminal` score follows its new `updated_at`.
//!
//! ```text
//! KEYS[1..11]  the index keys (Shared::invocation)
//! KEYS[12]     {ns}:o:<order id>
//! ARGV         order id, the op token read ('' for none), this call's token, '1' if terminal
//!              else '0', at (µs), retention TTL (ms, 0 for none), number of field/value
//!              pairs, the pairs, the fields to delete
//! Returns      {'ok'}, {'changed'} (read again) or {'index', key, type}; nothing written
//!              but for ok
//! ```
//!
//! A lost reply (an I/O error, or no reply by [`Deadline::reply_end`]) is resolved by reading
//! the order back: it holds this call's token exactly when the compare-and-set happened.

use std::sync::LazyLock;

use ordermeta_core::{OrderMetadata, StoreError, UpdateRequest, to_micros};
use redis::Script;

use super::{Cas, Deadline, Shared, compare_and_set, op_token, push_changes};
use crate::codec::{self, OP_FIELD};

/// The script's source.
pub(crate) const LUA: &str = include_str!("../../lua/update.lua");

/// The script, hashed once per process.
pub(crate) static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA));

/// Runs `req` (checked first) within `deadline` and returns the order as it now is.
pub(crate) async fn run(
    shared: &Shared,
    req: &UpdateRequest,
    deadline: &Deadline,
) -> Result<OrderMetadata, StoreError> {
    req.check()?;
    let id = req.order_id.as_str();
    let token = op_token();
    loop {
        let stored = shared
            .read_order(id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                order_id: id.to_owned(),
            })?;
        let current = codec::decode(id, &stored)?;
        if !req.allows(&current) {
            return Err(req.conflict(&current));
        }
        let mut next = current.clone();
        req.apply(&mut next);
        next.version = codec::next_version(current.version);
        next.validate()?;
        let (set, delete) = codec::changes(&stored, &next);
        let seen = stored
            .get(OP_FIELD.as_bytes())
            .map(|v| v.as_slice())
            .unwrap_or_default();
        let mut inv = shared.invocation(&SCRIPT);
        inv.key(shared.keys.order(id))
            .arg(id)
            .arg(seen)
            .arg(&token)
            .arg(if next.status.is_terminal() { "1" } else { "0" })
            .arg(to_micros(next.updated_at))
            .arg(shared.ttl_ms);
        push_changes(&mut inv, &token, &set, &delete);
        match compare_and_set(shared, &inv, "update", id, &token, deadline).await? {
            Cas::Written => return Ok(next),
            // A concurrent write came first: judge the order as it is now.
            Cas::Changed => continue,
        }
    }
}
