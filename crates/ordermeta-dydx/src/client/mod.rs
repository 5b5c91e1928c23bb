//! [`OrderMetaClient`]: write-ahead placement and cancel-by-id over any store.
//!
//! One file per operation: `place`, `cancel` (with the helpers that claim an order and
//! record a cancel's outcome), `unrecorded` (cancels without a record: from the order id,
//! `cancel_exact`), `cancel_all`, `recovery` (reconciliation, stale claims, expiry, fills);
//! `rollout` is the failure policy, the per-client counts and the memory of unrecorded
//! orders, `backfill` the fail-open write-behind; `retry` is the cancels' bounded backoff;
//! `metrics` names and emits the counters all of them share; `lookup` finds and cancels
//! orders by the bot's own names (client id, label) and applies the client-id reuse policy;
//! `resolve` asks the indexer what became of an order instead of guessing; `clock` reads the
//! chain's clock and good-til values for a bot, `simple` the short ways in (`connect`,
//! `place`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use ordermeta_core::{DEFAULT_LEASE, MetadataStore, OrderMetadata, OrderStatus, StoreError};

use crate::gateway::OrderGateway;
use crate::indexer::IndexerApi;
use crate::recording::RecordingSwitch;

mod active;
mod backfill;
mod cancel;
mod cancel_all;
mod clock;
mod confirm;
mod lookup;
mod metrics;
mod place;
mod recovery;
mod resolve;
mod retry;
mod rollout;
mod simple;
#[cfg(test)]
mod tests;
mod unrecorded;

pub use active::{ActiveWrite, DEFAULT_ACTIVE_WRITE_QUEUE};
pub use cancel::{CancelPath, Cancelled};
pub use cancel_all::{CancelAllReport, CancelScope, MAX_BATCH_CANCEL_IDS};
pub use clock::{ChainTime, GoodTilError, STATEFUL_ORDER_TIME_WINDOW};
pub use confirm::{ConfirmReport, ConfirmSettings};
pub use lookup::{ClientIdReuse, PlaceOptions};
pub use place::{OrderDetails, Placed, RecordOutcome};
pub use recovery::ReconcileReport;
pub use retry::CancelRetry;
pub use rollout::{Backfill, FailurePolicy, RolloutStats};
pub use simple::ConnectError;

use active::ActiveWrites;
use confirm::Confirmations;
use rollout::Rollout;

/// Chain parameters and client limits.
#[derive(Clone, Debug)]
pub struct ChainSettings {
    /// `ShortBlockWindow`: how far ahead of the next block a short-term good-til may be.
    /// 40 from protocol v9.5.0 on (20 before; crate `dydx` 0.3 still assumes 20).
    pub short_block_window: u32,
    /// Cancels per second this client sends at most; more get
    /// [`CancelError::RateLimited`](crate::CancelError::RateLimited) without touching the
    /// chain.
    pub cancel_rate_per_second: NonZeroU32,
    /// How long a cancel claim (the `cancelling` record's [`Lease`](ordermeta_core::Lease)) lasts.
    /// Once it has run out, another canceller — another process, or the
    /// [`Supervisor`](crate::Supervisor) — may re-claim the order and re-send its cancel. It must
    /// outlast one cancel: the retry budget, one call deadline and the write of the outcome.
    /// Default [`DEFAULT_LEASE`] (30 s).
    pub claim_lease: Duration,
    /// How cancels are re-sent after a transport failure. Default [`CancelRetry::default`].
    pub cancel_retry: CancelRetry,
    /// What placement does when the `pending` record of an order in scope cannot be written
    /// because the store is unreachable. Default [`FailurePolicy::FailClosed`]: nothing is
    /// broadcast. See [`FailurePolicy`] for the trade-off.
    pub failure_policy: FailurePolicy,
    /// Whether [`cancel_order`](OrderMetaClient::cancel_order) cancels an order that has no
    /// record from its id alone (the id carries the chain's `OrderId` and the good-til;
    /// ownership is still checked against the signer and the chain's answer decides). On by
    /// default, so that no rollback — recording off, an order out of scope, a lost store —
    /// strands a live order. Off, such a cancel answers
    /// [`MetadataNotFound`](crate::CancelError::MetadataNotFound).
    pub cancel_from_id: bool,
    /// How stateful places and cancels are confirmed after their block (the node accepts
    /// them at CheckTx; the block can still fail them). Default [`ConfirmSettings::default`]:
    /// on, within 20 s.
    pub confirm: ConfirmSettings,
    /// What placing an order does when its client id names a record that is still open.
    /// Default [`ClientIdReuse::MarkReplaced`]; per placement:
    /// [`PlaceOptions::client_id_reuse`].
    pub client_id_reuse: ClientIdReuse,
    /// Where an accepted placement's `active` write runs: [`ActiveWrite::Background`] (the
    /// default: off the caller's path) or [`ActiveWrite::Inline`]; per placement:
    /// [`PlaceOptions::active_write`].
    pub active_write: ActiveWrite,
    /// Most `active` writes waiting for the background writer; with the queue full a
    /// placement writes its own inline. Default [`DEFAULT_ACTIVE_WRITE_QUEUE`].
    pub active_write_queue: usize,
}

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            short_block_window: 40,
            cancel_rate_per_second: NonZeroU32::new(200).unwrap_or(NonZeroU32::MIN),
            claim_lease: DEFAULT_LEASE,
            cancel_retry: CancelRetry::default(),
            failure_policy: FailurePolicy::FailClosed,
            cancel_from_id: true,
            confirm: ConfirmSettings::default(),
            client_id_reuse: ClientIdReuse::default(),
            active_write: ActiveWrite::default(),
            active_write_queue: DEFAULT_ACTIVE_WRITE_QUEUE,
        }
    }
}

/// The seed's `DydxV4Client`: places orders recording their metadata first, and cancels them
/// by id from the stored metadata.
///
/// Each client is one canceller: it claims orders with its own [claim
/// token](Self::claim_token), so that a claim it lost (its lease ran out and another
/// canceller re-claimed the order) is never given back or settled as if it were still its own.
pub struct OrderMetaClient {
    gateway: Arc<dyn OrderGateway>,
    store: Arc<dyn MetadataStore>,
    recording: RecordingSwitch,
    settings: ChainSettings,
    limiter: DefaultDirectRateLimiter,
    claim_token: String,
    rollout: Arc<Rollout>,
    store_description: Option<String>,
    confirmations: Confirmations,
    indexer: Option<Arc<dyn IndexerApi>>,
    active: ActiveWrites,
}

impl std::fmt::Debug for OrderMetaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderMetaClient")
            .field("signer", &self.gateway.signer())
            .field("recording", &self.recording)
            .field("settings", &self.settings)
            .field("claim_token", &self.claim_token)
            .field("indexer", &self.indexer.is_some())
            .finish_non_exhaustive()
    }
}

impl OrderMetaClient {
    /// A client over a gateway and a store, with a new claim token. Errors name the store as
    /// it describes itself ([`MetadataStore::description`]); see
    /// [`describe_store`](Self::describe_store) to name it otherwise.
    pub fn new(
        gateway: Arc<dyn OrderGateway>,
        store: Arc<dyn MetadataStore>,
        recording: RecordingSwitch,
        settings: ChainSettings,
    ) -> Self {
        let limiter = RateLimiter::direct(Quota::per_second(settings.cancel_rate_per_second));
        let claim_token = new_claim_token(&gateway.signer());
        let store_description = store.description();
        let active = ActiveWrites::new(
            store.clone(),
            gateway.clone(),
            settings.cancel_retry.clone(),
            claim_token.clone(),
            settings.claim_lease,
            settings.active_write_queue,
        );
        OrderMetaClient {
            gateway,
            store,
            recording,
            settings,
            limiter,
            claim_token,
            rollout: Arc::default(),
            store_description,
            confirmations: Confirmations::default(),
            indexer: None,
            active,
        }
    }

    /// Names the store for people: [`MetadataNotFound`](crate::CancelError::MetadataNotFound)
    /// then says where the record was looked for (e.g. `"postgres bots-db, schema bot_1"`).
    /// Replaces the store's own [description](MetadataStore::description), which the client
    /// uses by default. Never put credentials in it.
    pub fn describe_store(mut self, description: impl Into<String>) -> Self {
        self.store_description = Some(description.into());
        self
    }

    /// The store's description: [`describe_store`](Self::describe_store)'s, else the store's
    /// own ([`MetadataStore::description`]), if it gives one.
    pub fn store_description(&self) -> Option<&str> {
        self.store_description.as_deref()
    }

    /// What this client's placements did with respect to the rollout since it was built:
    /// counts per scope decision, fail-open placements, records written late, orders live
    /// without metadata.
    pub fn rollout_stats(&self) -> RolloutStats {
        self.rollout.stats()
    }

    /// The token this client's claims carry: `<signer prefix>-<pid>-<random>`, unique per
    /// client instance (so two clients in one process are two cancellers), readable in the
    /// store and in logs.
    pub fn claim_token(&self) -> &str {
        &self.claim_token
    }

    /// The settings.
    pub fn settings(&self) -> &ChainSettings {
        &self.settings
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// The gateway.
    pub fn gateway(&self) -> &Arc<dyn OrderGateway> {
        &self.gateway
    }

    /// The recording switch (clones share the scope: change it here, or on any clone, at
    /// run time).
    pub fn recording(&self) -> &RecordingSwitch {
        &self.recording
    }
}

impl OrderMetaClient {
    /// Claims `order_id` for cancelling with this client's lease, from any of `from`. With
    /// `cancelling` in `from`, a claim whose lease has run out is re-claimed; a live one never.
    pub(crate) async fn claim(
        &self,
        order_id: &str,
        from: &[OrderStatus],
    ) -> Result<OrderMetadata, StoreError> {
        self.active.finisher.claim(order_id, from).await
    }
}

/// Whether `meta` is a `cancelling` claim whose lease has run out at `at` (or that has none:
/// written before leases existed), so that it may be re-claimed.
pub(crate) fn is_stale_claim(meta: &OrderMetadata, at: DateTime<Utc>) -> bool {
    meta.status == OrderStatus::Cancelling
        && meta.lease.as_ref().is_none_or(|l| l.is_expired_at(at))
}

/// `<signer prefix>-<pid>-<random>`: the signer's first 16 characters say whose claim it is,
/// the process id which process, the random part which client instance.
fn new_claim_token(signer: &str) -> String {
    let prefix: String = signer
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    format!(
        "{prefix}-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    )
}
