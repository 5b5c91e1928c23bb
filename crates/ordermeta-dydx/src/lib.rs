//! # ordermeta-dydx
//!
//! Write-ahead placement and cancel-by-id for dYdX v4 orders, on any ordermeta store.
//!
//! [`OrderMetaClient`] (the original design's `DydxV4Client`) holds an [`OrderGateway`] (the
//! chain), an `Arc<dyn MetadataStore>` (any backend), the [`RecordingSwitch`] and
//! [`ChainSettings`]:
//!
//! - [`place_order`](OrderMetaClient::place_order) records the order as `pending` **before**
//!   broadcasting it, then marks it `active` or `failed`. If recording fails, the order is not
//!   broadcast: a live order without metadata is the bug ordermeta removes (unless the client
//!   was made [fail-open](FailurePolicy::FailOpen) for a rollout; see below).
//! - [`cancel_order`](OrderMetaClient::cancel_order) follows the seed's flow: look up, check
//!   status, ownership and expiry against the chain, claim (`active -> cancelling`, exactly one
//!   of many concurrent cancellers wins), broadcast `MsgCancelOrder` with the stored `OrderId`
//!   and good-til, record `cancelled` (with the cancel tx hash) or give the claim back. A
//!   stateful cancel keeps its claim until its block has executed it (see below).
//! - [`cancel_all`](OrderMetaClient::cancel_all) is the kill switch: every order of the
//!   signer that may be live — `active`, `pending` and stale `cancelling` — with
//!   [counts per outcome](CancelAllReport::counts).
//! - [`mark_filled`](OrderMetaClient::mark_filled),
//!   [`sweep_expired`](OrderMetaClient::sweep_expired) and
//!   [`reconcile_pending`](OrderMetaClient::reconcile_pending), and the background
//!   [`Supervisor`] that runs the recovery steps for you.
//!
//! ## The chain's truth: the indexer
//!
//! [`IndexerSync`] follows the signer's subaccounts on the dYdX indexer ([`IndexerApi`];
//! [`DydxIndexer`] over the `dydx` crate's `IndexerClient`, REST and the `v4_subaccounts`
//! websocket, every call under a deadline) and keeps the records true: fills (`filled`, also
//! after a cancel that lost the race; partial fills as the record's
//! [`filled_quantity`](ordermeta_core::OrderMetadata::filled_quantity)), cancels confirmed by
//! the chain ([`cancel_confirmed_at`](ordermeta_core::OrderMetadata::cancel_confirmed_at)),
//! expiry, and the **backfill** of open orders without a record (placed before ordermeta or
//! by another tool), imported so that they are cancellable by id. Every report goes through
//! the state machine, forward only: duplicated and reordered messages change nothing wrongly.
//! After a gap in the feed it re-snapshots over REST. Spawn it alone or with the
//! [`Supervisor`] ([`Supervisor::spawn_with_indexer`]). With the indexer attached to the client
//! ([`OrderMetaClient::with_indexer`]), a stateful cancel answered "does not exist" (3006) is
//! recorded as what the indexer says happened, and
//! [`reconcile_pending`](OrderMetaClient::reconcile_pending) asks it before cancelling.
//!
//! ## The bot's own names
//!
//! [`place_order_with`](OrderMetaClient::place_order_with) stores a caller label
//! ([`PlaceOptions`]); [`find_by_client_id`](OrderMetaClient::find_by_client_id),
//! [`cancel_by_client_id`](OrderMetaClient::cancel_by_client_id) and
//! [`cancel_by_label`](OrderMetaClient::cancel_by_label) need no good-til. Placing with a
//! client id whose record is still open follows [`ClientIdReuse`]: the previous record is
//! marked replaced (the default, what the chain does), or the placement is refused.
//!
//! ## In a bot: one dependency
//!
//! Built against the `dydx` client crate **0.3** ([`DYDX_VERSION`]). Everything a bot needs
//! around the client is reachable from here, so a bot depends on `ordermeta` (feature `dydx`)
//! and `tokio` alone: the `dydx` types it uses by name — [`Wallet`], [`NodeConfig`] (or
//! [`ClientConfig`]`::from_file(..).node`), [`OrderBuilder`], [`OrderSide`], [`ClientId`],
//! [`Height`], [`OrderMarketParams`], [`Subaccount`], [`IndexerClient`] … —, the whole crate as
//! [`dydx`](mod@dydx), and the `chrono` types of the clock helpers ([`DateTime`], [`Utc`],
//! [`TimeDelta`], and [`chrono`](mod@chrono) itself).
//!
//! - [`OrderMetaClient::connect`]: a node, a wallet (account 0) and a store, with the
//!   defaults.
//! - [`OrderMetaClient::good_til_block`]`(offset)` and
//!   [`good_til_time`](OrderMetaClient::good_til_time)`(lifetime)`: good-til values from the
//!   chain's clock, checked against the chain's windows ([`GoodTilError`]);
//!   [`chain_time`](OrderMetaClient::chain_time) for the height and block time themselves.
//! - [`OrderMetaClient::place`]`(order, &market)`: the details recorded with the order (side,
//!   size, price, type) read from the order and the [`Market`]; details a caller writes
//!   ([`place_order`](OrderMetaClient::place_order)) are checked against the order
//!   ([`OrderDetails::check`], [`PlaceError::Details`]).
//!
//! In the `ordermeta` facade these are `ordermeta::dydx::…`; the store comes from
//! `ordermeta::open(url)`:
//!
//! ```no_run
//! use ordermeta_dydx::{ClientConfig, ClientId, Market, OrderBuilder, OrderMetaClient, OrderSide, Wallet};
//! # use std::sync::Arc;
//! # async fn bot(
//! #     mnemonic: &str,
//! #     market: Market,
//! #     store: Arc<dyn ordermeta_core::MetadataStore>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::from_file("client.toml").await?;
//! let wallet = Wallet::from_mnemonic(mnemonic)?;
//! // store = ordermeta::open("sqlite:/var/lib/bot/orders.db?mode=rw").await?
//! let client = OrderMetaClient::connect(config.node, &wallet, store).await?;
//! let (_, order) = OrderBuilder::new(&market, wallet.account_offline(0)?.subaccount(0)?)
//!     .limit(OrderSide::Buy, 50_000, 1)
//!     .until(client.good_til_block(20).await?)
//!     .build(ClientId::random())?;
//! let id = client.place(order, &market).await?.order_id; // keep it
//! client.cancel_order(&id).await?; // here, or in any process that opens the store
//! # Ok(()) }
//! ```
//!
//! ## Claim leases
//!
//! A claim (`cancelling`) carries a lease: the claiming client's
//! [token](OrderMetaClient::claim_token) (`<signer prefix>-<pid>-<random>`, one per client
//! instance) and an expiry, [`ChainSettings::claim_lease`] from the claim (default
//! [`DEFAULT_LEASE`](ordermeta_core::DEFAULT_LEASE), 30 s). A canceller that dies between
//! its claim and the outcome (kill -9, OOM, a deploy, a lost store) leaves a claim that
//! runs out; then exactly one other canceller can re-claim it (an atomic compare-and-set in
//! every store) and re-send the cancel with the stored id and good-til. A re-sent cancel is
//! harmless on chain: "cancel already exists" (clob 9 / 32) or "stateful order does not
//! exist" (3006) settle the record. A live claim is never taken over:
//! [`cancel_order`](OrderMetaClient::cancel_order) answers
//! [`CancelInProgress`](CancelError::CancelInProgress) while it lasts, and re-claims it once
//! it has run out.
//!
//! Giving a claim back (`cancelling -> active`, after a cancel that did not happen) requires
//! that the lease is still the client's own; recording what the chain decided (cancelled,
//! expired, filled) does not — the chain is the truth, whoever holds the claim.
//!
//! ## The recovery supervisor
//!
//! [`Supervisor::spawn`] runs, every [`interval`](SupervisorConfig::interval): the expiry
//! sweep against the chain's clock; reconciliation of `pending` records older than
//! [`pending_after`](SupervisorConfig::pending_after) (a crash or a timed-out placement left
//! their outcome unknown: they are cancelled on chain, or marked expired); the re-drive of
//! stale claims; and, only with a [`retention`](SupervisorConfig::retention), the purge of
//! old terminal records. Each step handles at most [`batch`](SupervisorConfig::batch)
//! records per tick, going on from a cursor at the next one. Run one per signer beside the
//! bot, or in a fresh process after a crash; run it in several processes at once if you like:
//! every order is taken by a claim exactly one of them wins, so none sends a cancel twice.
//! [`Supervisor::stop`] stops it gracefully and returns its totals; dropping it stops it too.
//! [`Supervisor::run_once`] runs one tick, for a one-shot recovery.
//!
//! ## Deadlines and retries
//!
//! Every [`DydxGateway`] call completes or fails within [`GatewayOptions::call_timeout`]
//! (default [`DEFAULT_CALL_TIMEOUT`], 5 s), connecting within
//! [`GatewayOptions::connect_timeout`] (default [`DEFAULT_CONNECT_TIMEOUT`], 5 s) — also
//! against a node that accepts connections and never answers. A missed deadline is
//! [`GatewayError::Timeout`]: for a broadcast its outcome is unknown. Store calls are
//! bounded by the stores' own deadlines.
//!
//! **Placement is never retried**: a placement that failed in transport may have landed, so
//! its record stays `pending` ([`PlaceError::Network`]) until reconciliation settles it. (A
//! stateful tx the node refused with a sequence mismatch is re-signed by the gateway: the node
//! admitted nothing of it, so no second order can result.)
//! **Cancels are retried** on transport failures (unreachable node, missed deadline) with
//! bounded exponential backoff ([`CancelRetry`]: by default 4 attempts within 10 s), because
//! a cancel is idempotent on chain; a refusal by the chain is never retried. The worst case
//! of `cancel_order` is about one call deadline for the chain's clock plus the retry budget
//! plus one call deadline.
//!
//! ## The good-til of a cancel
//!
//! A short-term cancel removes the order only if its good-til block is at least the order's,
//! and a stateful cancel is refused (code 29) if its good-til time is below the order's. The
//! order's own stored good-til satisfies both while the order is unexpired, so ordermeta
//! always cancels with exactly that — unlike clients that guess `height + 40` or `now + 90
//! days` after a restart.
//!
//! ## Chain answers
//!
//! Errors are classified by (codespace, code), never by log text ([`codes`]):
//! clob 9 / 32 → the node already has a cancel (`CancelInProgress`, recorded cancelled);
//! clob 10 / 3003 → expired; clob 3006 → the stateful order is gone (what the indexer says
//! happened, with one attached; else expired if the clock says so, else recorded cancelled —
//! the indexer sync or a fill feed may correct it to filled); clob 5001 →
//! `RateLimited`; sdk 32 (sequence mismatch, or a timestamp nonce refused) → the gateway
//! re-signs with the next sequence or a fresh nonce, up to [`MISMATCH_RETRIES`] times with
//! backoff inside the call deadline. Any other refusal — including a mismatch that outlasts
//! those retries — is [`CancelError::Rejected`] `{ codespace, code, log }` (and
//! [`PlaceError::Rejected`] for a placement); [`CancelError::NetworkError`] and
//! [`PlaceError::Network`] mean transport failure only.
//!
//! ## Several processes per account: timestamp nonces
//!
//! Stateful txs (long-term and conditional places and cancels) carry the account sequence,
//! and a node serves the sequence from **committed** state: a process cannot learn another's
//! uncommitted txs before the next block, so two processes signing for one account collide.
//! Give each process a [`DydxGateway`] with timestamp nonces —
//! [`with_nonces`](DydxGateway::with_nonces)`(`[`NonceMode::timestamp_lane`]`(i, n))`, process
//! `i` of `n` — **the choice for several processes (or machines) per account**: every stateful
//! tx is signed with a unique unix-millisecond nonce (x/accountplus), in the process's own
//! lane of milliseconds, so processes never collide; see [`NonceMode`] for the rules and the
//! remaining risks (host clocks must be NTP-synced). Short-term txs need neither.
//!
//! ## Stateful outcomes: confirmed after the block
//!
//! The node's answer to a broadcast is CheckTx's; a stateful place or cancel is executed in
//! the next block and can still fail there (the order filled, was cancelled or removed in
//! between). The client remembers the stateful txs it sent and looks their results up by
//! hash ([`OrderGateway::tx_result`], the node's `GetTx`):
//!
//! - a stateful placement is recorded `active` at CheckTx — so it can be cancelled at once —
//!   and becomes `failed` if its block fails it;
//! - a stateful cancel keeps the record `cancelling` (the claim, under its lease) until its
//!   block has run: then `cancelled`; `cancelled` (or `expired`) too if the block found the
//!   order gone (clob 3006 / 3010); otherwise `active` again, the failure in its history.
//!
//! [`place_order`](OrderMetaClient::place_order) and
//! [`cancel_order`](OrderMetaClient::cancel_order) return after CheckTx and never wait for a
//! block. The [`Supervisor`] confirms at every tick; a caller that wants certainty awaits
//! [`confirm`](OrderMetaClient::confirm) (one tx) or
//! [`confirm_all`](OrderMetaClient::confirm_all). Lookups stop after
//! [`ConfirmSettings::within`]. The list of unconfirmed txs is in memory: after a crash a
//! stateful cancel's claim runs out and is re-driven (the chain answers "does not exist" once
//! the first cancel took effect). [`ConfirmSettings::enabled`] off takes CheckTx as final
//! (for nodes without a tx index).
//!
//! ## The chain's stateless rules
//!
//! An order that `MsgPlaceOrder.ValidateBasic` would refuse (a conditional order without a
//! condition type or trigger — what `dydx`'s `OrderBuilder` makes of `.limit(..).conditional()`
//! —, fill-or-kill, reduce-only without IOC, long-term IOC, unknown flags, …) is refused
//! **before** its record is written, with the chain's codespace and code
//! ([`PlaceError::Invalid`]): no `pending` or `active` record exists for it.
//!
//! ## Rollout and rollback
//!
//! The [`RecordingSwitch`] holds a [`RolloutScope`] — all, none, some markets, some
//! subaccounts, a [`Share`] of orders (a fixed hash of the order's identity, so an order is
//! always in or out), combined with *and* — read from [`RECORDING_ENV`] (`on`, `off`,
//! `clob_pairs=0`, `share=10%`, …) or a serde configuration, and replaceable at run time from
//! any thread ([`RecordingSwitch::set_scope`]); every clone sees the change at its next
//! placement. An order outside the scope is placed exactly as without ordermeta
//! ([`RecordOutcome::OutOfScope`]) and counted. The Cargo feature `recording` left out
//! compiles recording out: the scope is then always none.
//!
//! A store outage refuses placements ([`FailurePolicy::FailClosed`], the default) or, on a
//! client made [`FailurePolicy::FailOpen`] for the rollout, lets them through: the failure is
//! counted and logged with the order's identity, the record is written after the broadcast
//! by a background task once the store answers ([`Backfill`]), and what cannot be written is
//! reported as live without metadata ([`RolloutStats`], the [`Supervisor`]).
//!
//! The switch governs **recording new orders**, never cancelling: an order with a record is
//! cancelled from it whatever the switch says; an order without one (recording off, out of
//! scope, a lost store) is cancelled from its printable id alone ([`parse_order_key`], on by
//! default: [`ChainSettings::cancel_from_id`]); and [`OrderMetaClient::cancel_exact`] keeps
//! the pre-ordermeta path (the caller's `OrderId` and good-til). A string that is not an
//! ordermeta id is [`CancelError::InvalidOrderId`]. So no rollback strands a live order.
//!
//! ## Placement: one store round trip on the caller's path
//!
//! The `pending` record is written before the broadcast, always. The `active` write that
//! follows an accepted broadcast runs off the caller's path by default
//! ([`ActiveWrite::Background`]): [`place_order`](OrderMetaClient::place_order) returns as
//! soon as the node accepted the order, and a bounded writer per client (a queue of
//! [`ChainSettings::active_write_queue`] jobs, 16 at a time) writes `pending -> active` with
//! the tx hash. The write is a compare-and-set from `pending`, so a claim or an outcome that
//! reached the record first (a kill switch, the indexer sync) wins; a write that fails leaves
//! the record `pending`, which reconciliation settles against the chain. This client's own
//! operations on the order run its queued write first — [`cancel_order`](OrderMetaClient::cancel_order)
//! right after `place_order` cancels from an `active` record, one cancel tx —, and so do
//! reconciliation, the kill switch, [`mark_filled`](OrderMetaClient::mark_filled) and the
//! confirmation of a failed stateful placement. Another process sees `pending` until the
//! write lands (its cancel answers [`PlacementPending`](CancelError::PlacementPending), which
//! is retryable). A full queue makes the placement write inline; dropping the client lets the
//! writer finish what is queued; a runtime that stops with writes queued abandons them (their
//! records stay `pending`, and reconciliation cancels those orders): call
//! [`flush_active_writes`](OrderMetaClient::flush_active_writes) before a graceful shutdown.
//! [`ActiveWrite::Inline`] (per client, or per placement with [`PlaceOptions::active_write`])
//! keeps the write on the caller's path. Metrics: `ordermeta_active_writes_total{outcome}`
//! (`background`, `inline`, `raced`, `failed`), gauge `ordermeta_active_writes_queued`.
//!
//! ## Performance
//!
//! Placement latency (`benches/placement.rs`: 1,000 short-term orders per side per backend
//! against the in-process simulator, 10 interleaved rounds, one run on a shared, loaded 2-core
//! machine; p50 / p99 in µs; "round trip" = one bare single-row `INSERT` (sqlx) or one
//! `EVALSHA` of a one-`HSET` script (redis-rs) in the same run):
//!
//! | store | bare `NodeClient` | background (default) | inline (before) | added at p50, background | one round trip |
//! |---|---|---|---|---|---|
//! | SQLite | 318 / 4,504 | 778 / 11,765 | 831 / 7,774 | +460 (9.9 round trips) | 46 |
//! | PostgreSQL | 668 / 7,613 | 4,257 / 20,649 | 11,202 / 31,498 | +3,589 (0.90 round trips) | 3,983 |
//! | Redis | 348 / 5,830 | 735 / 8,978 | 909 / 9,852 | +388 (13.9 round trips) | 28 |
//!
//! The background write takes the `active` round trip off the path on every store: p50
//! 0.38–0.51× the inline placement's on PostgreSQL (every write there is a commit with its
//! fsync, ~3.7 ms on this disk), 0.44–0.81× on Redis, 0.71–0.94× on SQLite (three runs: the
//! machine is noisy; p99 is dominated by its load). The
//! target — at most one store round trip added at p50 — is met on PostgreSQL (0.90 in this
//! run, 1.41 in another) and not on SQLite or Redis, where a bare round trip is 28–46 µs:
//! what stays on the path is two store calls, `find_by_client_id` (the client-id reuse check:
//! it must precede the record, which would otherwise be the newest under the client id) and
//! the `pending` record (measured alone in the same run: 38 + 95 µs SQLite, 23 + 72 µs Redis,
//! 313 + 3,665 µs PostgreSQL), and about 250–300 µs more on SQLite and Redis that is neither
//! our code (with the in-memory store the client adds 15–60 µs) nor the calls themselves: the
//! hand-offs between the runtime's threads, the store's I/O and the simulator on two shared
//! cores. Placing back-to-back (no pause for the writer) costs 90–2,000 µs more at p50 than
//! with the writer caught up, as its writes meet the next placement's in the store: below
//! inline on PostgreSQL and Redis, about even with it on SQLite. Reproduce:
//! `cargo bench -p ordermeta --bench placement --features "dydx dydx-sim sqlite postgres redis"`
//! (about 65 s).
//!
//! ## Audit and monitoring
//!
//! Every cancel attempt emits a `tracing` event (order id, outcome, error); every status
//! change is kept in the order's history. `metrics` counters: `ordermeta_cancel_total{outcome}`,
//! `ordermeta_place_total{outcome}`, `ordermeta_cancel_retries_total{operation}`,
//! `ordermeta_recording_failures_total`, `ordermeta_confirm_total{kind,outcome}`,
//! `ordermeta_nonce_mismatch_total{nonces,outcome}`; histogram `ordermeta_store_seconds{op}`;
//! and the supervisor's (see [`Supervisor`]). For a rollout: `ordermeta_recording_decisions_total{decision}`
//! (`recorded`, `out_of_scope`, `recording_failed`), `ordermeta_fail_open_placements_total`,
//! `ordermeta_late_records_total{outcome}` (`written`, `given_up`), gauges
//! `ordermeta_late_records_pending` and `ordermeta_live_without_metadata`, and
//! `ordermeta_cancel_without_record_total{path}` (`order_id`, `exact`); per client in code:
//! [`OrderMetaClient::rollout_stats`].
#![deny(missing_docs)]

// Modules are private: every public item has one path, at the crate root.
mod client;
mod convert;
mod details;
mod error;
mod gateway;
mod indexer;
mod recording;
mod supervisor;
mod validate;

pub use client::{
    ActiveWrite, Backfill, CancelAllReport, CancelPath, CancelRetry, CancelScope, Cancelled,
    ChainSettings, ChainTime, ClientIdReuse, ConfirmReport, ConfirmSettings, ConnectError,
    DEFAULT_ACTIVE_WRITE_QUEUE, FailurePolicy, GoodTilError, MAX_BATCH_CANCEL_IDS, OrderDetails,
    OrderMetaClient, PlaceOptions, Placed, ReconcileReport, RecordOutcome, RolloutStats,
    STATEFUL_ORDER_TIME_WINDOW,
};
pub use convert::{
    InvalidOrderKey, ORDER_KEY_FORMAT, from_proto_order_id, order_key, parse_order_key,
    to_proto_order_id,
};
pub use details::{DetailsError, DetailsField, Market};
pub use error::{
    CancelError, CancelErrorKind, MANUAL_CANCEL_GUIDANCE, NotRecorded, PlaceError, SweepError,
};
#[cfg(any(test, feature = "mock"))]
pub use gateway::MockOrderGateway;
pub use gateway::{
    ChainClock, ChainError, DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DydxGateway,
    GatewayError, GatewayOptions, MISMATCH_RETRIES, NonceMode, OrderGateway,
    TIMESTAMP_NONCE_CUTOFF, TxOutcome, codes, install_crypto_provider,
};
#[cfg(any(test, feature = "mock"))]
pub use indexer::MockIndexerApi;
pub use indexer::{
    DEFAULT_INDEXER_TIMEOUT, DydxIndexer, FeedEvent, FeedStream, IndexerApi, IndexerClock,
    IndexerError, IndexerFill, IndexerOptions, IndexerOrder, IndexerOrderStatus, IndexerSubaccount,
    IndexerSync, SyncConfig, SyncReport, indexer_order_id, indexer_subaccount_id,
};
pub use recording::{
    InvalidRecordingSetting, RECORDING_ENV, RecordingSwitch, RolloutScope, Share, SubaccountRef,
};
pub use supervisor::{Supervisor, SupervisorConfig, SupervisorReport};

/// The version of the `dydx` client crate this crate is built against (a semver range: any
/// `0.3.x`). A bot that also depends on `dydx` itself must use this version, or its types are
/// not ordermeta's; a bot that uses the re-exports here needs no `dydx` dependency at all.
pub const DYDX_VERSION: &str = "0.3";

/// The `chrono` crate, whose time types the clock helpers take and return.
pub use chrono;
/// The `dydx` client crate this crate is built on, whole ([`DYDX_VERSION`]).
pub use dydx;

// The `dydx` and `chrono` types a bot names when it uses the client, by name, so that a bot
// needs no dependency of its own on either (and cannot pick a version that does not match).
pub use chrono::{DateTime, TimeDelta, Utc};
pub use dydx::config::ClientConfig;
pub use dydx::indexer::{ClientId, Height, IndexerClient, IndexerConfig, Price, Quantity};
pub use dydx::node::{
    Account, ChainId, NodeClient, NodeConfig, OrderBuilder, OrderMarketParams, OrderSide,
    OrderTimeInForce, Subaccount, Wallet,
};
pub use dydx_proto::dydxprotocol::clob::Order;
