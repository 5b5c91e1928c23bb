//! The dYdX indexer of the simulated chain: REST (`/v4/...`) and the websocket feed
//! (`/v4/ws`, channel `v4_subaccounts`), in the wire format of the real indexer
//! (`dydxprotocol/v4-chain`, `indexer/services/{comlink,socks,vulcan,ender}`), so the
//! unmodified `dydx::indexer::IndexerClient` reads it as it reads mainnet's.
//!
//! The indexer is built only from the chain's events (see `chain/events.rs`), the way the
//! real one is built from the node's off-chain updates and on-chain events; it never reads
//! the chain's order book. Layout: `state.rs` applies events and yields the feed's updates,
//! `query.rs` computes the REST views, `wire.rs` holds the JSON objects, `ids.rs` the
//! indexer's ids, `rest.rs` and `ws.rs` serve them.

pub(crate) mod ids;
mod query;
pub(crate) mod rest;
mod state;
mod wire;
pub(crate) mod ws;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::chain::EventSink;
use crate::chain::events::ChainEvent;
pub(crate) use state::IndexerState;

/// A market the indexer knows (`perpetual_markets` row): converts quantums and subticks to
/// the sizes and prices it prints. Orders of other clob pairs are ignored, as the real
/// indexer ignores orders of unknown markets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Market {
    /// Clob pair id.
    pub clob_pair_id: u32,
    /// Ticker, e.g. `BTC-USD`.
    pub ticker: String,
    /// `atomicResolution`: size = quantums × 10^atomic_resolution.
    pub atomic_resolution: i32,
    /// `quantumConversionExponent`.
    pub quantum_conversion_exponent: i32,
    /// `stepBaseQuantums`.
    pub step_base_quantums: u64,
    /// `subticksPerTick`.
    pub subticks_per_tick: u32,
}

impl Market {
    /// BTC-USD, clob pair 0, with mainnet's parameters (those of
    /// [`fixtures::market`](crate::fixtures)).
    pub fn btc_usd() -> Self {
        Self {
            clob_pair_id: 0,
            ticker: "BTC-USD".into(),
            atomic_resolution: -10,
            quantum_conversion_exponent: -9,
            step_base_quantums: 1_000_000,
            subticks_per_tick: 100_000,
        }
    }

    /// ETH-USD, clob pair 1, with mainnet's parameters.
    pub fn eth_usd() -> Self {
        Self {
            clob_pair_id: 1,
            ticker: "ETH-USD".into(),
            atomic_resolution: -9,
            quantum_conversion_exponent: -9,
            step_base_quantums: 1_000_000,
            subticks_per_tick: 100_000,
        }
    }
}

/// The websocket version the subaccounts channel reports (`SUBACCOUNTS_WEBSOCKET_MESSAGE_VERSION`
/// of `indexer/packages/kafka/src/constants.ts`).
pub const SUBACCOUNTS_MESSAGE_VERSION: &str = "3.0.0";

/// The indexer: its data and its websocket connections, behind one lock; fed by the chain.
#[derive(Debug)]
pub(crate) struct Indexer {
    inner: Mutex<Inner>,
    /// `true` while the websocket holds back what it would send.
    paused: watch::Sender<bool>,
    /// `false` while new websocket connections are refused.
    accepting: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub state: IndexerState,
    pub hub: ws::Hub,
}

impl Indexer {
    pub(crate) fn new(
        markets: &[Market],
        height: u32,
        time: DateTime<Utc>,
        addresses: Vec<String>,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                state: IndexerState::new(markets, height, time, addresses),
                hub: ws::Hub::default(),
            }),
            paused: watch::Sender::new(false),
            accepting: AtomicBool::new(true),
        }
    }

    /// Locks the indexer (always after the chain, never before it).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes every websocket at once, without a close frame (the client sees the stream end
    /// as a network failure); returns how many were open.
    pub(crate) fn drop_sockets(&self) -> usize {
        self.lock().hub.kill_all()
    }

    /// Holds back (or releases) everything the websocket sends; nothing is lost.
    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    pub(crate) fn paused(&self) -> watch::Receiver<bool> {
        self.paused.subscribe()
    }

    /// Refuses (or accepts again) new websocket connections.
    pub(crate) fn set_accepting(&self, accepting: bool) {
        self.accepting.store(accepting, Ordering::SeqCst);
    }

    pub(crate) fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// Open websocket connections.
    pub(crate) fn connections(&self) -> usize {
        self.lock().hub.len()
    }

    /// Subscriptions of the open websocket connections.
    pub(crate) fn subscriptions(&self) -> usize {
        self.lock().hub.subscriptions()
    }
}

impl EventSink for Indexer {
    fn apply(&self, events: Vec<ChainEvent>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut updates = Vec::new();
        for event in events {
            inner.state.apply(event, &mut updates);
        }
        inner.hub.publish(updates);
    }
}
