//! [`Supervisor`]: the background task that brings every order of a signer to its true
//! status after crashes, hangs and the passing of time — expiry by the chain's clock,
//! reconciliation of old `pending` records, re-driving of stale claims, purging of old
//! terminal records (the seed's "automatic cleanup" and "data retention policies").

use std::ops::AddAssign;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ordermeta_core::{DEFAULT_LEASE, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, now};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::client::OrderMetaClient;
use crate::indexer::{IndexerApi, IndexerSync, SyncConfig, SyncReport};

/// Supervisor steps run, by `step` and `outcome` (`ok` or `error`).
const METRIC_STEPS: &str = "ordermeta_supervisor_steps_total";
/// Orders a supervisor step settled, by `step` and `outcome` (`expired`, `cancelled`,
/// `unresolved`, `failed`, `purged`).
const METRIC_ORDERS: &str = "ordermeta_supervisor_orders_total";
/// Stale claims found by the last tick's step (one page).
const METRIC_STALE_CLAIMS: &str = "ordermeta_supervisor_stale_claims";
/// `pending` records older than the threshold found by the last tick's step (one page).
const METRIC_OLD_PENDING: &str = "ordermeta_supervisor_old_pending";
/// Orders placed fail-open whose record is still unwritten, as of the last tick.
const METRIC_LIVE_WITHOUT_METADATA: &str = "ordermeta_live_without_metadata";
/// Duration of a whole tick.
const METRIC_TICK_SECONDS: &str = "ordermeta_supervisor_tick_seconds";

/// What a [`Supervisor`] does, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Time between two ticks. Default 5 s.
    pub interval: Duration,
    /// A `pending` record is reconciled once it is this old. It must exceed the gateway's
    /// call deadline so that a placement still in flight is never cancelled from under
    /// itself. Default [`DEFAULT_LEASE`] (30 s).
    pub pending_after: Duration,
    /// Most records one step handles per tick (one store page; clamped to
    /// `1..=`[`MAX_PAGE_SIZE`]). Default [`DEFAULT_PAGE_SIZE`] (100).
    pub batch: u32,
    /// Terminal records (cancelled, expired, filled, failed) not updated for this long are
    /// deleted. `None` (the default) keeps them for ever.
    pub retention: Option<Duration>,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            interval: Duration::from_secs(5),
            pending_after: DEFAULT_LEASE,
            batch: DEFAULT_PAGE_SIZE,
            retention: None,
        }
    }
}

/// What a [`Supervisor`] did: one tick's counts, or the totals of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SupervisorReport {
    /// Ticks run.
    pub ticks: u64,
    /// Open orders marked expired by the expiry sweep.
    pub expired: u64,
    /// Old `pending` records found.
    pub pending_found: u64,
    /// Of those, cancelled on chain (or found gone).
    pub pending_cancelled: u64,
    /// Of those, marked expired.
    pub pending_expired: u64,
    /// Of those, not settled (node unreachable, refusal); retried at a later tick.
    pub pending_unresolved: u64,
    /// Stale claims (`cancelling` with a run-out lease) found.
    pub stale_found: u64,
    /// Of those, re-claimed and settled cancelled.
    pub stale_cancelled: u64,
    /// Of those, settled expired.
    pub stale_expired: u64,
    /// Of those, re-claimed but not settled (the claim was given back); retried later.
    pub stale_failed: u64,
    /// Terminal records deleted by retention.
    pub purged: u64,
    /// Records of fail-open placements the client's write-behind had given up on, written
    /// by the supervisor.
    pub late_written: u64,
    /// Orders placed fail-open whose record is still unwritten after the last tick: live
    /// without metadata (a gauge, not a total: the value of the last tick). They stay
    /// cancellable from their id; the supervisor keeps trying to write them until their
    /// good-til passes.
    pub live_without_metadata: u64,
    /// Stateful places and cancels of the client confirmed by their block's result.
    pub confirmed: u64,
    /// Of those looked up, failed in their block: their records corrected to what the
    /// chain decided (a placement `failed`; a cancel's claim given back, or the order gone).
    pub confirm_failed: u64,
    /// Stateful txs given up on: no block result within
    /// [`ConfirmSettings::within`](crate::ConfirmSettings::within).
    pub confirm_gave_up: u64,
    /// Steps that failed as a whole (node or store unreachable); retried at the next tick.
    pub step_errors: u64,
    /// What the [`IndexerSync`] did, when the supervisor runs one
    /// ([`Supervisor::spawn_with_indexer`]); filled in by [`Supervisor::stop`].
    pub indexer: SyncReport,
}

impl AddAssign for SupervisorReport {
    fn add_assign(&mut self, o: Self) {
        self.ticks += o.ticks;
        self.expired += o.expired;
        self.pending_found += o.pending_found;
        self.pending_cancelled += o.pending_cancelled;
        self.pending_expired += o.pending_expired;
        self.pending_unresolved += o.pending_unresolved;
        self.stale_found += o.stale_found;
        self.stale_cancelled += o.stale_cancelled;
        self.stale_expired += o.stale_expired;
        self.stale_failed += o.stale_failed;
        self.purged += o.purged;
        self.late_written += o.late_written;
        // A level, not a count: the latest tick's.
        self.live_without_metadata = o.live_without_metadata;
        self.confirmed += o.confirmed;
        self.confirm_failed += o.confirm_failed;
        self.confirm_gave_up += o.confirm_gave_up;
        self.step_errors += o.step_errors;
        self.indexer += o.indexer;
    }
}

/// The recovery supervisor of one signer: spawn it beside the bot (or alone, in a fresh
/// process after a crash), [`stop`](Self::stop) it, or drop it to stop it after the step in
/// progress.
///
/// Every [`interval`](SupervisorConfig::interval) it runs, in this order:
///
/// 0. **confirm** — looks up the block results of the stateful places and cancels this
///    client sent and records what each block decided
///    ([`OrderMetaClient::confirm_outstanding`]): a placement the block failed becomes
///    `failed`; a cancel's claim becomes `cancelled`, or is given back if the block failed
///    it. First, so that the later steps see settled records.
/// 1. **expire** — reads the chain's height and block time and marks every open order whose
///    good-til has passed as expired ([`OrderMetaClient::sweep_expired`]; one store
///    statement, nothing is loaded). First, so the later steps send no cancel for them.
/// 2. **reconcile** — `pending` records older than
///    [`pending_after`](SupervisorConfig::pending_after) (a crash or a timed-out placement
///    left their outcome unknown) are claimed and cancelled on chain, or marked expired
///    ([`OrderMetaClient::reconcile_pending`], one page).
/// 3. **stale claims** — `cancelling` records whose lease has run out (their canceller died
///    between claim and outcome) are re-claimed and their cancel re-sent with the stored id
///    and good-til; the chain's "cancel already exists" / "does not exist" answers settle
///    them.
/// 4. **late records** — only when the client placed orders
///    [fail-open](crate::FailurePolicy::FailOpen) whose record its write-behind gave up on:
///    tries to write them again (one page), drops those whose good-til has passed, and
///    reports the rest as [live without
///    metadata](SupervisorReport::live_without_metadata) (gauge
///    `ordermeta_live_without_metadata`).
/// 5. **purge** — only with a [`retention`](SupervisorConfig::retention): deletes terminal
///    records older than it (store-wide, one statement).
///
/// Steps 2 and 3 handle at most [`batch`](SupervisorConfig::batch) records per tick and go
/// on from a cursor at the next tick (wrapping around at the end), so a large store is
/// worked through in bounded pieces. Several supervisors — in one process or many, on one
/// store — may run at once: every order is taken by an atomic claim that exactly one of them
/// wins, so a cancel is never sent twice by them (only a lease that runs out lets another
/// take over). A failed step is logged, counted and retried at the next tick; the task never
/// panics the runtime.
///
/// Metrics: `ordermeta_supervisor_steps_total{step,outcome}`,
/// `ordermeta_supervisor_orders_total{step,outcome}`, gauges
/// `ordermeta_supervisor_stale_claims` and `ordermeta_supervisor_old_pending` (found by the
/// last tick) and `ordermeta_live_without_metadata`, histogram `ordermeta_supervisor_tick_seconds`. Tracing: a span
/// `ordermeta_supervisor_tick` per tick and `ordermeta_supervisor_step` per step.
///
/// With [`spawn_with_indexer`](Self::spawn_with_indexer) it also runs an [`IndexerSync`]
/// (fills, confirmed cancels, backfill of orders without a record) under the same handle:
/// [`stop`](Self::stop) stops both.
#[derive(Debug)]
pub struct Supervisor {
    stop: watch::Sender<bool>,
    task: JoinHandle<SupervisorReport>,
    sync: Option<IndexerSync>,
}

impl Supervisor {
    /// Spawns the supervisor of `client`'s signer on the current tokio runtime. The first
    /// tick runs at once.
    pub fn spawn(client: Arc<OrderMetaClient>, config: SupervisorConfig) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut total = SupervisorReport::default();
            let mut cursors = Cursors::default();
            let mut ticker = tokio::time::interval(config.interval.max(Duration::from_millis(1)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => break,
                }
                total += tick(&client, &config, &mut cursors, Some(&stopped)).await;
                if stop_requested(&stopped) {
                    break;
                }
            }
            total
        });
        Supervisor {
            stop,
            task,
            sync: None,
        }
    }

    /// Spawns the supervisor and an [`IndexerSync`] of the same signer over `indexer`, both
    /// stopped by one [`stop`](Self::stop). For the indexer to also settle stateful cancels
    /// answered "does not exist" and `pending` records, attach it to the client too
    /// ([`OrderMetaClient::with_indexer`]).
    pub fn spawn_with_indexer(
        client: Arc<OrderMetaClient>,
        config: SupervisorConfig,
        indexer: Arc<dyn IndexerApi>,
        sync: SyncConfig,
    ) -> Self {
        let sync = IndexerSync::spawn(client.clone(), indexer, sync);
        Supervisor {
            sync: Some(sync),
            ..Self::spawn(client, config)
        }
    }

    /// What the indexer sync did so far, if this supervisor runs one.
    pub fn indexer_report(&self) -> Option<SyncReport> {
        self.sync.as_ref().map(IndexerSync::report)
    }

    /// Runs one tick now, from the start of the store (no cursor), and returns its counts:
    /// for a one-shot recovery run (e.g. from a cron job or an operator's command).
    pub async fn run_once(client: &OrderMetaClient, config: &SupervisorConfig) -> SupervisorReport {
        tick(client, config, &mut Cursors::default(), None).await
    }

    /// Stops the task after the step in progress and returns the totals of its run.
    pub async fn stop(self) -> SupervisorReport {
        let _ = self.stop.send(true);
        let mut report = self.task.await.unwrap_or_default();
        if let Some(sync) = self.sync {
            report.indexer = sync.stop().await;
        }
        report
    }
}

/// Where steps 2 and 3 go on at the next tick.
#[derive(Debug, Default)]
struct Cursors {
    pending: Option<String>,
    stale: Option<String>,
}

/// The steps, in the order a tick runs them.
#[derive(Clone, Copy, Debug)]
enum Step {
    Confirm,
    Expire,
    Reconcile,
    StaleClaims,
    LateRecords,
    Purge,
}

impl Step {
    const ALL: [Step; 6] = [
        Step::Confirm,
        Step::Expire,
        Step::Reconcile,
        Step::StaleClaims,
        Step::LateRecords,
        Step::Purge,
    ];

    const fn as_str(self) -> &'static str {
        match self {
            Step::Confirm => "confirm",
            Step::Expire => "expire",
            Step::Reconcile => "reconcile",
            Step::StaleClaims => "stale_claims",
            Step::LateRecords => "late_records",
            Step::Purge => "purge",
        }
    }
}

/// Whether stop was asked for (or the handle dropped).
fn stop_requested(stopped: &watch::Receiver<bool>) -> bool {
    *stopped.borrow() || stopped.has_changed().is_err()
}

async fn tick(
    client: &OrderMetaClient,
    config: &SupervisorConfig,
    cursors: &mut Cursors,
    stopped: Option<&watch::Receiver<bool>>,
) -> SupervisorReport {
    let span =
        tracing::info_span!("ordermeta_supervisor_tick", signer = %client.gateway().signer());
    async {
        let start = Instant::now();
        let mut report = SupervisorReport {
            ticks: 1,
            ..SupervisorReport::default()
        };
        for step in Step::ALL {
            if stopped.is_some_and(stop_requested) {
                break;
            }
            let span = tracing::info_span!("ordermeta_supervisor_step", step = step.as_str());
            let ok = run_step(step, client, config, cursors, &mut report)
                .instrument(span)
                .await;
            let outcome = if ok { "ok" } else { "error" };
            ::metrics::counter!(METRIC_STEPS, "step" => step.as_str(), "outcome" => outcome)
                .increment(1);
            if !ok {
                report.step_errors += 1;
            }
        }
        ::metrics::histogram!(METRIC_TICK_SECONDS).record(start.elapsed().as_secs_f64());
        report
    }
    .instrument(span)
    .await
}

/// Runs one step, adding its counts to `report`; false if it failed as a whole.
async fn run_step(
    step: Step,
    client: &OrderMetaClient,
    config: &SupervisorConfig,
    cursors: &mut Cursors,
    report: &mut SupervisorReport,
) -> bool {
    let batch = config.batch.clamp(1, MAX_PAGE_SIZE);
    let name = step.as_str();
    let result = match step {
        // In memory and the node only: never fails as a whole (a lookup that fails is
        // tried again at the next tick).
        Step::Confirm => {
            let r = client.confirm_outstanding().await;
            report.confirmed += r.confirmed as u64;
            report.confirm_failed += r.failed as u64;
            report.confirm_gave_up += r.gave_up as u64;
            count_orders(name, "confirmed", r.confirmed as u64);
            count_orders(name, "failed", r.failed as u64);
            count_orders(name, "gave_up", r.gave_up as u64);
            Ok(())
        }
        Step::Expire => client.sweep_expired().await.map(|n| {
            report.expired += n;
            count_orders(name, "expired", n);
        }),
        Step::Reconcile => client
            .reconcile_pending_page(config.pending_after, cursors.pending.take(), batch)
            .await
            .map(|page| {
                cursors.pending = page.next;
                ::metrics::gauge!(METRIC_OLD_PENDING).set(page.found as f64);
                let r = page.report;
                report.pending_found += page.found as u64;
                report.pending_cancelled += r.cancelled as u64;
                report.pending_expired += r.expired as u64;
                report.pending_unresolved += r.unresolved as u64;
                count_orders(name, "cancelled", r.cancelled as u64);
                count_orders(name, "expired", r.expired as u64);
                count_orders(name, "unresolved", r.unresolved as u64);
            }),
        Step::StaleClaims => client
            .redrive_stale_page(cursors.stale.take(), batch)
            .await
            .map(|page| {
                cursors.stale = page.next;
                ::metrics::gauge!(METRIC_STALE_CLAIMS).set(page.found as f64);
                if page.found > 0 {
                    tracing::warn!(found = page.found, "stale claims re-driven");
                }
                report.stale_found += page.found as u64;
                report.stale_cancelled += page.cancelled as u64;
                report.stale_expired += page.expired as u64;
                report.stale_failed += page.failed as u64;
                count_orders(name, "cancelled", page.cancelled as u64);
                count_orders(name, "expired", page.expired as u64);
                count_orders(name, "failed", page.failed as u64);
            }),
        Step::LateRecords => client.retry_unwritten(batch).await.map(|step| {
            report.late_written += step.written;
            report.live_without_metadata = step.live_without_metadata;
            ::metrics::gauge!(METRIC_LIVE_WITHOUT_METADATA).set(step.live_without_metadata as f64);
            count_orders(name, "written", step.written);
            count_orders(name, "expired", step.expired);
            if step.live_without_metadata > 0 {
                tracing::warn!(
                    live_without_metadata = step.live_without_metadata,
                    "orders placed fail-open are live without metadata (cancellable from their id)"
                );
            }
        }),
        Step::Purge => match config.retention {
            None => return true,
            Some(retention) => {
                let older_than = chrono::Duration::from_std(retention)
                    .ok()
                    .and_then(|d| now().checked_sub_signed(d));
                // A retention longer than the calendar reaches back keeps everything.
                let Some(older_than) = older_than else {
                    return true;
                };
                client
                    .store()
                    .purge(older_than)
                    .await
                    .map(|n| {
                        report.purged += n;
                        count_orders(name, "purged", n);
                    })
                    .map_err(crate::SweepError::Store)
            }
        },
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(step = name, error = %e, "supervisor step failed; retrying next tick");
            false
        }
    }
}

fn count_orders(step: &'static str, outcome: &'static str, n: u64) {
    if n > 0 {
        ::metrics::counter!(METRIC_ORDERS, "step" => step, "outcome" => outcome).increment(n);
    }
}
