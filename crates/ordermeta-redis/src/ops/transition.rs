//! `transition`: compare-and-set of one order's status and claim lease, with its patch and a
//! history append (`lua/transition.lua`).
//!
//! Read, check, then write only if unchanged: the order is read and decoded whole here (so a
//! record with any malformed field is `InvalidMetadata` and is never written), the request's
//! condition (status and lease) is checked, the new record computed with the reference
//! [`TransitionRequest::apply`] (the version saturating at `i64::MAX`), and the script writes
//! the fields that change if the record's `op` token is still the one read. When it is not (a
//! concurrent write won), the order is read again.
//!
//! ```text
//! KEYS[1..11]  the index keys (Shared::invocation)
//! KEYS[12]     {ns}:o:<order id>
//! ARGV         order id, the op token read ('' for none), this call's token, status read,
//!              new status, at (µs), open index (2 or 3) + good-til, retention TTL (ms, 0 for
//!              none), number of field/value pairs, the pairs, the fields to delete
//! Returns      {'ok'}, {'changed'} (read again) or {'index', key, type}; nothing written
//!              but for ok
//! ```
//!
//! A lost reply (an I/O error, or no reply by [`Deadline::reply_end`]) is resolved by reading
//! the order back: it holds this call's token exactly when the compare-and-set happened.

use std::sync::LazyLock;

use ordermeta_core::{OrderMetadata, StoreError, TransitionRequest, to_micros};
use redis::{Script, Value};

use super::{Deadline, ReadBack, Shared, index_reply, op_token, tagged};
use crate::codec::{self, OP_FIELD};
use crate::error::backend;

/// The script's source.
pub(crate) const LUA: &str = include_str!("../../lua/transition.lua");

/// The script, hashed once per process.
pub(crate) static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA));

/// Runs `req` (checked first) within `deadline` and returns the order as it now is.
pub(crate) async fn run(
    shared: &Shared,
    req: &TransitionRequest,
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
            return Err(StoreError::conflict(id, current.status, &req.from));
        }
        let mut next = current.clone();
        req.apply(&mut next);
        next.version = codec::next_version(current.version);
        next.validate()?;
        let (set, delete) = codec::changes(&stored, &next);
        let (open_index, good_til) = match next.good_til {
            ordermeta_core::GoodTil::Block(b) => (2, b),
            ordermeta_core::GoodTil::BlockTime(t) => (3, t),
        };
        let seen = stored
            .get(OP_FIELD.as_bytes())
            .map(|v| v.as_slice())
            .unwrap_or_default();
        let mut inv = shared.invocation(&SCRIPT);
        inv.key(shared.keys.order(id))
            .arg(id)
            .arg(seen)
            .arg(&token)
            .arg(current.status.as_str())
            .arg(next.status.as_str())
            .arg(to_micros(next.updated_at))
            .arg(open_index)
            .arg(good_til)
            .arg(shared.ttl_ms)
            .arg(set.len() + 1)
            .arg(OP_FIELD)
            .arg(&token);
        for (f, v) in &set {
            inv.arg(*f).arg(v);
        }
        for f in &delete {
            inv.arg(*f);
        }
        let mut conn = shared.connection();
        let sent = tokio::time::timeout_at(
            deadline.reply_end(),
            inv.invoke_async::<Vec<Value>>(&mut conn),
        )
        .await;
        let lost = match sent {
            Ok(Ok(reply)) => {
                let (tag, rest) = tagged(reply)?;
                match tag.as_str() {
                    "ok" => return Ok(next),
                    // A concurrent write came first: judge the order as it is now.
                    "changed" => continue,
                    "index" => return Err(index_reply(rest)),
                    other => {
                        return Err(StoreError::backend(format!(
                            "transition script answered {other:?}"
                        )));
                    }
                }
            }
            Ok(Err(e)) if shared.write_may_have_run(&e) => backend(e),
            Ok(Err(e)) => return Err(backend(e)),
            // Only returned when the read-back answers that nothing was written.
            Err(_) => {
                StoreError::backend("no reply to transition in time, and nothing was written")
            }
        };
        // The compare-and-set may have happened: ask the order, never re-send it.
        return match shared.read_back(id, &token, deadline).await? {
            ReadBack::Applied => Ok(next),
            ReadBack::NotApplied => Err(lost),
        };
    }
}
