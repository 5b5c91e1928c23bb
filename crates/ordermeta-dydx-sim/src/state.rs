//! Chain state and the CheckTx pipeline.
//!
//! Everything here is synchronous and runs under one mutex: the chain itself linearises
//! CheckTx of clob txs behind a global lock (`protocol/app/ante.go`, `clobAnteHandle`).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use dydx_proto::dydxprotocol::clob::{
    MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder, Order, OrderId, msg_cancel_order, order,
};
use dydx_proto::dydxprotocol::subaccounts::SubaccountId;
use prost::Message;

use crate::config::{
    GenesisAccount, MAX_BATCH_CANCEL_SIZE, RateLimit, STATEFUL_ORDER_TIME_WINDOW_SECS, SimConfig,
};
use crate::error::{ChainError, SimError, codes};
use crate::tx::{self, DecodedTx, TxMsg};
use crate::types::{
    AccountInfo, Fill, GoodTil, MsgKind, OrderState, OrderStatus, ReceivedMsg, order_flags,
};

/// `OrderId` as a hashable key: the chain identifies an order by exactly these fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OrderKey {
    owner: String,
    number: u32,
    client_id: u32,
    order_flags: u32,
    clob_pair_id: u32,
}

impl OrderKey {
    pub(crate) fn new(id: &OrderId) -> Self {
        let (owner, number) = id
            .subaccount_id
            .as_ref()
            .map(|s| (s.owner.clone(), s.number))
            .unwrap_or_default();
        Self {
            owner,
            number,
            client_id: id.client_id,
            order_flags: id.order_flags,
            clob_pair_id: id.clob_pair_id,
        }
    }

    fn is_short_term(&self) -> bool {
        self.order_flags == order_flags::SHORT_TERM
    }
}

#[derive(Clone, Debug)]
struct Account {
    number: u64,
    sequence: u64,
    pubkey: Option<Vec<u8>>,
}

/// Sliding-window counter per account, like the chain's `multiBlockRateLimiter`: the weight is
/// added before the check, so rejected requests count too.
#[derive(Debug, Default)]
struct RateLimiter {
    rules: Vec<RateLimit>,
    per_account: HashMap<String, BTreeMap<u32, u32>>,
}

impl RateLimiter {
    fn new(rules: Vec<RateLimit>) -> Self {
        Self {
            rules,
            per_account: HashMap::new(),
        }
    }

    fn charge(&mut self, account: &str, height: u32, weight: u32) -> Result<(), ChainError> {
        if self.rules.is_empty() {
            return Ok(());
        }
        let counts = self.per_account.entry(account.to_owned()).or_default();
        *counts.entry(height).or_default() += weight;
        for rule in &self.rules {
            let first = height.saturating_sub(rule.num_blocks.saturating_sub(1));
            let total: u32 = counts.range(first..=height).map(|(_, c)| *c).sum();
            if total > rule.limit {
                return Err(ChainError::clob(
                    codes::clob::BLOCK_RATE_LIMIT_EXCEEDED,
                    format!(
                        "Rate of {total} exceeds configured block rate limit of {{NumBlocks:{} Limit:{}}} for {account}",
                        rule.num_blocks, rule.limit
                    ),
                ));
            }
        }
        Ok(())
    }

    fn prune(&mut self, height: u32) {
        let longest = self.rules.iter().map(|r| r.num_blocks).max().unwrap_or(0);
        let keep_from = height.saturating_sub(longest);
        self.per_account.retain(|_, counts| {
            counts.retain(|h, _| *h > keep_from);
            !counts.is_empty()
        });
    }
}

#[derive(Clone, Debug)]
struct OrderRecord {
    state: OrderState,
}

/// Outcome of one broadcast, as put into the `TxResponse`.
#[derive(Debug)]
pub(crate) struct TxOutcome {
    pub hash: String,
    pub height: u32,
    pub result: Result<(), ChainError>,
}

/// The whole simulated chain.
#[derive(Debug)]
pub(crate) struct Chain {
    pub chain_id: String,
    short_block_window: u32,
    block_time_step: TimeDelta,
    pub height: u32,
    pub block_time: DateTime<Utc>,
    next_block_time: Option<DateTime<Utc>>,
    /// Time of every block, index = height - genesis height (served by `GetBlockByHeight`).
    block_times: Vec<DateTime<Utc>>,
    genesis_height: u32,
    accounts: BTreeMap<String, Account>,
    next_account_number: u64,
    orders: HashMap<OrderKey, OrderRecord>,
    /// Short-term cancels (pre-cancels included): order key → cancel GTB.
    short_term_cancels: HashMap<OrderKey, u32>,
    /// Uncommitted stateful cancels: applied at the next block.
    pending_stateful_cancels: HashMap<OrderKey, u32>,
    short_term_limiter: RateLimiter,
    stateful_limiter: RateLimiter,
    reject_next_placement: Option<ChainError>,
    messages: Vec<ReceivedMsg>,
    /// Accepted txs by hash (for `GetTx`): bytes and the height of the block that includes them.
    txs: HashMap<String, (Vec<u8>, u32)>,
}

impl Chain {
    pub(crate) fn new(config: &SimConfig) -> Result<Self, SimError> {
        let block_time_step = TimeDelta::from_std(config.block_time_step)
            .map_err(|e| SimError::Config(format!("block_time_step: {e}")))?;
        let mut chain = Self {
            chain_id: config.chain_id.clone(),
            short_block_window: config.short_block_window,
            block_time_step,
            height: config.genesis_height,
            block_time: config.genesis_time,
            next_block_time: None,
            block_times: vec![config.genesis_time],
            genesis_height: config.genesis_height,
            accounts: BTreeMap::new(),
            next_account_number: 1,
            orders: HashMap::new(),
            short_term_cancels: HashMap::new(),
            pending_stateful_cancels: HashMap::new(),
            short_term_limiter: RateLimiter::new(config.rate_limits.short_term.clone()),
            stateful_limiter: RateLimiter::new(config.rate_limits.stateful.clone()),
            reject_next_placement: None,
            messages: Vec::new(),
            txs: HashMap::new(),
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

    fn insert_account(&mut self, address: String, pubkey: Option<Vec<u8>>) -> u64 {
        if let Some(existing) = self.accounts.get(&address) {
            return existing.number;
        }
        let number = self.next_account_number;
        self.next_account_number += 1;
        self.accounts.insert(
            address,
            Account {
                number,
                sequence: 0,
                pubkey,
            },
        );
        number
    }

    pub(crate) fn add_account(&mut self, address: &str) -> Result<u64, SimError> {
        tx::validate_address(address).map_err(SimError::InvalidArgument)?;
        Ok(self.insert_account(address.to_owned(), None))
    }

    pub(crate) fn account(&self, address: &str) -> Option<AccountInfo> {
        self.accounts.get(address).map(|a| AccountInfo {
            address: address.to_owned(),
            account_number: a.number,
            sequence: a.sequence,
            pubkey: a.pubkey.clone(),
        })
    }

    pub(crate) fn block_time_at(&self, height: u32) -> Option<DateTime<Utc>> {
        let index = height.checked_sub(self.genesis_height)?;
        self.block_times.get(index as usize).copied()
    }

    pub(crate) fn tx(&self, hash: &str) -> Option<&(Vec<u8>, u32)> {
        self.txs.get(&hash.to_ascii_uppercase())
    }

    // ---------------------------------------------------------------- blocks

    /// Sets the time of the next block. Block time never goes backwards.
    pub(crate) fn set_next_block_time(&mut self, time: DateTime<Utc>) -> Result<(), SimError> {
        if time < self.block_time {
            return Err(SimError::InvalidArgument(format!(
                "block time {time} is before the latest block time {}",
                self.block_time
            )));
        }
        self.next_block_time = Some(time);
        Ok(())
    }

    /// Produces one block: commits uncommitted stateful cancels (DeliverTx), expires stateful
    /// orders (EndBlocker) and short-term orders and cancels (PrepareCheckState).
    pub(crate) fn produce_block(&mut self) {
        self.height += 1;
        let time = self
            .next_block_time
            .take()
            .unwrap_or(self.block_time + self.block_time_step);
        self.block_time = time;
        self.block_times.push(time);
        let height = self.height;
        let block_time_unix = time.timestamp();

        for (key, _) in std::mem::take(&mut self.pending_stateful_cancels) {
            if let Some(record) = self.orders.get_mut(&key)
                && record.state.status.is_live()
            {
                record.state.status = OrderStatus::Canceled;
                record.state.updated_at_height = height;
            }
        }
        for (key, record) in self.orders.iter_mut() {
            let expired = match record.state.good_til {
                GoodTil::Block(gtb) => key.is_short_term() && height >= gtb,
                GoodTil::BlockTime(gtbt) => {
                    !key.is_short_term() && block_time_unix >= i64::from(gtbt)
                }
            };
            if expired && record.state.status.is_live() {
                record.state.status = OrderStatus::Expired;
                record.state.updated_at_height = height;
            }
        }
        self.short_term_cancels.retain(|_, gtb| *gtb > height);
        self.short_term_limiter.prune(height);
        self.stateful_limiter.prune(height);
    }

    // ---------------------------------------------------------------- control

    pub(crate) fn order(&self, id: &OrderId) -> Option<OrderState> {
        self.orders.get(&OrderKey::new(id)).map(|r| r.state.clone())
    }

    pub(crate) fn orders(&self) -> Vec<OrderState> {
        let mut all: Vec<(OrderKey, OrderState)> = self
            .orders
            .iter()
            .map(|(k, r)| (k.clone(), r.state.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.into_iter().map(|(_, s)| s).collect()
    }

    pub(crate) fn short_term_cancel(&self, id: &OrderId) -> Option<u32> {
        self.short_term_cancels.get(&OrderKey::new(id)).copied()
    }

    pub(crate) fn fill(&mut self, id: &OrderId, fill: Fill) -> Result<OrderState, SimError> {
        let height = self.height;
        let record = self
            .orders
            .get_mut(&OrderKey::new(id))
            .ok_or(SimError::OrderNotFound)?;
        let state = &mut record.state;
        if !state.status.is_live() {
            return Err(SimError::OrderNotOpen(state.status));
        }
        let remaining = state.quantums.saturating_sub(state.filled_quantums);
        let amount = match fill {
            Fill::Full => remaining,
            Fill::Quantums(q) if q == 0 || q > remaining => {
                return Err(SimError::InvalidArgument(format!(
                    "fill of {q} quantums, remaining {remaining}"
                )));
            }
            Fill::Quantums(q) => q,
        };
        state.filled_quantums += amount;
        if state.filled_quantums >= state.quantums {
            state.status = OrderStatus::Filled;
        }
        state.updated_at_height = height;
        Ok(state.clone())
    }

    pub(crate) fn remove_order(&mut self, id: &OrderId) -> Result<OrderState, SimError> {
        let height = self.height;
        let record = self
            .orders
            .get_mut(&OrderKey::new(id))
            .ok_or(SimError::OrderNotFound)?;
        if !record.state.status.is_live() {
            return Err(SimError::OrderNotOpen(record.state.status));
        }
        record.state.status = OrderStatus::Removed;
        record.state.updated_at_height = height;
        Ok(record.state.clone())
    }

    pub(crate) fn set_reject_next_placement(&mut self, error: ChainError) {
        self.reject_next_placement = Some(error);
    }

    pub(crate) fn messages(&self) -> Vec<ReceivedMsg> {
        self.messages.clone()
    }

    pub(crate) fn clear_messages(&mut self) {
        self.messages.clear();
    }

    // ---------------------------------------------------------------- CheckTx

    /// Runs a broadcast tx through the ante handlers and the clob, like CheckTx on a full node.
    /// State changes (sequence, pubkey, book) are kept only if the whole tx succeeds.
    pub(crate) fn check_tx(&mut self, tx_bytes: &[u8]) -> TxOutcome {
        let hash = tx::tx_hash(tx_bytes);
        let height = self.height;
        let decoded = match tx::decode(tx_bytes) {
            Ok(decoded) => decoded,
            Err(err) => {
                self.log(ReceivedMsg {
                    index: 0,
                    height,
                    tx_hash: hash.clone(),
                    signer: None,
                    tx_sequence: None,
                    kind: MsgKind::Undecodable,
                    result: Err(err.clone()),
                });
                return TxOutcome {
                    hash,
                    height,
                    result: Err(err),
                };
            }
        };
        let signer = signer_of(&decoded.msgs);
        let result = self.run_tx(&decoded);
        if result.is_ok() {
            // The tx would be included in the next block.
            self.txs
                .insert(hash.clone(), (tx_bytes.to_vec(), height + 1));
        }
        for msg in &decoded.msgs {
            self.log(ReceivedMsg {
                index: 0,
                height,
                tx_hash: hash.clone(),
                signer: signer.clone(),
                tx_sequence: Some(decoded.sequence),
                kind: MsgKind::from_msg(msg),
                result: result.clone(),
            });
        }
        TxOutcome {
            hash,
            height,
            result,
        }
    }

    fn log(&mut self, mut msg: ReceivedMsg) {
        msg.index = self.messages.len() as u64;
        self.messages.push(msg);
    }

    /// Validates a tx without signature checks or state changes (the `Simulate` RPC).
    pub(crate) fn simulate(&self, tx_bytes: &[u8]) -> Result<(), ChainError> {
        let decoded = tx::decode(tx_bytes)?;
        for msg in &decoded.msgs {
            validate_basic(msg)?;
        }
        Ok(())
    }

    fn run_tx(&mut self, tx: &DecodedTx) -> Result<(), ChainError> {
        // ValidateMsgsInClobTx / IsShortTermClobMsgTx: a clob msg must be alone in its tx.
        let has_clob = tx.msgs.iter().any(|m| !matches!(m, TxMsg::Other(_)));
        if has_clob && tx.msgs.len() > 1 {
            return Err(ChainError::sdk(
                codes::sdk::INVALID_REQUEST,
                "a transaction containing MsgCancelOrder or MsgPlaceOrder may not contain more than one message",
            ));
        }
        let msg = &tx.msgs[0];
        if let TxMsg::Other(type_url) = msg {
            return Err(ChainError::sdk(
                codes::sdk::INVALID_REQUEST,
                format!("message type {type_url} is not supported by the simulator"),
            ));
        }
        validate_basic(msg)?;
        let signer = signer_of(&tx.msgs)
            .ok_or_else(|| ChainError::sdk(codes::sdk::INVALID_ADDRESS, "message has no signer"))?;
        let account = self.accounts.get(&signer).cloned().ok_or_else(|| {
            ChainError::sdk(
                codes::sdk::UNKNOWN_ADDRESS,
                format!("account {signer} does not exist"),
            )
        })?;

        // SetPubKeyDecorator: a supplied key must hash to the signer's address.
        let pubkey = match (&tx.pubkey, &account.pubkey) {
            (Some(given), _) => {
                if tx::address_of(given)? != signer {
                    return Err(ChainError::sdk(
                        codes::sdk::INVALID_PUBKEY,
                        format!(
                            "pubKey does not match signer address {signer} with signer index: 0"
                        ),
                    ));
                }
                given.clone()
            }
            (None, Some(stored)) => stored.clone(),
            (None, None) => {
                return Err(ChainError::sdk(
                    codes::sdk::INVALID_PUBKEY,
                    "pubkey on account is not set",
                ));
            }
        };

        // ReplayProtectionDecorator: only stateful txs are bound to the sequence.
        let short_term = is_short_term_tx(msg);
        if !short_term && tx.sequence != account.sequence {
            return Err(ChainError::sdk(
                codes::sdk::WRONG_SEQUENCE,
                format!(
                    "account sequence mismatch, expected {}, got {}",
                    account.sequence, tx.sequence
                ),
            ));
        }

        // SigVerificationDecorator.
        if !tx::verify_direct(tx, &pubkey, &self.chain_id, account.number) {
            return Err(ChainError::sdk(
                codes::sdk::UNAUTHORIZED,
                format!(
                    "signature verification failed; please verify account number ({}) and chain-id ({})",
                    account.number, self.chain_id
                ),
            ));
        }

        // Timeout height: a short-term place may not outlive its tx's timeout height.
        if let TxMsg::Place(place) = msg {
            let gtb = place_good_til(place).and_then(|g| match g {
                GoodTil::Block(b) => Some(b),
                GoodTil::BlockTime(_) => None,
            });
            if let Some(gtb) = gtb
                && short_term
                && tx.body.timeout_height > 0
                && tx.body.timeout_height < u64::from(gtb)
            {
                return Err(ChainError::sdk(
                    codes::sdk::INVALID_REQUEST,
                    "timeout height (if non-zero) may not be less than `goodTilBlock` for a short-term place order",
                ));
            }
        }

        self.rate_limit(msg, &signer)?;
        match msg {
            TxMsg::Place(place) => self.place_order(place)?,
            TxMsg::Cancel(cancel) => self.cancel_order(cancel)?,
            TxMsg::Batch(batch) => self.batch_cancel(batch)?,
            TxMsg::Other(_) => {}
        }

        // The ante handler's cache store is written only on success: sequence and pubkey too.
        if let Some(acc) = self.accounts.get_mut(&signer) {
            if acc.pubkey.is_none() {
                acc.pubkey = Some(pubkey);
            }
            if !short_term {
                acc.sequence += 1;
            }
        }
        Ok(())
    }

    fn next_height(&self) -> u32 {
        self.height + 1
    }

    /// `validateGoodTilBlock`: next_height <= GTB <= next_height + ShortBlockWindow.
    fn validate_good_til_block(&self, gtb: u32) -> Result<(), ChainError> {
        let next = self.next_height();
        if gtb < next {
            return Err(ChainError::clob(
                codes::clob::HEIGHT_EXCEEDS_GOOD_TIL_BLOCK,
                format!("GoodTilBlock {gtb} is less than the current blockHeight {next}"),
            ));
        }
        if gtb > next + self.short_block_window {
            return Err(ChainError::clob(
                codes::clob::GOOD_TIL_BLOCK_EXCEEDS_SHORT_BLOCK_WINDOW,
                format!(
                    "The GoodTilBlock {gtb} exceeds the current blockHeight {next} plus ShortBlockWindow {}",
                    self.short_block_window
                ),
            ));
        }
        Ok(())
    }

    /// Stateful GTBT window against the previous (latest committed) block time.
    fn validate_good_til_block_time(&self, gtbt: u32) -> Result<(), ChainError> {
        let prev = self.block_time.timestamp();
        if i64::from(gtbt) <= prev {
            return Err(ChainError::clob(
                codes::clob::TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME,
                format!("GoodTilBlockTime {gtbt} is less than the previous blockTime {prev}"),
            ));
        }
        let end = prev + STATEFUL_ORDER_TIME_WINDOW_SECS;
        if i64::from(gtbt) > end {
            return Err(ChainError::clob(
                codes::clob::GOOD_TIL_BLOCK_TIME_EXCEEDS_STATEFUL_ORDER_TIME_WINDOW,
                format!(
                    "GoodTilBlockTime {gtbt} exceeds the previous blockTime plus StatefulOrderTimeWindow {end}"
                ),
            ));
        }
        Ok(())
    }

    /// `ClobRateLimitDecorator`: GTB validity is checked first so replays of stale short-term
    /// txs cannot burn the budget.
    fn rate_limit(&mut self, msg: &TxMsg, owner: &str) -> Result<(), ChainError> {
        let height = self.height;
        match msg {
            TxMsg::Place(place) => match place_good_til(place) {
                Some(GoodTil::Block(gtb)) if place_is_short_term(place) => {
                    self.validate_good_til_block(gtb)?;
                    self.short_term_limiter.charge(owner, height, 1)
                }
                _ => self.stateful_limiter.charge(owner, height, 1),
            },
            TxMsg::Cancel(cancel) => {
                let short = cancel
                    .order_id
                    .as_ref()
                    .is_some_and(|id| id.order_flags == order_flags::SHORT_TERM);
                if short {
                    if let Some(msg_cancel_order::GoodTilOneof::GoodTilBlock(gtb)) =
                        cancel.good_til_oneof
                    {
                        self.validate_good_til_block(gtb)?;
                    }
                    self.short_term_limiter.charge(owner, height, 1)
                } else {
                    // Stateful cancels are not rate limited on chain.
                    Ok(())
                }
            }
            TxMsg::Batch(batch) => {
                self.validate_good_til_block(batch.good_til_block)?;
                // BATCH_CANCEL_RATE_LIMIT_WEIGHT = 2.
                self.short_term_limiter.charge(owner, height, 2)
            }
            TxMsg::Other(_) => Ok(()),
        }
    }

    fn place_order(&mut self, msg: &MsgPlaceOrder) -> Result<(), ChainError> {
        let Some(order) = msg.order.as_ref() else {
            return Err(ChainError::clob(
                codes::clob::INVALID_PLACE_ORDER,
                "missing order",
            ));
        };
        let Some(id) = order.order_id.as_ref() else {
            return Err(ChainError::clob(
                codes::clob::INVALID_PLACE_ORDER,
                "missing order id",
            ));
        };
        let key = OrderKey::new(id);
        let good_til = place_good_til(msg).ok_or_else(|| {
            ChainError::clob(codes::clob::INVALID_PLACE_ORDER, "missing good-til")
        })?;
        let height = self.height;
        let existing = self
            .orders
            .get(&key)
            .filter(|r| r.state.status.is_live())
            .map(|r| r.state.clone());

        match good_til {
            GoodTil::Block(gtb) => {
                // PlaceShortTermOrder → PerformStatefulOrderValidation → memclob validateNewOrder.
                self.validate_good_til_block(gtb)?;
                if let Some(cancel_gtb) = self.short_term_cancels.get(&key)
                    && *cancel_gtb >= gtb
                {
                    return Err(ChainError::clob(
                        codes::clob::ORDER_IS_CANCELED,
                        format!("Order: {id:?}, Cancellation GoodTilBlock: {cancel_gtb}"),
                    ));
                }
                if let Some(existing) = &existing {
                    validate_replacement(&existing.order, order)?;
                }
            }
            GoodTil::BlockTime(gtbt) => {
                // PlaceStatefulOrder → PerformStatefulOrderValidation.
                self.validate_good_til_block_time(gtbt)?;
                if self.pending_stateful_cancels.contains_key(&key) {
                    return Err(ChainError::clob(
                        codes::clob::STATEFUL_ORDER_PREVIOUSLY_CANCELLED,
                        "An uncommitted stateful order cancellation with this OrderId already exists",
                    ));
                }
                if existing.is_some() {
                    return Err(ChainError::clob(
                        codes::clob::STATEFUL_ORDER_ALREADY_EXISTS,
                        "A stateful order with this OrderId already exists and stateful order replacement is not supported",
                    ));
                }
            }
        }

        // Fill amounts stay in state until the filled order's good-til passes, so a fully
        // filled order id cannot be placed again before then.
        let carried_fill = self
            .orders
            .get(&key)
            .filter(|r| r.state.status.is_live() || r.state.status == OrderStatus::Filled)
            .filter(|r| !self.good_til_passed(r.state.good_til))
            .map(|r| r.state.filled_quantums)
            .unwrap_or(0);
        if carried_fill >= order.quantums {
            return Err(ChainError::clob(
                codes::clob::ORDER_FULLY_FILLED,
                format!(
                    "Order remaining amount is less than `MinOrderBaseQuantums`. Remaining amount: 0. Order: {id:?}"
                ),
            ));
        }

        if let Some(error) = self.reject_next_placement.take() {
            return Err(error);
        }

        // There is no matching engine: IOC/FOK orders find no liquidity and never rest.
        let immediate = matches!(
            order::TimeInForce::try_from(order.time_in_force),
            Ok(order::TimeInForce::Ioc | order::TimeInForce::FillOrKill)
        );
        let status = if immediate {
            OrderStatus::Removed
        } else {
            OrderStatus::Open
        };
        let placed_at_height = existing
            .as_ref()
            .map(|e| e.placed_at_height)
            .unwrap_or(height);
        self.orders.insert(
            key,
            OrderRecord {
                state: OrderState {
                    order_id: id.clone(),
                    order: order.clone(),
                    status,
                    good_til,
                    quantums: order.quantums,
                    filled_quantums: carried_fill,
                    placed_at_height,
                    updated_at_height: height,
                },
            },
        );
        Ok(())
    }

    fn good_til_passed(&self, good_til: GoodTil) -> bool {
        match good_til {
            GoodTil::Block(gtb) => self.height >= gtb,
            GoodTil::BlockTime(gtbt) => self.block_time.timestamp() >= i64::from(gtbt),
        }
    }

    fn cancel_order(&mut self, msg: &MsgCancelOrder) -> Result<(), ChainError> {
        let Some(id) = msg.order_id.as_ref() else {
            return Err(ChainError::clob(
                codes::clob::INVALID_PLACE_ORDER,
                "missing order id",
            ));
        };
        let key = OrderKey::new(id);
        match msg.good_til_oneof {
            Some(msg_cancel_order::GoodTilOneof::GoodTilBlock(gtb)) if key.is_short_term() => {
                self.cancel_short_term(&key, gtb)
            }
            Some(msg_cancel_order::GoodTilOneof::GoodTilBlockTime(gtbt))
                if !key.is_short_term() =>
            {
                self.cancel_stateful(&key, id, gtbt)
            }
            // validate_basic rejects mismatched good-til kinds before we get here.
            _ => Err(ChainError::clob(
                codes::clob::INVALID_ORDER_GOOD_TIL_BLOCK,
                "good-til does not match the order flags",
            )),
        }
    }

    /// `CancelShortTermOrder` + memclob `CancelOrder`.
    fn cancel_short_term(&mut self, key: &OrderKey, gtb: u32) -> Result<(), ChainError> {
        self.validate_good_til_block(gtb)?;
        if let Some(existing) = self.short_term_cancels.get(key)
            && *existing >= gtb
        {
            return Err(ChainError::clob(
                codes::clob::CANCEL_ALREADY_EXISTS,
                format!("existing cancel GoodTilBlock {existing}, new {gtb}"),
            ));
        }
        let height = self.height;
        // A lower cancel GTB is accepted but leaves the order live.
        if let Some(record) = self.orders.get_mut(key)
            && record.state.status.is_live()
            && let GoodTil::Block(order_gtb) = record.state.good_til
            && gtb >= order_gtb
        {
            record.state.status = OrderStatus::Canceled;
            record.state.updated_at_height = height;
        }
        self.short_term_cancels.insert(key.clone(), gtb);
        Ok(())
    }

    /// `CancelStatefulOrder` → `PerformOrderCancellationStatefulValidation` (CheckTx: the cancel
    /// is uncommitted until the next block).
    fn cancel_stateful(
        &mut self,
        key: &OrderKey,
        id: &OrderId,
        gtbt: u32,
    ) -> Result<(), ChainError> {
        self.validate_good_til_block_time(gtbt)?;
        if let Some(existing) = self.pending_stateful_cancels.get(key) {
            return Err(ChainError::clob(
                codes::clob::STATEFUL_ORDER_CANCELLATION_ALREADY_EXISTS,
                format!(
                    "An uncommitted stateful order cancellation with this OrderId already exists and stateful order cancellation replacement is not supported. Existing order cancellation GoodTilBlockTime ({existing}), New order cancellation GoodTilBlockTime ({gtbt})"
                ),
            ));
        }
        let height = self.height;
        let Some(record) = self
            .orders
            .get_mut(key)
            .filter(|r| r.state.status.is_live())
        else {
            return Err(ChainError::clob(
                codes::clob::STATEFUL_ORDER_DOES_NOT_EXIST,
                format!("Order Id to cancel does not exist. OrderId : {id:?}"),
            ));
        };
        if let GoodTil::BlockTime(order_gtbt) = record.state.good_til
            && gtbt < order_gtbt
        {
            return Err(ChainError::clob(
                codes::clob::INVALID_STATEFUL_ORDER_CANCELLATION,
                format!(
                    "cancellation goodTilBlockTime less than stateful order goodTilBlockTime. cancellation {gtbt}, order {order_gtbt}"
                ),
            ));
        }
        record.state.status = OrderStatus::CancelPending;
        record.state.updated_at_height = height;
        self.pending_stateful_cancels.insert(key.clone(), gtbt);
        Ok(())
    }

    /// `BatchCancelShortTermOrder`: each cancel runs like a `MsgCancelOrder`; failures are
    /// silent unless none succeeded.
    fn batch_cancel(&mut self, msg: &MsgBatchCancel) -> Result<(), ChainError> {
        self.validate_good_til_block(msg.good_til_block)?;
        let subaccount = msg.subaccount_id.clone().unwrap_or_default();
        let mut successes = 0usize;
        let mut failures = Vec::new();
        for batch in &msg.short_term_cancels {
            for client_id in &batch.client_ids {
                let key = OrderKey::new(&OrderId {
                    subaccount_id: Some(subaccount.clone()),
                    client_id: *client_id,
                    order_flags: order_flags::SHORT_TERM,
                    clob_pair_id: batch.clob_pair_id,
                });
                match self.cancel_short_term(&key, msg.good_til_block) {
                    Ok(()) => successes += 1,
                    Err(_) => failures.push(*client_id),
                }
            }
        }
        if successes == 0 {
            return Err(ChainError::clob(
                codes::clob::BATCH_CANCEL_FAILED,
                format!("No successful cancellations. Failures: {failures:?}"),
            ));
        }
        Ok(())
    }
}

fn place_good_til(msg: &MsgPlaceOrder) -> Option<GoodTil> {
    match msg.order.as_ref()?.good_til_oneof? {
        order::GoodTilOneof::GoodTilBlock(b) => Some(GoodTil::Block(b)),
        order::GoodTilOneof::GoodTilBlockTime(t) => Some(GoodTil::BlockTime(t)),
    }
}

fn place_is_short_term(msg: &MsgPlaceOrder) -> bool {
    msg.order
        .as_ref()
        .and_then(|o| o.order_id.as_ref())
        .is_some_and(|id| id.order_flags == order_flags::SHORT_TERM)
}

/// `ShouldSkipSequenceValidation` / `IsShortTermClobMsgTx`.
fn is_short_term_tx(msg: &TxMsg) -> bool {
    match msg {
        TxMsg::Place(place) => place_is_short_term(place),
        TxMsg::Cancel(cancel) => cancel
            .order_id
            .as_ref()
            .is_some_and(|id| id.order_flags == order_flags::SHORT_TERM),
        TxMsg::Batch(_) => true,
        TxMsg::Other(_) => false,
    }
}

/// The signer of a clob msg is the owner of its subaccount.
fn signer_of(msgs: &[TxMsg]) -> Option<String> {
    let subaccount: Option<&SubaccountId> = match msgs.first()? {
        TxMsg::Place(p) => p.order.as_ref()?.order_id.as_ref()?.subaccount_id.as_ref(),
        TxMsg::Cancel(c) => c.order_id.as_ref()?.subaccount_id.as_ref(),
        TxMsg::Batch(b) => b.subaccount_id.as_ref(),
        TxMsg::Other(_) => None,
    };
    subaccount
        .map(|s| s.owner.clone())
        .filter(|owner| !owner.is_empty())
}

fn validate_order_id(id: Option<&OrderId>) -> Result<&OrderId, ChainError> {
    let id = id.ok_or_else(|| ChainError::sdk(codes::sdk::INVALID_ADDRESS, "missing order id"))?;
    let owner = id
        .subaccount_id
        .as_ref()
        .map(|s| s.owner.as_str())
        .unwrap_or_default();
    tx::validate_address(owner).map_err(|e| ChainError::sdk(codes::sdk::INVALID_ADDRESS, e))?;
    if !matches!(
        id.order_flags,
        order_flags::SHORT_TERM | order_flags::CONDITIONAL | order_flags::LONG_TERM
    ) {
        return Err(ChainError::clob(
            codes::clob::INVALID_ORDER_FLAG,
            format!("invalid order flags {}", id.order_flags),
        ));
    }
    Ok(id)
}

/// Stateless checks: `MsgPlaceOrder.ValidateBasic`, `MsgCancelOrder.ValidateBasic`,
/// `MsgBatchCancel.ValidateBasic`.
fn validate_basic(msg: &TxMsg) -> Result<(), ChainError> {
    match msg {
        TxMsg::Place(place) => {
            let order = place.order.as_ref().ok_or_else(|| {
                ChainError::clob(codes::clob::INVALID_PLACE_ORDER, "missing order")
            })?;
            let id = validate_order_id(order.order_id.as_ref())?;
            if !matches!(
                order::Side::try_from(order.side),
                Ok(order::Side::Buy | order::Side::Sell)
            ) {
                return Err(ChainError::clob(
                    codes::clob::INVALID_ORDER_SIDE,
                    format!("invalid order side {}", order.side),
                ));
            }
            if order.quantums == 0 {
                return Err(ChainError::clob(
                    codes::clob::INVALID_ORDER_QUANTUMS,
                    "order size quantums cannot be 0",
                ));
            }
            if order.subticks == 0 {
                return Err(ChainError::clob(
                    codes::clob::INVALID_ORDER_SUBTICKS,
                    "order subticks cannot be 0",
                ));
            }
            if id.order_flags == order_flags::SHORT_TERM {
                match order.good_til_oneof {
                    Some(order::GoodTilOneof::GoodTilBlock(b)) if b > 0 => {}
                    _ => {
                        return Err(ChainError::clob(
                            codes::clob::INVALID_ORDER_GOOD_TIL_BLOCK,
                            "goodTilBlock cannot be 0",
                        ));
                    }
                }
            } else {
                match order.good_til_oneof {
                    Some(order::GoodTilOneof::GoodTilBlockTime(t)) if t > 0 => {}
                    _ => {
                        return Err(ChainError::clob(
                            codes::clob::INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME,
                            "stateful order goodTilBlockTime cannot be 0",
                        ));
                    }
                }
                if id.order_flags == order_flags::LONG_TERM
                    && matches!(
                        order::TimeInForce::try_from(order.time_in_force),
                        Ok(order::TimeInForce::Ioc | order::TimeInForce::FillOrKill)
                    )
                {
                    return Err(ChainError::clob(
                        codes::clob::LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION,
                        "long-term orders cannot be IOC or FOK",
                    ));
                }
            }
            Ok(())
        }
        TxMsg::Cancel(cancel) => {
            let id = validate_order_id(cancel.order_id.as_ref())?;
            if id.order_flags == order_flags::SHORT_TERM {
                match cancel.good_til_oneof {
                    Some(msg_cancel_order::GoodTilOneof::GoodTilBlock(b)) if b > 0 => Ok(()),
                    _ => Err(ChainError::clob(
                        codes::clob::INVALID_ORDER_GOOD_TIL_BLOCK,
                        format!("cancellation goodTilBlock cannot be 0, orderId {id:?}"),
                    )),
                }
            } else {
                match cancel.good_til_oneof {
                    Some(msg_cancel_order::GoodTilOneof::GoodTilBlockTime(t)) if t > 0 => Ok(()),
                    _ => Err(ChainError::clob(
                        codes::clob::INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME,
                        format!("stateful cancellation goodTilBlockTime cannot be 0, {id:?}"),
                    )),
                }
            }
        }
        TxMsg::Batch(batch) => {
            let owner = batch
                .subaccount_id
                .as_ref()
                .map(|s| s.owner.as_str())
                .unwrap_or_default();
            tx::validate_address(owner)
                .map_err(|e| ChainError::sdk(codes::sdk::INVALID_ADDRESS, e))?;
            let invalid =
                |detail: String| ChainError::clob(codes::clob::INVALID_BATCH_CANCEL, detail);
            if batch.short_term_cancels.is_empty() {
                return Err(invalid(
                    "Batch cancel cannot have zero orders specified.".into(),
                ));
            }
            let mut total = 0usize;
            let mut seen_pairs = std::collections::HashSet::new();
            for b in &batch.short_term_cancels {
                if !seen_pairs.insert(b.clob_pair_id) {
                    return Err(invalid(format!(
                        "Batch cancel cannot have 2 order batches with the same clob pair id: {}",
                        b.clob_pair_id
                    )));
                }
                if b.client_ids.is_empty() {
                    return Err(invalid("Order Batch cannot have zero client ids.".into()));
                }
                let mut seen_ids = std::collections::HashSet::new();
                for id in &b.client_ids {
                    if !seen_ids.insert(*id) {
                        return Err(invalid(format!(
                            "Batch Cancel Clob pair id {} has duplicate client ids: {id}",
                            b.clob_pair_id
                        )));
                    }
                }
                total += b.client_ids.len();
            }
            if total > MAX_BATCH_CANCEL_SIZE {
                return Err(invalid(format!(
                    "Batch cancel cannot have over {MAX_BATCH_CANCEL_SIZE} orders. Order count: {total}"
                )));
            }
            Ok(())
        }
        TxMsg::Other(_) => Ok(()),
    }
}

/// memclob `validateReplacement` with `MustCmpReplacementOrder`: the new order must have a
/// strictly later GTB, or the same GTB and a greater SHA-256 of its encoding; and keep side,
/// time-in-force and reduce-only.
fn validate_replacement(existing: &Order, new: &Order) -> Result<(), ChainError> {
    let expiry = |o: &Order| match o.good_til_oneof {
        Some(order::GoodTilOneof::GoodTilBlock(b)) => b,
        Some(order::GoodTilOneof::GoodTilBlockTime(t)) => t,
        None => 0,
    };
    let ordering = expiry(existing).cmp(&expiry(new)).then_with(|| {
        let hash = |o: &Order| {
            use bip32::secp256k1::sha2::{Digest, Sha256};
            Sha256::digest(o.encode_to_vec())
        };
        hash(existing).cmp(&hash(new))
    });
    let invalid = |detail: &str| ChainError::clob(codes::clob::INVALID_REPLACEMENT, detail);
    if ordering.is_ge() {
        return Err(invalid(
            "New order cannot reduce the GoodTilBlock or GoodTilBlockTime of existing order",
        ));
    }
    if existing.side != new.side {
        return Err(invalid(
            "New order cannot change the Side of the existing order",
        ));
    }
    if existing.time_in_force != new.time_in_force {
        return Err(invalid(
            "New order cannot change the TimeInForce of the existing order",
        ));
    }
    if existing.reduce_only != new.reduce_only {
        return Err(invalid(
            "New order cannot change the ReduceOnly field of the existing order",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_window_counts_rejected_requests() {
        let mut limiter = RateLimiter::new(vec![RateLimit {
            num_blocks: 2,
            limit: 2,
        }]);
        assert!(limiter.charge("a", 10, 1).is_ok());
        assert!(limiter.charge("a", 10, 1).is_ok());
        let err = limiter.charge("a", 10, 1).expect_err("over the limit");
        assert!(err.is(
            codes::CODESPACE_CLOB,
            codes::clob::BLOCK_RATE_LIMIT_EXCEEDED
        ));
        // Other accounts have their own budget.
        assert!(limiter.charge("b", 10, 2).is_ok());
        // Block 11 still sees block 10's 3 (the rejected one included).
        assert!(limiter.charge("a", 11, 1).is_err());
        limiter.prune(12);
        // Block 12 sees only block 11's 1.
        assert!(limiter.charge("a", 12, 1).is_ok());
    }

    #[test]
    fn blocks_expire_short_term_cancels_at_their_gtb() {
        let mut chain = Chain::new(&SimConfig::default()).expect("chain");
        let key = OrderKey {
            owner: "x".into(),
            number: 0,
            client_id: 1,
            order_flags: order_flags::SHORT_TERM,
            clob_pair_id: 0,
        };
        chain.short_term_cancels.insert(key.clone(), 3);
        chain.produce_block();
        assert!(chain.short_term_cancels.contains_key(&key));
        chain.produce_block();
        assert_eq!(chain.height, 3);
        assert!(!chain.short_term_cancels.contains_key(&key));
    }
}
