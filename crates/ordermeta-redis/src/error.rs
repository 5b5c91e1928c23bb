//! How redis-rs errors become [`StoreError`]s, and which of them leave an outcome unknown.

use ordermeta_core::StoreError;
use redis::RedisError;

/// Any error is `Backend`; callers classify the few that mean something else first.
pub(crate) fn backend(e: RedisError) -> StoreError {
    StoreError::backend(e)
}

/// Whether the error leaves a command's outcome unknown (it may or may not have run).
pub(crate) fn outcome_unknown(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.kind() == redis::ErrorKind::ClusterConnectionNotFound
}

/// Whether a key holds a value of another type than the command expects (a non-hash order key).
pub(crate) fn wrong_type(e: &RedisError) -> bool {
    e.code() == Some("WRONGTYPE")
}

/// A key that should hold an order (a HASH) holds something else: that order's problem only.
pub(crate) fn not_a_hash(order_id: &str, found: &str) -> StoreError {
    StoreError::invalid(
        Some(order_id),
        format!("the order's key holds a {found}, not a hash"),
    )
}

/// An index key of the namespace holds something other than a sorted set: every operation
/// that needs that index fails with this (writing nothing) until the key is repaired.
pub(crate) fn bad_index(key: &str, found: &str) -> StoreError {
    StoreError::invalid(
        None,
        format!("index key {key} holds a {found}, not a sorted set; nothing was written"),
    )
}

/// The error of reading the index `key`: a wrong type is [`bad_index`], the rest `Backend`.
pub(crate) fn index_read(key: &str, e: RedisError) -> StoreError {
    if wrong_type(&e) {
        bad_index(key, "value of another type")
    } else {
        backend(e)
    }
}
