//! Replay protection of stateful txs: the account sequence, or a timestamp nonce.
//!
//! `app/ante/replay_protection.go`, `ReplayProtectionDecorator.AnteHandle`: a tx made only of
//! good-til-block messages skips this entirely (`app/ante/util.go`,
//! `ShouldSkipSequenceValidation`). Otherwise a signed sequence >= 2^40 is a timestamp nonce
//! (unix milliseconds) handled by `x/accountplus/keeper/timestampnonce.go`,
//! `ProcessTimestampNonce`; any other value must equal the account sequence. Every failure is
//! sdk/32 (`ErrWrongSequence`). Only plain sequences are incremented
//! (`app/ante/timestampnonce.go`, `DydxIncrementSequenceDecorator`).
//!
//! The chain keeps this state twice: committed (what queries serve, advanced by DeliverTx in
//! each block) and the CheckTx copy (advanced by every admitted tx, reset to committed state
//! after each block). Both are [`Account`] values; the caller picks the copy.

use crate::config::{MAX_TIMESTAMP_NONCES, TIMESTAMP_NONCE_CUTOFF, TIMESTAMP_NONCE_MAX_SKEW_MS};
use crate::error::{ChainError, codes};

/// One account in one copy of the state.
#[derive(Clone, Debug)]
pub(super) struct Account {
    pub number: u64,
    pub pubkey: Option<Vec<u8>>,
    pub sequence: u64,
    /// x/accountplus `AccountState.TimestampNonceDetails`; `None` until the first nonce.
    pub nonces: Option<TimestampNonces>,
}

/// The accepted timestamp nonces of an account and the floor below which none is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TimestampNonces {
    pub accepted: Vec<u64>,
    pub max_ejected: u64,
}

impl Account {
    pub(super) fn new(number: u64, pubkey: Option<Vec<u8>>) -> Self {
        Self {
            number,
            pubkey,
            sequence: 0,
            nonces: None,
        }
    }

    /// Checks the signed sequence (or timestamp nonce) of a stateful tx against this copy of
    /// the account at `block_time_ms`, and records it. On error nothing changed; the caller
    /// keeps the change only if the whole tx passes (the ante's cache store).
    pub(super) fn consume(&mut self, signed: u64, block_time_ms: u64) -> Result<(), ChainError> {
        if signed >= TIMESTAMP_NONCE_CUTOFF {
            return self
                .accept_timestamp_nonce(signed, block_time_ms)
                .map_err(|detail| ChainError::sdk(codes::sdk::WRONG_SEQUENCE, detail));
        }
        if signed != self.sequence {
            return Err(ChainError::sdk(
                codes::sdk::WRONG_SEQUENCE,
                format!(
                    "account sequence mismatch, expected {}, got {signed}",
                    self.sequence
                ),
            ));
        }
        self.sequence += 1;
        Ok(())
    }

    /// `ProcessTimestampNonce`: within 30 s of the block time either side; then, once the
    /// account has nonces, stale ones (older than the window) are ejected and raise the floor,
    /// and the new one must be above the floor, not already accepted, and fit the 20 kept
    /// (replacing the smallest, which becomes the floor, when it is larger).
    fn accept_timestamp_nonce(&mut self, nonce: u64, block_time_ms: u64) -> Result<(), String> {
        let oldest = block_time_ms.saturating_sub(TIMESTAMP_NONCE_MAX_SKEW_MS);
        let newest = block_time_ms.saturating_add(TIMESTAMP_NONCE_MAX_SKEW_MS);
        if nonce < oldest || nonce > newest {
            return Err(format!(
                "timestamp nonce {nonce} not within valid time window (block time {block_time_ms} ms)"
            ));
        }
        let Some(state) = &mut self.nonces else {
            self.nonces = Some(TimestampNonces {
                accepted: vec![nonce],
                max_ejected: TIMESTAMP_NONCE_CUTOFF,
            });
            return Ok(());
        };
        let mut next = state.clone();
        next.accepted.retain(|&kept| {
            if kept < oldest {
                next.max_ejected = next.max_ejected.max(kept);
                false
            } else {
                true
            }
        });
        let rejected = || Err(format!("timestamp nonce {nonce} rejected"));
        if nonce <= next.max_ejected || next.accepted.contains(&nonce) {
            return rejected();
        }
        if next.accepted.len() < MAX_TIMESTAMP_NONCES {
            next.accepted.push(nonce);
        } else {
            let Some((index, &smallest)) = next
                .accepted
                .iter()
                .enumerate()
                .min_by_key(|(_, value)| **value)
            else {
                return rejected();
            };
            if nonce <= smallest {
                return rejected();
            }
            next.max_ejected = smallest;
            next.accepted[index] = nonce;
        }
        *state = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn plain_sequences_must_match_and_increment() {
        let mut account = Account::new(1, None);
        assert!(account.consume(1, NOW).is_err());
        account.consume(0, NOW).expect("0");
        account.consume(1, NOW).expect("1");
        let err = account.consume(1, NOW).expect_err("reused");
        assert!(err.is("sdk", 32));
        assert!(err.log.contains("expected 2, got 1"), "{}", err.log);
    }

    #[test]
    fn timestamp_nonces_follow_the_accountplus_rules() {
        let mut account = Account::new(1, None);
        // Window: 30 s either side, inclusive.
        assert!(account.consume(NOW + 30_001, NOW).is_err());
        assert!(account.consume(NOW - 30_001, NOW).is_err());
        account.consume(NOW + 30_000, NOW).expect("upper edge");
        account.consume(NOW - 30_000, NOW).expect("lower edge");
        assert_eq!(account.sequence, 0, "nonces never bump the sequence");
        // Unique.
        assert!(account.consume(NOW - 30_000, NOW).is_err());
        // Fill the 20 slots; then a nonce below the smallest kept one is refused and a larger
        // one replaces the smallest, which becomes the floor.
        for i in 1..=18 {
            account.consume(NOW + i, NOW).expect("distinct");
        }
        assert_eq!(account.nonces.as_ref().map(|n| n.accepted.len()), Some(20));
        assert!(
            account.consume(NOW - 30_000 + 1, NOW).is_ok(),
            "replaces the smallest"
        );
        let nonces = account.nonces.clone().expect("state");
        assert_eq!(nonces.max_ejected, NOW - 30_000);
        assert!(account.consume(NOW - 29_999 + 1, NOW).is_ok());
        assert!(account.consume(NOW - 29_990, NOW).is_ok());
        assert!(
            account.consume(NOW - 29_995, NOW).is_err(),
            "not above the smallest of the 20 kept"
        );
        // Time moves on: stale nonces are ejected and raise the floor.
        let later = NOW + 60_000;
        account.consume(later, later).expect("fresh");
        let nonces = account.nonces.clone().expect("state");
        assert!(nonces.accepted.iter().all(|&n| n >= later - 30_000));
        assert_eq!(nonces.max_ejected, NOW + 18, "the largest stale one");
        assert!(
            account.consume(NOW + 30_000, later).is_err(),
            "still kept: reused"
        );
    }
}
