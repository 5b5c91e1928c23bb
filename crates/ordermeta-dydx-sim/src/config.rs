//! Simulator configuration.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use crate::indexer::Market;

/// The chain id of dYdX testnet. `dydx` 0.3 only knows `dydx-testnet-4` and `dydx-mainnet-1`
/// (its `ChainId` is a closed enum), so the simulator must present one of them.
pub const TESTNET_CHAIN_ID: &str = "dydx-testnet-4";

/// The chain id of dYdX mainnet.
pub const MAINNET_CHAIN_ID: &str = "dydx-mainnet-1";

/// `ShortBlockWindow` of the chain since protocol v9.5.0.
pub const DEFAULT_SHORT_BLOCK_WINDOW: u32 = 40;

/// `StatefulOrderTimeWindow` of the chain: 95 days, in seconds.
pub const STATEFUL_ORDER_TIME_WINDOW_SECS: i64 = 95 * 24 * 60 * 60;

/// `MaxMsgBatchCancelBatchSize` of the chain.
pub const MAX_BATCH_CANCEL_SIZE: usize = 100;

/// `TimestampNonceSequenceCutoff` of x/accountplus: a signed sequence at or above 2^40 is a
/// timestamp nonce (unix milliseconds), not an account sequence.
pub const TIMESTAMP_NONCE_CUTOFF: u64 = 1 << 40;

/// `MaxTimeInPastMs` / `MaxTimeInFutureMs` of x/accountplus: a timestamp nonce is accepted only
/// within this many milliseconds of the block time, on either side.
pub const TIMESTAMP_NONCE_MAX_SKEW_MS: u64 = 30_000;

/// `MaxTimestampNonceArrSize` of x/accountplus: how many accepted timestamp nonces an account
/// keeps.
pub const MAX_TIMESTAMP_NONCES: usize = 20;

/// How blocks are produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockProduction {
    /// Blocks advance only when the test calls [`SimHandle::advance_blocks`](crate::SimHandle::advance_blocks).
    /// Deterministic: the right choice for tests.
    Manual,
    /// A block is produced every interval of wall-clock time (the binary's default), and
    /// `advance_blocks` still works on top of it.
    Interval(Duration),
}

/// Where the time of each new block comes from (unless
/// [`SimHandle::set_block_time`](crate::SimHandle::set_block_time) set it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BlockClock {
    /// The previous block time plus [`SimConfig::block_time_step`]: deterministic, the default
    /// for tests. Block time then drifts from the wall clock as blocks are produced, so
    /// timestamp nonces must be derived from the chain's block time (e.g. the latest block's
    /// header), not from the local clock.
    #[default]
    Step,
    /// The wall-clock time when the block is produced (at least 1 ms after the previous
    /// block), as on a real chain: what a client signing with timestamp nonces from its own
    /// clock (`dydx::node::sequencer::TimestamperSequencer`) needs.
    WallClock,
}

/// One "at most `limit` per `num_blocks` blocks" rule, as in the chain's `MaxPerNBlocksRateLimit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Window length in blocks (the current block and the `num_blocks - 1` before it).
    pub num_blocks: u32,
    /// Maximum weight per account inside the window.
    pub limit: u32,
}

/// Per-account rate limits (shared by all subaccounts of an address, like on chain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Short-term places and cancels (a batch cancel weighs 2). Default: 4000 per 5 blocks.
    pub short_term: Vec<RateLimit>,
    /// Stateful placements. Default: 2 per block and 20 per 100 blocks.
    pub stateful: Vec<RateLimit>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            short_term: vec![RateLimit {
                num_blocks: 5,
                limit: 4000,
            }],
            stateful: vec![
                RateLimit {
                    num_blocks: 1,
                    limit: 2,
                },
                RateLimit {
                    num_blocks: 100,
                    limit: 20,
                },
            ],
        }
    }
}

impl RateLimits {
    /// No rate limiting at all.
    pub fn unlimited() -> Self {
        Self {
            short_term: Vec::new(),
            stateful: Vec::new(),
        }
    }
}

/// An account that exists at genesis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GenesisAccount {
    /// Derived like `dydx::node::Wallet` does (BIP-44 path `m/44'/118'/0'/0/{index}`, prefix `dydx`);
    /// the public key is known from the start.
    Mnemonic {
        /// BIP-39 English phrase.
        phrase: String,
        /// Derivation index.
        index: u32,
    },
    /// A bech32 `dydx1…` address; its public key is learnt from its first signed tx,
    /// as the chain's `SetPubKeyDecorator` does.
    Address(String),
}

/// The indexer (REST, websocket) and admin HTTP server of a simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexerConfig {
    /// Address of the HTTP server. Default `127.0.0.1:0` (a free port, see
    /// [`SimHandle::indexer_url`](crate::SimHandle::indexer_url)); the binary binds 9091 unless
    /// told otherwise, so its subcommands find it.
    pub listen: SocketAddr,
    /// The markets the indexer knows. Default BTC-USD (clob pair 0) and ETH-USD (1).
    pub markets: Vec<Market>,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            markets: vec![Market::btc_usd(), Market::eth_usd()],
        }
    }
}

/// Configuration of a [`SimNode`](crate::SimNode).
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Chain id that signatures must commit to. Default [`TESTNET_CHAIN_ID`].
    pub chain_id: String,
    /// Address to listen on. Default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    /// Block production mode. Default [`BlockProduction::Manual`].
    pub blocks: BlockProduction,
    /// Where block times come from. Default [`BlockClock::Step`].
    pub block_clock: BlockClock,
    /// Block time added per produced block with [`BlockClock::Step`], unless
    /// [`SimHandle::set_block_time`](crate::SimHandle::set_block_time) set the next one. Default 1 s.
    pub block_time_step: Duration,
    /// Height of the latest block at start. Default 1.
    pub genesis_height: u32,
    /// Time of the latest block at start. Default: now, whole seconds.
    pub genesis_time: DateTime<Utc>,
    /// `ShortBlockWindow`. Default [`DEFAULT_SHORT_BLOCK_WINDOW`] (40).
    pub short_block_window: u32,
    /// Funded accounts. Account numbers are given in this order starting at 1, so a client that
    /// signs with an unset account number (0) fails signature verification, as on chain.
    pub accounts: Vec<GenesisAccount>,
    /// Per-account rate limits.
    pub rate_limits: RateLimits,
    /// The indexer and admin HTTP server; `None` serves gRPC only. Default: on, on a free
    /// loopback port.
    pub indexer: Option<IndexerConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            chain_id: TESTNET_CHAIN_ID.to_owned(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            blocks: BlockProduction::Manual,
            block_clock: BlockClock::Step,
            block_time_step: Duration::from_secs(1),
            genesis_height: 1,
            genesis_time: Utc::now().trunc_subsecs(0),
            short_block_window: DEFAULT_SHORT_BLOCK_WINDOW,
            accounts: Vec::new(),
            rate_limits: RateLimits::default(),
            indexer: Some(IndexerConfig::default()),
        }
    }
}

impl SimConfig {
    /// Adds the accounts `0..count` derived from `phrase`.
    pub fn with_mnemonic(mut self, phrase: &str, count: u32) -> Self {
        self.accounts
            .extend((0..count).map(|index| GenesisAccount::Mnemonic {
                phrase: phrase.to_owned(),
                index,
            }));
        self
    }

    /// Adds one account by address.
    pub fn with_address(mut self, address: &str) -> Self {
        self.accounts
            .push(GenesisAccount::Address(address.to_owned()));
        self
    }

    /// Sets the chain id.
    pub fn with_chain_id(mut self, chain_id: &str) -> Self {
        self.chain_id = chain_id.to_owned();
        self
    }

    /// Sets the block production mode.
    pub fn with_blocks(mut self, blocks: BlockProduction) -> Self {
        self.blocks = blocks;
        self
    }

    /// Sets where block times come from.
    pub fn with_block_clock(mut self, clock: BlockClock) -> Self {
        self.block_clock = clock;
        self
    }

    /// Sets `ShortBlockWindow`.
    pub fn with_short_block_window(mut self, window: u32) -> Self {
        self.short_block_window = window;
        self
    }

    /// Sets the rate limits.
    pub fn with_rate_limits(mut self, rate_limits: RateLimits) -> Self {
        self.rate_limits = rate_limits;
        self
    }

    /// Sets the listen address.
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Serves the indexer and admin API with `indexer`.
    pub fn with_indexer(mut self, indexer: IndexerConfig) -> Self {
        self.indexer = Some(indexer);
        self
    }

    /// Serves gRPC only: no indexer, no admin API.
    pub fn without_indexer(mut self) -> Self {
        self.indexer = None;
        self
    }
}
