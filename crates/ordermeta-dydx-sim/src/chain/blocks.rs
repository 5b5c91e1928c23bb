//! Block production: heights, block times, and what each new block changes.

use chrono::{DateTime, TimeDelta, Utc};

use super::Chain;
use super::events::ChainEvent;
use crate::config::BlockClock;
use crate::error::SimError;

impl Chain {
    /// The height CheckTx validates against: the latest block height + 1.
    pub(super) fn next_height(&self) -> u32 {
        self.height + 1
    }

    pub(crate) fn block_time_at(&self, height: u32) -> Option<DateTime<Utc>> {
        let index = height.checked_sub(self.genesis_height)?;
        self.block_times.get(index as usize).copied()
    }

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

    /// The time of the block about to be produced: as set by the control API, else from the
    /// configured clock.
    fn take_next_block_time(&mut self) -> DateTime<Utc> {
        if let Some(time) = self.next_block_time.take() {
            return time;
        }
        match self.block_clock {
            BlockClock::Step => self.block_time + self.block_time_step,
            // Block times strictly increase on chain.
            BlockClock::WallClock => Utc::now().max(self.block_time + TimeDelta::milliseconds(1)),
        }
    }

    /// Produces one block:
    /// 1. DeliverTx: executes the stateful txs of the mempool in CheckTx order (their GTBT
    ///    windows against the previous block time, timestamp nonces against this block's time);
    /// 2. EndBlocker: expires stateful orders whose GTBT this block time reached;
    /// 3. Commit and PrepareCheckState: expires short-term orders and cancels at their GTB and
    ///    resets the CheckTx copy of the state to the committed state (the mempool is empty).
    pub(crate) fn produce_block(&mut self) {
        let height = self.height + 1;
        let time = self.take_next_block_time();
        // The block's operations (matches and removals since the last block) come first.
        self.emit(ChainEvent::Block { height, time });
        for event in std::mem::take(&mut self.next_block_events) {
            self.emit(event);
        }
        self.deliver_mempool(height, time);

        self.height = height;
        self.block_time = time;
        self.block_times.push(time);
        self.end_block_book(height, time.timestamp());

        self.check_accounts = self.accounts.clone();
        self.uncommitted_placements.clear();
        self.pending_stateful_cancels.clear();
        self.removed_since_block.clear();
        self.short_term_limiter.prune(height);
        self.stateful_limiter.prune(height);
    }
}
