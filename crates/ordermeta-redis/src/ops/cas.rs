//! The compare-and-set that `transition` and `update` share (`lua/cas.lua`): decide on the
//! record this store remembers (or reads), then write in one script call only if the HASH is
//! still exactly that record.
//!
//! ```text
//! KEYS[1]      {ns}:o:<order id>
//! KEYS[2..]    the index sets the moves touch
//! ARGV         order id, this call's token, op read ('' for none), field count, separator,
//!              present model values joined by it, PEXPIRE ms (0 for none), number of names +
//!              the present model fields' names and 'op', number of pairs + pairs to set,
//!              number + fields to delete, number of moves + per move: KEYS position, score
//!              ('' = ZREM), score on undo
//! Returns      {'ok'}, {'changed'} (read again) or {'index', key, type}; nothing written
//!              but for ok
//! ```
//!
//! One round trip when the remembered record is current (the [`KnownRecords`] of this store:
//! it wrote or read the order last); otherwise the script answers `changed`, and the order is
//! read (HGETALL), decoded strictly and judged again, as it is when nothing is remembered. An
//! answer other than success is only given from a record just read: a conflict judged on a
//! remembered record is judged again on the stored one.
//!
//! A lost reply (an I/O error, or no reply by [`Deadline::reply_end`]) is resolved by reading
//! the order back: it holds this call's token exactly when the compare-and-set happened.
//!
//! [`KnownRecords`]: crate::known::KnownRecords

use std::sync::{Arc, LazyLock};

use ordermeta_core::{OrderMetadata, StoreError};
use redis::{Script, Value};

use super::{Deadline, ReadBack, Shared, index_reply, op_token, tagged};
use crate::codec::OP_FIELD;
use crate::error::backend;
use crate::known::Snapshot;

/// The script's source.
pub(crate) const LUA: &str = include_str!("../../lua/cas.lua");

/// The script, hashed once per process.
pub(crate) static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA));

/// One index move: ZADD `key` with `score`, or ZREM from it when `score` is `None`. `undo` is
/// the score to put back if a later move fails: for a ZREM, the score the member had; for a
/// ZADD that found the member, its score before (`None`: leave it).
#[derive(Debug)]
pub(crate) struct Move {
    pub(crate) key: String,
    pub(crate) score: Option<i64>,
    pub(crate) undo: Option<i64>,
}

/// What a request makes of a record: the new record, the index moves, and the TTL (ms, 0 for
/// none) the HASH gets after the write.
#[derive(Debug)]
pub(crate) struct Decision {
    pub(crate) next: OrderMetadata,
    pub(crate) moves: Vec<Move>,
    pub(crate) ttl_ms: u64,
}

/// The answer of one script call.
enum Cas {
    /// Written (also when found written by this very call, or read back after a lost reply).
    Written,
    /// The HASH is not the record decided on: nothing written; read it again.
    Changed,
}

/// Decides on the order `id` with `decide` and writes its decision, within `deadline`; the
/// order as it now is.
pub(crate) async fn run<F>(
    shared: &Shared,
    id: &str,
    operation: &'static str,
    deadline: &Deadline,
    decide: F,
) -> Result<OrderMetadata, StoreError>
where
    F: Fn(&OrderMetadata) -> Result<Decision, StoreError>,
{
    let token = op_token();
    let mut remembered = shared.known.get(id);
    loop {
        let (snap, fresh) = match remembered.take() {
            Some(s) => (s, false),
            None => (Arc::new(read(shared, id).await?), true),
        };
        let decision = match decide(&snap.meta) {
            Ok(d) => d,
            // Judged on what this store remembers, which may be stale: judge the stored record.
            Err(_) if !fresh => continue,
            Err(e) => return Err(e),
        };
        let (set, delete) = snap.changes(&decision.next);
        match write(
            shared, &snap, &decision, &set, &delete, operation, id, &token, deadline,
        )
        .await
        {
            Ok(Cas::Written) => {
                let after = snap.after(decision.next.clone(), &token, &set, &delete);
                shared.known.put(id, after);
                return Ok(decision.next);
            }
            // Another write came first (or the record is not what was remembered): judge the
            // order as it is now.
            Ok(Cas::Changed) => shared.known.forget(id),
            Err(e) => {
                shared.known.forget(id);
                return Err(e);
            }
        }
    }
}

/// Reads and decodes the order, remembering it; `NotFound` and `InvalidMetadata` forget it.
async fn read(shared: &Shared, id: &str) -> Result<Snapshot, StoreError> {
    let got = match shared.read_order(id).await {
        Ok(Some(raw)) => Snapshot::read(id, &raw),
        Ok(None) => Err(StoreError::NotFound {
            order_id: id.to_owned(),
        }),
        Err(e) => Err(e),
    };
    match &got {
        Ok(s) => shared.known.put(id, s.clone()),
        Err(_) => shared.known.forget(id),
    }
    got
}

/// One call of `cas.lua`, waiting for its reply until [`Deadline::reply_end`]. A lost reply
/// is resolved by reading the order back — it holds `token` exactly when the write happened —
/// never by sending it again.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn write(
    shared: &Shared,
    snap: &Snapshot,
    d: &Decision,
    set: &[(&'static str, String)],
    delete: &[&'static str],
    operation: &'static str,
    id: &str,
    token: &str,
    deadline: &Deadline,
) -> Result<Cas, StoreError> {
    let (names, sep, joined) = snap.expected();
    let mut inv = SCRIPT.prepare_invoke();
    inv.key(shared.keys.order(id))
        .arg(id)
        .arg(token)
        .arg(snap.op())
        .arg(snap.len)
        .arg(&[sep][..])
        .arg(joined)
        .arg(d.ttl_ms)
        .arg(names.len() + 1)
        .arg(names)
        .arg(OP_FIELD)
        .arg(set.len());
    for (f, v) in set {
        inv.arg(*f).arg(v);
    }
    inv.arg(delete.len());
    for f in delete {
        inv.arg(*f);
    }
    inv.arg(d.moves.len());
    for (i, m) in d.moves.iter().enumerate() {
        inv.key(&m.key).arg(i + 2);
        match m.score {
            Some(s) => inv.arg(s),
            None => inv.arg(""),
        };
        match m.undo {
            Some(s) => inv.arg(s),
            None => inv.arg(""),
        };
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
            return match tag.as_str() {
                "ok" => Ok(Cas::Written),
                "changed" => Ok(Cas::Changed),
                "index" => Err(index_reply(rest)),
                other => Err(StoreError::backend(format!(
                    "{operation} script answered {other:?}"
                ))),
            };
        }
        Ok(Err(e)) if shared.write_may_have_run(&e) => backend(e),
        Ok(Err(e)) => return Err(backend(e)),
        // Only returned when the read-back answers that nothing was written.
        Err(_) => StoreError::backend(format!(
            "no reply to {operation} in time, and nothing was written"
        )),
    };
    match shared.read_back(id, token, deadline).await? {
        ReadBack::Applied => Ok(Cas::Written),
        ReadBack::NotApplied => Err(lost),
    }
}
