//! The scripted operations, one file per Lua script in `lua/` (its KEYS/ARGV in the file's
//! header), and [`Shared`], the state every operation works on.
//!
//! `record.lua`, `expire.lua` and `purge.lua` take the namespace's eleven index keys first
//! ([`Shared::invocation`]), then the keys of the orders they touch and of their lookup
//! indexes; `cas.lua` takes the order and only the index sets it moves it between; `lookup.lua`
//! one lookup index and one order. All of them in one hash tag, so one Redis Cluster slot.
//!
//! Every operation runs under one [`Deadline`] (the store's operation timeout): a write gets
//! three quarters of it for its reply (of what is left, when a read came first), and the rest
//! is left to read the order back when the reply is lost.
//!
//! Index members are read as bytes everywhere: one that is not UTF-8 is no order id, and is
//! reported or removed ([`split_members`], [`Shared::unindex`]), never a failure of the call.

use std::hash::BuildHasher as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ordermeta_core::StoreError;
use redis::{RedisError, Value};
use tokio::time::Instant;

use crate::codec::{self, OP_FIELD, RawHash};
use crate::connection::RedisConnection;
use crate::error::{backend, bad_index, index_read, not_a_hash, outcome_unknown, wrong_type};
use crate::keys::KeyLayout;
use crate::known::KnownRecords;

pub(crate) mod cas;
pub(crate) mod expire;
pub(crate) mod lookup;
pub(crate) mod purge;
pub(crate) mod record;
pub(crate) mod transition;
pub(crate) mod update;

/// How many ids `expire` and `purge` hand to one script call.
pub(crate) const BATCH: usize = 256;

/// What the clones of one store share: the connection and the namespace's keys.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) conn: RedisConnection,
    pub(crate) keys: KeyLayout,
    /// [`KeyLayout::index_keys`], computed once: every script call passes them.
    pub(crate) index_keys: Vec<String>,
    /// Retention TTL of terminal records in milliseconds, 0 for none (the scripts' ARGV).
    pub(crate) ttl_ms: u64,
    /// How long one store call may take, read-backs included.
    pub(crate) operation_timeout: Duration,
    /// The record this store last wrote or read per order (see [`crate::known`]).
    pub(crate) known: KnownRecords,
}

/// The end of one store call: when its time is up, the answer is [`StoreError::Timeout`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    operation: &'static str,
    after: Duration,
    end: Instant,
}

impl Deadline {
    /// A deadline `after` from now for `operation` (named in the timeout error).
    pub(crate) fn start(operation: &'static str, after: Duration) -> Self {
        Deadline {
            operation,
            after,
            end: Instant::now() + after,
        }
    }

    /// The error of a call whose time is up: its outcome is unknown.
    pub(crate) fn timeout(&self) -> StoreError {
        StoreError::Timeout {
            operation: self.operation,
            after: self.after,
        }
    }

    /// When a write stops waiting for its reply: a quarter of the time is kept for reading the
    /// order back, so that a reply lost to a slow or briefly frozen server can still be
    /// resolved within the deadline.
    pub(crate) fn write_end(&self) -> Instant {
        self.end - self.after / 4
    }

    /// When a write sent now stops waiting for its reply: [`write_end`](Self::write_end), or,
    /// when reading the record first took longer than that, three quarters of the time left,
    /// so that a write never starts with no time to be answered in.
    pub(crate) fn reply_end(&self) -> Instant {
        let now = Instant::now();
        let left = self.end.saturating_duration_since(now);
        (now + left * 3 / 4).max(self.write_end())
    }

    /// Runs `fut` until the deadline: its result, or [`Deadline::timeout`].
    pub(crate) async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout_at(self.end, fut)
            .await
            .unwrap_or_else(|_| Err(self.timeout()))
    }
}

/// What a write learnt when its reply was lost and the order was read back.
#[derive(Debug)]
pub(crate) enum ReadBack {
    /// The order holds this write's token: the write happened.
    Applied,
    /// The order (or its absence) shows the write did not happen.
    NotApplied,
}

impl Shared {
    /// The connection (a clone: commands need it mutably, clones share it).
    pub(crate) fn connection(&self) -> RedisConnection {
        self.conn.clone()
    }

    /// A read, retried once after a connection error (the connection is re-established by
    /// then, or the retry fails too).
    pub(crate) async fn read<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        match cmd.query_async(&mut self.connection()).await {
            Err(e) if outcome_unknown(&e) => cmd.query_async(&mut self.connection()).await,
            r => r,
        }
    }

    /// A read-only pipeline, retried once after a connection error like [`Shared::read`].
    pub(crate) async fn read_pipe<T: redis::FromRedisValue>(
        &self,
        p: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        match p.query_async(&mut self.connection()).await {
            Err(e) if outcome_unknown(&e) => p.query_async(&mut self.connection()).await,
            r => r,
        }
    }

    /// One order's HASH, `None` when there is none; a key of another type is
    /// `InvalidMetadata` for that order. Retried once like [`Shared::read`].
    pub(crate) async fn read_order(&self, order_id: &str) -> Result<Option<RawHash>, StoreError> {
        let cmd = redis::Cmd::hgetall(self.keys.order(order_id));
        match self.read::<RawHash>(&cmd).await {
            Ok(h) if h.is_empty() => Ok(None),
            Ok(h) => Ok(Some(h)),
            Err(e) if wrong_type(&e) => Err(not_a_hash(order_id, "value of another type")),
            Err(e) => Err(backend(e)),
        }
    }

    /// Removes `members` (read from the index `key`, and no order id) from that index.
    pub(crate) async fn unindex(&self, key: &str, members: &[Vec<u8>]) -> Result<(), StoreError> {
        for m in members {
            tracing::warn!(
                index = key,
                member = %String::from_utf8_lossy(m),
                "removed an index member that is not UTF-8, so no order id"
            );
        }
        redis::cmd("ZREM")
            .arg(key)
            .arg(members)
            .exec_async(&mut self.connection())
            .await
            .map_err(|e| index_read(key, e))
    }

    /// After a write whose reply was lost: whether the order holds the write's `token`. Asks
    /// again (with a growing pause) while the server does not answer, the connection may be
    /// coming back; when `deadline` passes first, the outcome stays unknown:
    /// [`Deadline::timeout`]. Never re-sends the write.
    ///
    /// On one connection Redis runs commands in order, so an answer to this read comes after
    /// the write ran, if it reached the server at all.
    pub(crate) async fn read_back(
        &self,
        order_id: &str,
        token: &str,
        deadline: &Deadline,
    ) -> Result<ReadBack, StoreError> {
        let cmd = redis::Cmd::hgetall(self.keys.order(order_id));
        let mut pause = Duration::from_millis(50);
        loop {
            let mut conn = self.connection();
            match tokio::time::timeout_at(deadline.end, cmd.query_async::<RawHash>(&mut conn)).await
            {
                Err(_) => return Err(deadline.timeout()),
                Ok(Ok(h)) => {
                    let ours =
                        h.get(OP_FIELD.as_bytes()).map(Vec::as_slice) == Some(token.as_bytes());
                    return Ok(if ours {
                        ReadBack::Applied
                    } else {
                        ReadBack::NotApplied
                    });
                }
                // The server answered: a key of another type holds no write of ours.
                Ok(Err(e)) if wrong_type(&e) => return Ok(ReadBack::NotApplied),
                Ok(Err(e)) => {
                    tracing::debug!(order_id, error = %e, "read-back after a lost reply failed")
                }
            }
            if Instant::now() >= deadline.end {
                return Err(deadline.timeout());
            }
            tokio::time::sleep_until((Instant::now() + pause).min(deadline.end)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Whether a write that failed with `e` may have run, so that it must be read back. A
    /// refused connection to one server means the write was never sent (the connection
    /// manager sends nothing until it has a connection), so it fails at once, which keeps
    /// calls fast while a server is down; a cluster client may have sent it to another node
    /// before, so there it is read back like any I/O error.
    pub(crate) fn write_may_have_run(&self, e: &RedisError) -> bool {
        let refused = matches!(self.conn, RedisConnection::Single(_)) && e.is_connection_refusal();
        outcome_unknown(e) && !refused
    }

    /// A call of `script` with the index keys already passed.
    pub(crate) fn invocation<'a>(
        &'a self,
        script: &'a redis::Script,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in &self.index_keys {
            inv.key(k);
        }
        inv
    }
}

/// A token unique to one write: a per-process random seed, the pid and a counter.
pub(crate) fn op_token() -> String {
    static SEED: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = SEED.get_or_init(std::collections::hash_map::RandomState::new);
    format!(
        "{:016x}{:08x}{n:x}",
        seed.hash_one(n ^ 0x9e37_79b9_7f4a_7c15),
        std::process::id()
    )
}

/// A script reply `{tag, …}` split into its tag and the rest.
pub(crate) fn tagged(reply: Vec<Value>) -> Result<(String, Vec<Value>), StoreError> {
    let mut it = reply.into_iter();
    let tag = it
        .next()
        .ok_or_else(|| StoreError::backend("empty reply from a script"))
        .and_then(codec::bytes)?;
    Ok((String::from_utf8_lossy(&tag).into_owned(), it.collect()))
}

/// One text value of a script reply; missing is a backend error.
pub(crate) fn text(v: Option<Value>) -> Result<String, StoreError> {
    let b = codec::bytes(v.ok_or_else(|| StoreError::backend("short reply from a script"))?)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// One integer of a script reply; anything else is a backend error.
pub(crate) fn int(v: Option<Value>) -> Result<u64, StoreError> {
    match v {
        Some(Value::Int(n)) => {
            u64::try_from(n).map_err(|_| StoreError::backend(format!("negative count {n}")))
        }
        other => Err(StoreError::backend(format!(
            "a script answered {other:?} where a count belongs"
        ))),
    }
}

/// The reply of a script that found an index key of the wrong type, `{'index', key, type}`:
/// it wrote nothing.
pub(crate) fn index_reply(rest: Vec<Value>) -> StoreError {
    let mut it = rest.into_iter();
    match (text(it.next()), text(it.next())) {
        (Ok(key), Ok(found)) => bad_index(&key, &found),
        (Err(e), _) | (_, Err(e)) => e,
    }
}

/// The orders a bulk script skipped, `id, reason, …` after its counts: their records are
/// corrupt in a field the script relies on, so they stay as they are (and in the index they
/// were found in) until repaired. Each is reported, naming the order.
pub(crate) fn report_skipped(
    operation: &str,
    rest: impl Iterator<Item = Value>,
) -> Result<usize, StoreError> {
    let mut rest = rest.peekable();
    let mut n = 0;
    while rest.peek().is_some() {
        let id = text(rest.next())?;
        let reason = text(rest.next())?;
        tracing::warn!(
            operation,
            order_id = %id,
            %reason,
            "skipped a corrupt record; it stays as it is until repaired or deleted"
        );
        n += 1;
    }
    Ok(n)
}

/// Index members split into order ids and members that are not UTF-8 (so no order id).
pub(crate) fn split_members(members: Vec<Vec<u8>>) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut ids = Vec::with_capacity(members.len());
    let mut junk = Vec::new();
    for m in members {
        match String::from_utf8(m) {
            Ok(id) => ids.push(id),
            Err(e) => junk.push(e.into_bytes()),
        }
    }
    (ids, junk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique() {
        let a = op_token();
        let b = op_token();
        assert_ne!(a, b);
    }
}
