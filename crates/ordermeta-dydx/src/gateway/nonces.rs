//! [`NonceMode`]: how a [`DydxGateway`](crate::DydxGateway) protects its stateful txs against
//! replay — the account sequence, or timestamp nonces (x/accountplus) — and the clock that
//! hands out timestamp nonces.

use std::time::{SystemTime, UNIX_EPOCH};

/// The smallest "sequence" the chain reads as a timestamp nonce (unix milliseconds): 2^40
/// (`TimestampNonceSequenceCutoff`, v4-chain `protocol/x/accountplus`).
pub const TIMESTAMP_NONCE_CUTOFF: u64 = 1 << 40;

/// How stateful txs (long-term and conditional places and cancels) are protected against
/// replay. Short-term txs are good-til-block and skip the chain's sequence check whatever the
/// mode (v4-chain `app/ante/replay_protection.go`).
///
/// - [`Sequence`](Self::Sequence) (the default): the account sequence, tracked locally and
///   re-synced from the node after a mismatch. Right for **one process per account**: a
///   second process signing for the same account uses the same numbers, and the node serves
///   the sequence from committed state, so a re-sync cannot see the other process's txs before
///   the next block.
/// - [`Timestamp`](Self::Timestamp): every stateful tx is signed with a unique, strictly
///   increasing unix-millisecond nonce (>= 2^40). The chain accepts it within 30 s of the
///   block time, if it is not among the account's last 20 nonces and is above the highest one
///   ejected from them (`x/accountplus/keeper/timestampnonce.go`). **The choice for several
///   processes (or machines) per account**: nothing is shared between them.
///
/// ## Timestamp nonces across processes
///
/// Within a process nonces are unique and increasing: `max(now, last + 1)`, and never ahead of
/// the wall clock (a process that signs faster waits the milliseconds it needs), so that no
/// process can push the account's last 20 nonces above another's clock. Across processes two
/// nonces collide only if two processes sign in the same millisecond; give each process its
/// own **lane** (`lane` of `lanes`: process `i` of `n` uses only the milliseconds `≡ i mod n`)
/// and they never collide. A collision that still happens (two processes in one lane, or no
/// lanes) is answered `sdk/32` by the node and re-signed with a fresh nonce, a few times
/// within the call deadline ([`GatewayOptions::call_timeout`](crate::GatewayOptions)).
///
/// Remaining risks: each host's clock must be within a few seconds of the chain's (NTP); a
/// clock 30 s off is refused outright (`sdk/32`, reported as
/// [`GatewayError::Rejected`](crate::GatewayError::Rejected)), and a clock behind the other
/// processes' by more than their last 20 stateful txs loses against them until it catches up.
/// With `lanes = n` one process signs at most `1000 / n` stateful txs per second (the chain
/// admits far fewer stateful placements: 2 per block by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonceMode {
    /// The account sequence (one process per account).
    #[default]
    Sequence,
    /// Timestamp nonces in lane `lane` of `lanes` (several processes per account). `lanes`
    /// is read as at least 1 and `lane` modulo `lanes`.
    Timestamp {
        /// This process's lane, `0..lanes`.
        lane: u32,
        /// How many lanes the processes signing for the account share (1: no lanes).
        lanes: u32,
    },
}

impl NonceMode {
    /// Timestamp nonces without lanes: processes that sign in the same millisecond collide,
    /// and the loser re-signs.
    pub const fn timestamp() -> Self {
        NonceMode::Timestamp { lane: 0, lanes: 1 }
    }

    /// Timestamp nonces in lane `lane` of `lanes`: give each of `lanes` processes its own
    /// lane (e.g. a replica index) and they never collide.
    pub const fn timestamp_lane(lane: u32, lanes: u32) -> Self {
        NonceMode::Timestamp { lane, lanes }
    }

    /// A short label for metrics and logs: `sequence` or `timestamp`.
    pub const fn as_str(self) -> &'static str {
        match self {
            NonceMode::Sequence => "sequence",
            NonceMode::Timestamp { .. } => "timestamp",
        }
    }
}

/// Hands out the timestamp nonces of one process: unique, strictly increasing, in its lane.
#[derive(Debug)]
pub(super) struct TimestampClock {
    lane: u64,
    lanes: u64,
    last: u64,
}

impl TimestampClock {
    pub(super) fn new(lane: u32, lanes: u32) -> Self {
        let lanes = u64::from(lanes.max(1));
        TimestampClock {
            lane: u64::from(lane) % lanes,
            lanes,
            last: 0,
        }
    }

    /// The next nonce at wall-clock time `now_ms`: the first millisecond of this lane at or
    /// after `max(now_ms, last + 1)` (and at or above 2^40).
    pub(super) fn next(&mut self, now_ms: u64) -> u64 {
        let floor = now_ms
            .max(self.last.saturating_add(1))
            .max(TIMESTAMP_NONCE_CUTOFF);
        let nonce = floor + (self.lane + self.lanes - floor % self.lanes) % self.lanes;
        self.last = nonce;
        nonce
    }
}

/// The wall clock in unix milliseconds.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn nonces_increase_strictly_and_follow_the_clock() {
        let mut clock = TimestampClock::new(0, 1);
        assert_eq!(clock.next(NOW), NOW);
        assert_eq!(clock.next(NOW), NOW + 1, "same millisecond: next one");
        assert_eq!(
            clock.next(NOW - 5),
            NOW + 2,
            "a clock stepping back: still up"
        );
        assert_eq!(clock.next(NOW + 100), NOW + 100, "the clock again");
        assert!(clock.next(0) > TIMESTAMP_NONCE_CUTOFF);
    }

    #[test]
    fn lanes_never_share_a_millisecond() {
        let mut a = TimestampClock::new(0, 4);
        let mut b = TimestampClock::new(1, 4);
        let mut c = TimestampClock::new(7, 4); // lane 3
        let mut seen = std::collections::HashSet::new();
        for step in 0..1_000 {
            let now = NOW + step / 3;
            for (clock, lane) in [(&mut a, 0), (&mut b, 1), (&mut c, 3)] {
                let n = clock.next(now);
                assert_eq!(n % 4, lane);
                assert!(n >= now && n < now.max(n) + 4);
                assert!(seen.insert(n), "{n} handed out twice");
            }
        }
        // `lanes` 0 reads as 1.
        assert_eq!(TimestampClock::new(3, 0).next(NOW), NOW);
    }

    #[test]
    fn modes() {
        assert_eq!(NonceMode::default(), NonceMode::Sequence);
        assert_eq!(
            NonceMode::timestamp(),
            NonceMode::Timestamp { lane: 0, lanes: 1 }
        );
        assert_eq!(NonceMode::timestamp_lane(2, 4).as_str(), "timestamp");
    }
}
