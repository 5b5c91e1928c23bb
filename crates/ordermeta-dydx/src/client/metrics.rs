//! The client's metric names and the helpers that emit them, so every operation counts the
//! same way. (`::metrics` is the `metrics` crate; this module shadows its name.)

use std::time::Instant;

use ordermeta_core::StoreError;

/// Cancel attempts, by `outcome` (`cancelled` or a `CancelErrorKind` label).
const METRIC_CANCEL: &str = "ordermeta_cancel_total";
/// Placements, by `outcome` (`placed`, `unrecorded`, `rejected`, `unknown`).
const METRIC_PLACE: &str = "ordermeta_place_total";
/// Store writes that failed where the chain outcome was already decided.
const METRIC_RECORDING_FAILURES: &str = "ordermeta_recording_failures_total";
/// Cancels re-sent after a transport failure, by `operation` (`cancel`, `batch_cancel`).
const METRIC_CANCEL_RETRIES: &str = "ordermeta_cancel_retries_total";
/// Placements by rollout scope decision: `recorded`, `out_of_scope`, `recording_failed`.
const METRIC_DECISIONS: &str = "ordermeta_recording_decisions_total";
/// Placements broadcast although their `pending` record failed (fail-open).
const METRIC_FAIL_OPEN: &str = "ordermeta_fail_open_placements_total";
/// Records written after the broadcast (fail-open), by `outcome`: `written`, `given_up`.
const METRIC_LATE_WRITES: &str = "ordermeta_late_records_total";
/// Records waiting to be written after their broadcast.
const METRIC_LATE_PENDING: &str = "ordermeta_late_records_pending";
/// Orders placed fail-open whose record could not be written: live without metadata.
const METRIC_LIVE_WITHOUT_METADATA: &str = "ordermeta_live_without_metadata";
/// Cancels sent without a record, by `path`: `order_id` (parsed from the id), `exact`.
const METRIC_CANCEL_WITHOUT_RECORD: &str = "ordermeta_cancel_without_record_total";
/// Accepted placements' `active` writes, by `outcome`: `background` (written off the
/// caller's path: by the writer, or by an operation on the order that ran it first),
/// `inline` (on the caller's path: `ActiveWrite::Inline`, or the queue was full or closed),
/// `raced` (a claim or the chain's outcome reached the record first), `failed` (left
/// `pending` for reconciliation).
const METRIC_ACTIVE_WRITES: &str = "ordermeta_active_writes_total";
/// `active` writes waiting for (or run by) the background writer.
const METRIC_ACTIVE_QUEUED: &str = "ordermeta_active_writes_queued";
/// Store call latency, by `op`.
const METRIC_STORE_LATENCY: &str = "ordermeta_store_seconds";

/// Counts one cancel attempt.
pub(super) fn count_cancel(outcome: &'static str) {
    ::metrics::counter!(METRIC_CANCEL, "outcome" => outcome).increment(1);
}

/// Counts one placement.
pub(super) fn count_place(outcome: &'static str) {
    ::metrics::counter!(METRIC_PLACE, "outcome" => outcome).increment(1);
}

/// Counts one store write that failed.
pub(super) fn count_recording_failure() {
    ::metrics::counter!(METRIC_RECORDING_FAILURES).increment(1);
}

/// Counts one placement's rollout scope decision.
pub(super) fn count_decision(decision: &'static str) {
    ::metrics::counter!(METRIC_DECISIONS, "decision" => decision).increment(1);
}

/// Counts one placement broadcast without its record (fail-open).
pub(super) fn count_fail_open() {
    ::metrics::counter!(METRIC_FAIL_OPEN).increment(1);
}

/// Counts one late record written or given up.
pub(super) fn count_late_write(outcome: &'static str) {
    ::metrics::counter!(METRIC_LATE_WRITES, "outcome" => outcome).increment(1);
}

/// Publishes the write-behind's gauges.
pub(super) fn set_late_gauges(pending: u64, live_without_metadata: u64) {
    ::metrics::gauge!(METRIC_LATE_PENDING).set(pending as f64);
    ::metrics::gauge!(METRIC_LIVE_WITHOUT_METADATA).set(live_without_metadata as f64);
}

/// Counts one cancel sent without a record.
pub(super) fn count_cancel_without_record(path: &'static str) {
    ::metrics::counter!(METRIC_CANCEL_WITHOUT_RECORD, "path" => path).increment(1);
}

/// Counts one re-send of a cancel.
pub(super) fn count_cancel_retry(operation: &'static str) {
    ::metrics::counter!(METRIC_CANCEL_RETRIES, "operation" => operation).increment(1);
}

/// Counts one `active` write.
pub(super) fn count_active_write(outcome: &'static str) {
    ::metrics::counter!(METRIC_ACTIVE_WRITES, "outcome" => outcome).increment(1);
}

/// Publishes how many `active` writes wait.
pub(super) fn set_active_queued(queued: usize) {
    ::metrics::gauge!(METRIC_ACTIVE_QUEUED).set(queued as f64);
}

/// Awaits a store call, recording its latency under `op`.
pub(super) async fn timed<T>(
    op: &'static str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let start = Instant::now();
    let out = fut.await;
    ::metrics::histogram!(METRIC_STORE_LATENCY, "op" => op).record(start.elapsed().as_secs_f64());
    out
}
