//! Confirming stateful outcomes after their block: a stateful place or cancel that the node
//! accepted at CheckTx is executed in the next block, and can still fail there (the order
//! filled, was cancelled or removed in between). The client keeps the txs it sent and looks
//! their results up by hash ([`OrderGateway::tx_result`](crate::OrderGateway::tx_result)),
//! then records what the block decided.
//!
//! - A stateful **placement** is recorded `active` at CheckTx (so it can be cancelled at once:
//!   the chain accepts a cancel of an uncommitted placement); if its block fails it, the record
//!   becomes `failed` (`active -> failed`) with the chain's answer in its history.
//! - A stateful **cancel** keeps its record `cancelling` — the claim and its lease — until the
//!   block has executed it: then `cancelled` (with the cancel tx hash); `cancelled` too if the
//!   block found the order already gone (clob 3006/3010: filled, removed or expired — expired
//!   if the chain's clock says so; a fill feed may correct it to filled); otherwise the claim
//!   is given back (`active`, the failure in the history), because the order is still live.
//!
//! The list of unconfirmed txs lives in the client's memory. If the process dies before a
//! confirmation, nothing is lost that matters: a stateful cancel's claim runs out and the
//! [`Supervisor`](crate::Supervisor) re-sends it (the chain answers "does not exist" once the
//! first one took effect); a placement that failed in its block stays `active` until a cancel
//! (answered 3006) or its expiry settles it — it never was live.

use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use ordermeta_core::{GoodTil, OrderStatus, TransitionRequest};
use tokio::time::Instant;

use super::OrderMetaClient;
use super::metrics::{count_recording_failure, timed};
use crate::gateway::{ChainError, GatewayError, TxOutcome, codes};

/// Stateful txs confirmed after their block, by `kind` (`place`, `cancel`) and `outcome`
/// (`confirmed`, `failed` — failed in the block, the record corrected — and `gave_up`: no
/// result within [`ConfirmSettings::within`]).
const METRIC_CONFIRM: &str = "ordermeta_confirm_total";

/// Lookups of one confirmation pass run at once.
const CONCURRENT_LOOKUPS: usize = 16;

/// How stateful places and cancels are confirmed after their block
/// ([`ChainSettings::confirm`](crate::ChainSettings::confirm)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmSettings {
    /// Confirm at all (default on). Off, the node's CheckTx answer is final: a stateful cancel
    /// is recorded `cancelled` as soon as the node accepts it, and a placement that fails in
    /// its block stays `active` — for nodes without a tx index (`GetTx`).
    pub enabled: bool,
    /// How long after its broadcast a tx's result is looked for; then the client gives up
    /// (the record stays as it is: a cancel's claim runs out and is re-driven). Keep it below
    /// [`ChainSettings::claim_lease`](crate::ChainSettings::claim_lease). Default 20 s.
    pub within: Duration,
    /// Pause between two looks while waiting ([`OrderMetaClient::confirm_all`],
    /// [`OrderMetaClient::confirm`]). Default 250 ms (blocks come every 0.5–1.1 s).
    pub poll: Duration,
}

impl Default for ConfirmSettings {
    fn default() -> Self {
        ConfirmSettings {
            enabled: true,
            within: Duration::from_secs(20),
            poll: Duration::from_millis(250),
        }
    }
}

/// What confirming did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfirmReport {
    /// Txs whose block executed them successfully (cancels now recorded `cancelled`).
    pub confirmed: usize,
    /// Txs that failed in their block; their records now say what the chain decided.
    pub failed: usize,
    /// Txs with no result within [`ConfirmSettings::within`], given up.
    pub gave_up: usize,
    /// Txs still waiting for their block (or whose lookup failed; tried again later).
    pub waiting: usize,
}

impl std::ops::AddAssign for ConfirmReport {
    fn add_assign(&mut self, o: Self) {
        self.confirmed += o.confirmed;
        self.failed += o.failed;
        self.gave_up += o.gave_up;
        self.waiting = o.waiting;
    }
}

/// What an unconfirmed tx did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxKind {
    Place,
    Cancel,
}

impl TxKind {
    const fn as_str(self) -> &'static str {
        match self {
            TxKind::Place => "place",
            TxKind::Cancel => "cancel",
        }
    }
}

/// A stateful tx the node accepted at CheckTx, waiting for its block's verdict.
#[derive(Clone, Debug)]
pub(crate) struct Unconfirmed {
    tx_hash: String,
    order_id: String,
    kind: TxKind,
    good_til: GoodTil,
    since: Instant,
}

/// The client's unconfirmed stateful txs.
#[derive(Debug, Default)]
pub(crate) struct Confirmations {
    waiting: Mutex<Vec<Unconfirmed>>,
}

impl Confirmations {
    fn push(&self, tx: Unconfirmed) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.push(tx);
        }
    }

    fn take_all(&self) -> Vec<Unconfirmed> {
        self.waiting
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    fn take(&self, tx_hash: &str) -> Option<Unconfirmed> {
        let mut waiting = self.waiting.lock().ok()?;
        let at = waiting.iter().position(|t| t.tx_hash == tx_hash)?;
        Some(waiting.swap_remove(at))
    }

    fn put_back(&self, txs: impl IntoIterator<Item = Unconfirmed>) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.extend(txs);
        }
    }

    fn len(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }
}

/// How one look at a tx ended.
enum Look {
    Settled { failed: bool },
    Waiting(Unconfirmed),
    GaveUp,
}

impl OrderMetaClient {
    /// Whether stateful outcomes are confirmed after their block.
    pub(super) fn confirms(&self) -> bool {
        self.settings.confirm.enabled
    }

    /// Remembers a stateful tx the node accepted, to confirm it after its block.
    pub(super) fn await_block(
        &self,
        kind: TxKind,
        order_id: &str,
        good_til: GoodTil,
        tx_hash: &str,
    ) {
        self.confirmations.push(Unconfirmed {
            tx_hash: tx_hash.to_owned(),
            order_id: order_id.to_owned(),
            kind,
            good_til,
            since: Instant::now(),
        });
    }

    /// How many stateful txs of this client wait for confirmation.
    pub fn unconfirmed(&self) -> usize {
        self.confirmations.len()
    }

    /// One confirmation pass: looks up the result of every stateful tx this client sent and
    /// has not confirmed yet (a few lookups at a time, each within the gateway's deadline),
    /// records what each block decided, and gives up on those older than
    /// [`ConfirmSettings::within`]. Txs not in a block yet stay for the next pass. The
    /// [`Supervisor`](crate::Supervisor) runs one at every tick.
    pub async fn confirm_outstanding(&self) -> ConfirmReport {
        let txs = self.confirmations.take_all();
        let looks: Vec<Look> = futures::stream::iter(txs)
            .map(|tx| self.look(tx))
            .buffer_unordered(CONCURRENT_LOOKUPS)
            .collect()
            .await;
        let mut report = ConfirmReport::default();
        let mut still = Vec::new();
        for look in looks {
            match look {
                Look::Settled { failed: false } => report.confirmed += 1,
                Look::Settled { failed: true } => report.failed += 1,
                Look::GaveUp => report.gave_up += 1,
                Look::Waiting(tx) => still.push(tx),
            }
        }
        self.confirmations.put_back(still);
        report.waiting = self.confirmations.len();
        report
    }

    /// Runs [confirmation passes](Self::confirm_outstanding) every
    /// [`ConfirmSettings::poll`] until nothing waits or `within` has passed; returns the
    /// totals. For a caller that wants its stateful cancels settled before it goes on (a
    /// shutdown, a test).
    pub async fn confirm_all(&self, within: Duration) -> ConfirmReport {
        let deadline = Instant::now() + within;
        let mut total = ConfirmReport::default();
        loop {
            total += self.confirm_outstanding().await;
            if total.waiting == 0 || Instant::now() + self.settings.confirm.poll > deadline {
                return total;
            }
            tokio::time::sleep(self.settings.confirm.poll).await;
        }
    }

    /// Waits (at most `within`) for the block result of the tx `tx_hash` — a placement or
    /// cancel this client sent — and records it like a confirmation pass. `None` if no block
    /// included it in time (or the node cannot say); the tx then stays with the unconfirmed
    /// ones.
    pub async fn confirm(&self, tx_hash: &str, within: Duration) -> Option<TxOutcome> {
        let deadline = Instant::now() + within;
        loop {
            match self.gateway.tx_result(tx_hash).await {
                Ok(Some(outcome)) => {
                    if let Some(tx) = self.confirmations.take(tx_hash) {
                        self.apply(&tx, Some(&outcome)).await;
                    }
                    return Some(outcome);
                }
                Err(GatewayError::Unsupported { .. }) => return None,
                Ok(None) | Err(_) => {}
            }
            if Instant::now() + self.settings.confirm.poll > deadline {
                return None;
            }
            tokio::time::sleep(self.settings.confirm.poll).await;
        }
    }

    /// Looks one tx up; settles it if its block has run.
    async fn look(&self, tx: Unconfirmed) -> Look {
        match self.gateway.tx_result(&tx.tx_hash).await {
            Ok(Some(outcome)) => {
                let failed = outcome.result.is_err();
                self.apply(&tx, Some(&outcome)).await;
                Look::Settled { failed }
            }
            // A gateway that cannot look txs up: its CheckTx answer is final.
            Err(GatewayError::Unsupported { .. }) => {
                self.apply(&tx, None).await;
                Look::Settled { failed: false }
            }
            Ok(None) | Err(_) if tx.since.elapsed() < self.settings.confirm.within => {
                Look::Waiting(tx)
            }
            Ok(None) | Err(_) => {
                ::metrics::counter!(METRIC_CONFIRM, "kind" => tx.kind.as_str(), "outcome" => "gave_up")
                    .increment(1);
                tracing::warn!(
                    order_id = tx.order_id,
                    tx_hash = tx.tx_hash,
                    kind = tx.kind.as_str(),
                    "no block result within the confirmation window; left as recorded"
                );
                Look::GaveUp
            }
        }
    }

    /// Records what the block decided about `tx` (`None`: take the CheckTx answer as final).
    async fn apply(&self, tx: &Unconfirmed, outcome: Option<&TxOutcome>) {
        let order_id = tx.order_id.as_str();
        let failure = outcome.and_then(|o| o.result.as_ref().err());
        let label = if failure.is_some() {
            "failed"
        } else {
            "confirmed"
        };
        ::metrics::counter!(METRIC_CONFIRM, "kind" => tx.kind.as_str(), "outcome" => label)
            .increment(1);
        let height = outcome.map_or(0, |o| o.height);
        match (tx.kind, failure) {
            (TxKind::Place, None) => {
                tracing::debug!(
                    order_id,
                    tx_hash = tx.tx_hash,
                    height,
                    "placement confirmed"
                );
            }
            (TxKind::Place, Some(e)) => {
                // The placement's queued `active` write first, so the history reads in order.
                self.active.finisher.settle(order_id).await;
                tracing::warn!(order_id, tx_hash = tx.tx_hash, height, error = %e, "placement failed in its block");
                // Claimed meanwhile: the claimant's cancel finds the order gone and settles it.
                let req = TransitionRequest::new(
                    order_id,
                    &[OrderStatus::Pending, OrderStatus::Active],
                    OrderStatus::Failed,
                )
                .reason(format!("placement failed in block {height}: {e}"));
                if let Err(err) = timed("transition", self.store.transition(&req)).await
                    && err.current_status().is_none()
                {
                    count_recording_failure();
                    tracing::error!(order_id, error = %err, "could not record the failed placement");
                }
            }
            (TxKind::Cancel, None) => {
                let reason = match outcome {
                    Some(_) => format!("cancel executed in block {height}"),
                    None => "cancel accepted".to_owned(),
                };
                self.settle(
                    order_id,
                    &[OrderStatus::Cancelling],
                    OrderStatus::Cancelled,
                    &reason,
                    Some(&tx.tx_hash),
                )
                .await;
            }
            (TxKind::Cancel, Some(e)) if order_gone(e) => {
                // The indexer, if attached, says what became of it; else the clock decides.
                if self.resolve_gone(order_id).await.is_some() {
                    return;
                }
                let expired = match self.gateway.clock().await {
                    Ok(clock) => tx
                        .good_til
                        .is_expired(Some(clock.height), Some(clock.block_time)),
                    Err(_) => false,
                };
                let to = if expired {
                    OrderStatus::Expired
                } else {
                    OrderStatus::Cancelled
                };
                let reason = format!("cancel failed in block {height}, the order is gone: {e}");
                self.settle(order_id, &[OrderStatus::Cancelling], to, &reason, None)
                    .await;
            }
            (TxKind::Cancel, Some(e)) => {
                tracing::warn!(order_id, tx_hash = tx.tx_hash, height, error = %e, "cancel failed in its block; the order is live");
                let reason = format!("cancel failed in block {height}: {e}");
                self.release(order_id, &reason).await;
            }
        }
    }
}

/// Whether a cancel's failure in its block means the order no longer exists: clob 3006 (does
/// not exist: filled, expired or cancelled before) or 3010 (fully filled or removed since the
/// previous block).
fn order_gone(e: &ChainError) -> bool {
    e.is_clob(codes::STATEFUL_ORDER_DOES_NOT_EXIST)
        || e.is_clob(codes::STATEFUL_CANCEL_FAILED_ORDER_REMOVED)
}
