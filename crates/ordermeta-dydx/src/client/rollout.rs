//! What a rollout needs beside the switch: the [`FailurePolicy`] of a client, its counts per
//! scope decision ([`RolloutStats`]), and the bounded memory of recent orders placed without
//! a record (so that `MetadataNotFound` can say why).

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backfill::WriteBehind;
use crate::error::NotRecorded;

/// How many recent orders placed without a record a client remembers, with why.
pub(crate) const REMEMBERED_DECISIONS: usize = 10_000;

/// What a client does when the write-ahead `pending` record of an order in scope cannot be
/// written because the store is unreachable (a backend error or a missed deadline; a
/// duplicate id or invalid metadata always refuses the placement).
///
/// The trade-off: **fail-closed** never leaves a live order without metadata, and stops
/// trading while the store is down; **fail-open** keeps trading through a store outage, and
/// the orders placed meanwhile are live without a record until the store comes back —
/// cancellable from their id alone meanwhile ([`ChainSettings::cancel_from_id`](crate::ChainSettings::cancel_from_id)),
/// but not by the kill switch, reconciliation or another process's supervisor, which work
/// from records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Nothing is broadcast: [`PlaceError::Storage`](crate::PlaceError::Storage). The default:
    /// no live order without metadata.
    #[default]
    FailClosed,
    /// Rollout mode: the order is broadcast anyway; the failure is counted
    /// (`ordermeta_fail_open_placements_total`) and logged with the order's identity, and the
    /// record is written after the broadcast, in a background task, once the store answers
    /// again — as `active` with the tx hash (or `pending` when the broadcast's outcome is
    /// unknown, for reconciliation), retried within [`Backfill`]. The order becomes
    /// cancellable by id from its record once the write lands; what cannot be written in
    /// time is reported as live without metadata
    /// ([`RolloutStats::live_without_metadata`], the [`Supervisor`](crate::Supervisor)).
    FailOpen(Backfill),
}

impl FailurePolicy {
    /// [`FailOpen`](Self::FailOpen) with the default [`Backfill`].
    pub fn fail_open() -> Self {
        FailurePolicy::FailOpen(Backfill::default())
    }

    /// Whether this is fail-open.
    pub fn is_fail_open(&self) -> bool {
        matches!(self, FailurePolicy::FailOpen(_))
    }
}

impl FromStr for FailurePolicy {
    type Err = String;

    /// `fail_closed` / `fail-closed` or `fail_open` / `fail-open` (any case), for a setting
    /// read from the environment.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "fail_closed" | "closed" => Ok(FailurePolicy::FailClosed),
            "fail_open" | "open" => Ok(FailurePolicy::fail_open()),
            _ => Err(format!(
                "failure policy {value:?}: expected fail_closed or fail_open"
            )),
        }
    }
}

/// How a fail-open client writes, after the broadcast, the records the store refused before
/// it: one background task per client retries them with exponential backoff (jittered, from
/// `min_delay` to `max_delay`), each store call bounded by the store's own deadline, until
/// `budget` has passed since the order was placed. An order still unwritten then is given up
/// (logged with its identity, counted as live without metadata) and handed to the
/// [`Supervisor`](crate::Supervisor), which tries once more at each tick until it is written
/// or its good-til has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backfill {
    /// Delay before the first retry after a failed round; doubled at each failed round.
    pub min_delay: Duration,
    /// Longest delay between two rounds.
    pub max_delay: Duration,
    /// How long after its placement an order's write is retried by the background task.
    pub budget: Duration,
    /// Most orders waiting to be written; beyond it a new one is given up at once (a store
    /// down for long under heavy trading must not grow memory without bound).
    pub capacity: usize,
}

impl Default for Backfill {
    /// 200 ms to 5 s between rounds, 10 minutes per order, 10 000 orders waiting.
    fn default() -> Self {
        Backfill {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            budget: Duration::from_secs(600),
            capacity: 10_000,
        }
    }
}

/// What a client's placements did with respect to the rollout, since it was built: one
/// counter per scope decision (the same as the `metrics` counters, but per client and
/// readable in code), and the fail-open write-behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RolloutStats {
    /// In scope, and the `pending` record was written before the broadcast.
    pub recorded: u64,
    /// Outside the rollout scope (or recording off): placed exactly as without ordermeta.
    pub out_of_scope: u64,
    /// In scope, but writing the `pending` record failed (either policy).
    pub recording_failed: u64,
    /// Of those, broadcast anyway under [`FailurePolicy::FailOpen`].
    pub fail_open: u64,
    /// Records written after the broadcast (fail-open), by the background task or the
    /// supervisor.
    pub written_late: u64,
    /// Records waiting to be written after the broadcast.
    pub write_pending: u64,
    /// Orders given up on: placed fail-open, their record still unwritten after the retry
    /// budget (the supervisor keeps trying; an order leaves this count when its record is
    /// written or its good-til passes).
    pub live_without_metadata: u64,
    /// Cancels sent without a record (from the order id alone, or `cancel_exact`).
    pub cancelled_without_record: u64,
}

/// A client's rollout state, shared with its write-behind task.
#[derive(Debug, Default)]
pub(crate) struct Rollout {
    pub(crate) counters: Counters,
    pub(crate) remembered: Remembered,
    pub(crate) late: WriteBehind,
}

impl Rollout {
    pub(crate) fn stats(&self) -> RolloutStats {
        let c = &self.counters;
        RolloutStats {
            recorded: Counters::read(&c.recorded),
            out_of_scope: Counters::read(&c.out_of_scope),
            recording_failed: Counters::read(&c.recording_failed),
            fail_open: Counters::read(&c.fail_open),
            written_late: Counters::read(&c.written_late),
            write_pending: self.late.pending(),
            live_without_metadata: self.late.live_without_metadata(),
            cancelled_without_record: Counters::read(&c.cancelled_without_record),
        }
    }
}

/// The counters behind [`RolloutStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) recorded: AtomicU64,
    pub(crate) out_of_scope: AtomicU64,
    pub(crate) recording_failed: AtomicU64,
    pub(crate) fail_open: AtomicU64,
    pub(crate) written_late: AtomicU64,
    pub(crate) cancelled_without_record: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The recent orders a client placed without a record, and why: bounded, oldest forgotten
/// first.
#[derive(Debug, Default)]
pub(crate) struct Remembered {
    inner: Mutex<RememberedInner>,
}

#[derive(Debug, Default)]
struct RememberedInner {
    why: HashMap<String, NotRecorded>,
    order: VecDeque<String>,
}

impl Remembered {
    pub(crate) fn remember(&self, order_id: &str, why: NotRecorded) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.why.insert(order_id.to_owned(), why).is_none() {
            inner.order.push_back(order_id.to_owned());
        }
        while inner.order.len() > REMEMBERED_DECISIONS {
            if let Some(old) = inner.order.pop_front() {
                inner.why.remove(&old);
            }
        }
    }

    pub(crate) fn recall(&self, order_id: &str) -> Option<NotRecorded> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.why.get(order_id).copied()
    }

    /// Forgets an order whose record has been written after all.
    pub(crate) fn forget(&self, order_id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.why.remove(order_id).is_some() {
            inner.order.retain(|o| o != order_id);
        }
    }
}
