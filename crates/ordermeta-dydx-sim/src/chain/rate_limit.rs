//! Per-account block rate limits: short-term places and cancels share one budget (a batch
//! cancel weighs 2), stateful placements have their own, stateful cancels none.

use std::collections::{BTreeMap, HashMap};

use dydx_proto::dydxprotocol::clob::msg_cancel_order;

use super::Chain;
use super::clob::{place_good_til, place_is_short_term};
use crate::config::RateLimit;
use crate::error::{ChainError, codes};
use crate::tx::TxMsg;
use crate::types::{GoodTil, order_flags};

/// Sliding-window counter per account, like the chain's `multiBlockRateLimiter`
/// (`x/clob/rate_limit/multi_block_rate_limiter.go`, `RateLimitIncrBy`): the weight is added
/// before the check, so rejected requests count too.
#[derive(Debug, Default)]
pub(super) struct RateLimiter {
    rules: Vec<RateLimit>,
    per_account: HashMap<String, BTreeMap<u32, u32>>,
}

impl RateLimiter {
    pub(super) fn new(rules: Vec<RateLimit>) -> Self {
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

    /// Forgets counts older than the longest window, at each new block.
    pub(super) fn prune(&mut self, height: u32) {
        let longest = self.rules.iter().map(|r| r.num_blocks).max().unwrap_or(0);
        let keep_from = height.saturating_sub(longest);
        self.per_account.retain(|_, counts| {
            counts.retain(|h, _| *h > keep_from);
            !counts.is_empty()
        });
    }
}

impl Chain {
    /// `ClobRateLimitDecorator` → `x/clob/keeper/rate_limit.go`, `RateLimitPlaceOrder` /
    /// `RateLimitCancelOrder` / `RateLimitBatchCancel`; stateful placements per
    /// `x/clob/rate_limit/order_rate_limiter.go`. GTB validity is checked first so replays of
    /// stale short-term txs cannot burn the budget.
    pub(super) fn rate_limit(&mut self, msg: &TxMsg, owner: &str) -> Result<(), ChainError> {
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
}
