//! What tests and examples share to drive a simulator with the `dydx` client: the public test
//! mnemonic, a market and the node config, so that no test or example keeps its own copy.
//!
//! These are conveniences for the client side only: the simulated chain never reads them,
//! and none of them is code of the client the simulator judges. The items typed by the
//! `dydx` client crate (`market`, `node_config`, `indexer_config`) need the crate feature
//! `dydx`.
//!
//! ```no_run
//! use ordermeta_dydx_sim::{SimConfig, SimNode, fixtures};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = SimNode::start(SimConfig::default().with_mnemonic(fixtures::MNEMONIC, 2)).await?;
//! # #[cfg(feature = "dydx")]
//! let config = fixtures::node_config(sim.endpoint()); // dydx::node::NodeConfig
//! # #[cfg(feature = "dydx")]
//! let indexer = fixtures::indexer_config(
//!     sim.indexer_url().ok_or("no indexer")?,
//!     sim.indexer_ws_url().ok_or("no indexer")?,
//! ); // dydx::indexer::IndexerConfig
//! # Ok(()) }
//! ```

/// The public test mnemonic of the `dydx` crate's examples (never funded on mainnet). Fund
/// its first accounts with [`SimConfig::with_mnemonic`](crate::SimConfig::with_mnemonic) and
/// sign with `dydx::node::Wallet::from_mnemonic(MNEMONIC)`.
pub const MNEMONIC: &str = "mirror actor skill push coach wait confirm orchard lunch mobile athlete gossip awake miracle matter bus reopen team ladder lazy list timber render wait";

/// Request timeout of `node_config`, in milliseconds: generous, so a loaded CI machine
/// does not turn a slow answer into a failure.
pub const NODE_TIMEOUT_MS: u64 = 10_000;

/// BTC-USD market parameters (clob pair 0), as the indexer reports them, so orders can be
/// built without an indexer. Feature `dydx`.
#[cfg(feature = "dydx")]
pub fn market() -> dydx::node::OrderMarketParams {
    dydx::node::OrderMarketParams {
        atomic_resolution: -10,
        clob_pair_id: dydx::indexer::ClobPairId(0),
        oracle_price: None,
        quantum_conversion_exponent: -9,
        step_base_quantums: 1_000_000,
        subticks_per_tick: 100_000,
    }
}

/// The `dydx` client's node config for `endpoint` (e.g. [`SimHandle::endpoint`](crate::SimHandle::endpoint)):
/// chain `dydx-testnet-4` (the simulator's default [`TESTNET_CHAIN_ID`](crate::TESTNET_CHAIN_ID)),
/// USDC fees, [`NODE_TIMEOUT_MS`], the client managing sequence numbers. Override a field with
/// `NodeConfig { chain_id: ChainId::Mainnet1, ..node_config(endpoint) }`. Feature `dydx`.
///
/// With `manage_sequencing` the client's default sequencer reads the sequence from the node
/// before every stateful tx; the node answers from committed state, so a second stateful tx
/// before the next block collides (sdk/32), as on mainnet. Track the sequence locally, or
/// install a timestamp sequencer (`NodeClient::with_sequencer`) and, for nonces from the local
/// clock, run the simulator with [`BlockClock::WallClock`](crate::BlockClock::WallClock).
#[cfg(feature = "dydx")]
pub fn node_config(endpoint: impl Into<String>) -> dydx::node::NodeConfig {
    dydx::node::NodeConfig {
        endpoint: endpoint.into(),
        timeout: NODE_TIMEOUT_MS,
        chain_id: dydx::node::ChainId::Testnet4,
        fee_denom: dydx::indexer::Denom::Usdc,
        manage_sequencing: true,
    }
}

/// Reconnect interval of the websocket client of `indexer_config`, in milliseconds: short, so a
/// test that drops the simulator's sockets sees the client back quickly.
pub const INDEXER_WS_RECONNECT_MS: u64 = 250;

/// The `dydx` client's indexer config for a simulator's indexer
/// ([`SimHandle::indexer_url`](crate::SimHandle::indexer_url),
/// [`SimHandle::indexer_ws_url`](crate::SimHandle::indexer_ws_url)): reconnect after
/// [`INDEXER_WS_RECONNECT_MS`], 10 subscriptions per second. Feature `dydx`.
#[cfg(feature = "dydx")]
pub fn indexer_config(
    rest: impl Into<String>,
    ws: impl Into<String>,
) -> dydx::indexer::IndexerConfig {
    dydx::indexer::IndexerConfig {
        rest: dydx::indexer::RestConfig {
            endpoint: rest.into(),
        },
        sock: dydx::indexer::SockConfig {
            endpoint: ws.into(),
            timeout: INDEXER_WS_RECONNECT_MS,
            rate_limit: std::num::NonZeroU32::MIN.saturating_add(9),
        },
    }
}
