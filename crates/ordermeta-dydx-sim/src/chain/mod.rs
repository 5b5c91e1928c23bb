//! The simulated chain: its state, and the one lock every server reads it through.
//!
//! Everything here is synchronous and runs under one mutex: the chain itself linearises
//! CheckTx of clob txs behind a global lock (`protocol/app/ante.go`, `clobAnteHandle`).
//! Each file owns one concern and adds its own `impl Chain` block:
//!
//! - this file: the state, genesis, accounts, the message log and the control queries;
//! - [`blocks`]: block production (DeliverTx, EndBlocker, then the CheckTx state reset);
//! - [`ante`]: CheckTx and the ante handlers (decode, signer, pubkey, sequence, signature);
//! - [`replay`]: account sequences and timestamp nonces, in committed and CheckTx copies;
//! - [`validate_basic`]: the stateless `ValidateBasic` of each clob msg;
//! - [`rate_limit`]: the per-account block rate limits;
//! - [`clob`]: the place / cancel / batch-cancel rules of the clob keeper and memclob at CheckTx;
//! - [`deliver`]: the mempool of stateful txs, their execution in the next block (which can
//!   fail), and the tx results queryable by hash;
//! - [`book`]: the orders and recorded cancels, their expiry and fills;
//! - [`events`]: what the chain tells an indexer (off-chain updates and on-chain events).
//!
//! # Committed state and the CheckTx copy
//!
//! As on a node, accounts exist twice: committed (served by queries, changed only when a block
//! executes txs) and the CheckTx copy (changed by every admitted tx, reset to committed state
//! after each block, when the mempool has been emptied into that block). Stateful orders and
//! cancels likewise: CheckTx records them as uncommitted, the next block executes them.
//! Short-term messages live only in the memclob: CheckTx applies them at once and no block ever
//! includes them.
//!
//! The servers (`grpc`, `indexer`, the admin API) read the chain through [`SharedChain`],
//! never each other. Every lock of the chain hands the events recorded meanwhile to the sink
//! (the indexer) when it is released, still under the lock, so the sink sees them in order.

mod ante;
mod blocks;
mod book;
mod clob;
mod deliver;
pub(crate) mod events;
mod rate_limit;
mod replay;
mod validate_basic;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::{BlockClock, GenesisAccount, SimConfig};
use crate::error::{ChainError, SimError};
use crate::tx;
use crate::types::{AccountInfo, OrderState, ReceivedMsg};

use book::{OrderKey, OrderRecord};
use deliver::{FailureHooks, IncludedTx, PendingTx};
use events::ChainEvent;
use rate_limit::RateLimiter;
use replay::Account;

/// Receives the chain's events (the indexer). Called under the chain lock, so it must not
/// lock the chain itself.
pub(crate) trait EventSink: Send + Sync + std::fmt::Debug {
    /// Applies events in the order the chain recorded them.
    fn apply(&self, events: Vec<ChainEvent>);
}

/// The chain behind one lock, shared by the control handle, the block ticker and every server.
#[derive(Clone, Debug)]
pub(crate) struct SharedChain {
    chain: Arc<Mutex<Chain>>,
    sink: Arc<OnceLock<Arc<dyn EventSink>>>,
}

impl SharedChain {
    pub(crate) fn new(chain: Chain) -> Self {
        Self {
            chain: Arc::new(Mutex::new(chain)),
            sink: Arc::new(OnceLock::new()),
        }
    }

    /// Installs the sink of the chain's events (once; a second call is ignored).
    pub(crate) fn set_sink(&self, sink: Arc<dyn EventSink>) {
        let _ = self.sink.set(sink);
    }

    /// Locks the chain; a poisoned lock still holds consistent state (every mutation is
    /// completed before anything can panic), so it is recovered rather than propagated.
    pub(crate) fn lock(&self) -> ChainGuard<'_> {
        let guard = self
            .chain
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ChainGuard {
            guard,
            sink: self.sink.get().map(Arc::as_ref),
        }
    }
}

/// A locked chain; releasing it hands the events recorded meanwhile to the sink.
pub(crate) struct ChainGuard<'a> {
    guard: MutexGuard<'a, Chain>,
    sink: Option<&'a dyn EventSink>,
}

impl Deref for ChainGuard<'_> {
    type Target = Chain;

    fn deref(&self) -> &Chain {
        &self.guard
    }
}

impl DerefMut for ChainGuard<'_> {
    fn deref_mut(&mut self) -> &mut Chain {
        &mut self.guard
    }
}

impl Drop for ChainGuard<'_> {
    fn drop(&mut self) {
        // Still under the lock: the sink sees every event once, in order.
        let events = self.guard.take_events();
        if let Some(sink) = self.sink
            && !events.is_empty()
        {
            sink.apply(events);
        }
    }
}

/// The whole simulated chain.
#[derive(Debug)]
pub(crate) struct Chain {
    pub chain_id: String,
    short_block_window: u32,
    block_clock: BlockClock,
    block_time_step: TimeDelta,
    pub height: u32,
    pub block_time: DateTime<Utc>,
    next_block_time: Option<DateTime<Utc>>,
    /// Time of every block, index = height - genesis height (served by `GetBlockByHeight`).
    block_times: Vec<DateTime<Utc>>,
    genesis_height: u32,
    /// Committed accounts: what queries serve.
    accounts: BTreeMap<String, Account>,
    /// The CheckTx copy of the accounts: admission of stateful txs.
    check_accounts: BTreeMap<String, Account>,
    next_account_number: u64,
    /// Committed orders (and the memclob's short-term orders).
    orders: HashMap<OrderKey, OrderRecord>,
    /// Short-term cancels (pre-cancels included): order key → cancel GTB.
    short_term_cancels: HashMap<OrderKey, u32>,
    /// Uncommitted stateful placements (CheckTx): executed at the next block.
    uncommitted_placements: HashMap<OrderKey, OrderState>,
    /// Uncommitted stateful cancels (CheckTx): order key → cancel GTBT, executed at the next block.
    pending_stateful_cancels: HashMap<OrderKey, u32>,
    /// Stateful orders fully filled or removed since the latest block: the next block's
    /// `RemovedStatefulOrderIds`.
    removed_since_block: HashSet<OrderKey>,
    /// Stateful txs admitted by CheckTx, in order, waiting for the next block.
    mempool: Vec<PendingTx>,
    /// Forced failures of block execution.
    failures: FailureHooks,
    short_term_limiter: RateLimiter,
    stateful_limiter: RateLimiter,
    reject_next_placement: Option<ChainError>,
    messages: Vec<ReceivedMsg>,
    /// Txs included in blocks, by hash (for `GetTx`).
    included: HashMap<String, IncludedTx>,
    /// Events for the sink, drained when the lock is released.
    events: Vec<ChainEvent>,
    /// On-chain events of the next block (fills and removals made between blocks).
    next_block_events: Vec<ChainEvent>,
}

impl Chain {
    pub(crate) fn new(config: &SimConfig) -> Result<Self, SimError> {
        let block_time_step = TimeDelta::from_std(config.block_time_step)
            .map_err(|e| SimError::Config(format!("block_time_step: {e}")))?;
        let mut chain = Self {
            chain_id: config.chain_id.clone(),
            short_block_window: config.short_block_window,
            block_clock: config.block_clock,
            block_time_step,
            height: config.genesis_height,
            block_time: config.genesis_time,
            next_block_time: None,
            block_times: vec![config.genesis_time],
            genesis_height: config.genesis_height,
            accounts: BTreeMap::new(),
            check_accounts: BTreeMap::new(),
            next_account_number: 1,
            orders: HashMap::new(),
            short_term_cancels: HashMap::new(),
            uncommitted_placements: HashMap::new(),
            pending_stateful_cancels: HashMap::new(),
            removed_since_block: HashSet::new(),
            mempool: Vec::new(),
            failures: FailureHooks::default(),
            short_term_limiter: RateLimiter::new(config.rate_limits.short_term.clone()),
            stateful_limiter: RateLimiter::new(config.rate_limits.stateful.clone()),
            reject_next_placement: None,
            messages: Vec::new(),
            included: HashMap::new(),
            events: Vec::new(),
            next_block_events: Vec::new(),
        };
        for account in &config.accounts {
            match account {
                GenesisAccount::Mnemonic { phrase, index } => {
                    let (address, pubkey) =
                        tx::derive_from_mnemonic(phrase, *index).map_err(SimError::Config)?;
                    chain.insert_account(address, Some(pubkey));
                }
                GenesisAccount::Address(address) => {
                    tx::validate_address(address).map_err(SimError::Config)?;
                    chain.insert_account(address.clone(), None);
                }
            }
        }
        Ok(chain)
    }

    // ---------------------------------------------------------------- accounts

    fn insert_account(&mut self, address: String, pubkey: Option<Vec<u8>>) -> u64 {
        if let Some(existing) = self.accounts.get(&address) {
            return existing.number;
        }
        let number = self.next_account_number;
        self.next_account_number += 1;
        let account = Account::new(number, pubkey);
        self.check_accounts.insert(address.clone(), account.clone());
        self.accounts.insert(address, account);
        number
    }

    pub(crate) fn add_account(&mut self, address: &str) -> Result<u64, SimError> {
        tx::validate_address(address).map_err(SimError::InvalidArgument)?;
        if !self.accounts.contains_key(address) {
            self.emit(ChainEvent::Account {
                address: address.to_owned(),
            });
        }
        Ok(self.insert_account(address.to_owned(), None))
    }

    /// Every account's address, in order.
    pub(crate) fn addresses(&self) -> Vec<String> {
        self.accounts.keys().cloned().collect()
    }

    /// The account: sequence and nonces from committed state, plus the CheckTx sequence.
    pub(crate) fn account(&self, address: &str) -> Option<AccountInfo> {
        let committed = self.accounts.get(address)?;
        let check = self.check_accounts.get(address).unwrap_or(committed);
        let mut timestamp_nonces = committed
            .nonces
            .as_ref()
            .map(|n| n.accepted.clone())
            .unwrap_or_default();
        timestamp_nonces.sort_unstable();
        Some(AccountInfo {
            address: address.to_owned(),
            account_number: committed.number,
            sequence: committed.sequence,
            check_tx_sequence: check.sequence,
            timestamp_nonces,
            max_ejected_nonce: committed.nonces.as_ref().map(|n| n.max_ejected),
            pubkey: committed.pubkey.clone().or_else(|| check.pubkey.clone()),
        })
    }

    // ---------------------------------------------------------------- the log

    fn log(&mut self, mut msg: ReceivedMsg) {
        msg.index = self.messages.len() as u64;
        self.messages.push(msg);
    }

    pub(crate) fn messages(&self) -> Vec<ReceivedMsg> {
        self.messages.clone()
    }

    pub(crate) fn clear_messages(&mut self) {
        self.messages.clear();
    }

    pub(crate) fn set_reject_next_placement(&mut self, error: ChainError) {
        self.reject_next_placement = Some(error);
    }
}
