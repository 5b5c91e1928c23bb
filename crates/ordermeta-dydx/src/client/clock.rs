//! The chain's clock for a bot: the latest block's height and time as the `dydx` and `chrono`
//! types an `OrderBuilder` takes, and good-til values checked against the chain's windows
//! before an order is built (`x/clob/keeper/orders.go`: a short-term GTB within
//! `ShortBlockWindow` of the next block, a stateful GTBT after the previous block time and at
//! most 95 days past it).

use chrono::{DateTime, TimeDelta, Utc};
use dydx::indexer::Height;

use super::OrderMetaClient;
use crate::gateway::{ChainClock, GatewayError};

/// `StatefulOrderTimeWindow`: how far past the latest block time a stateful order's good-til
/// time may be (95 days).
pub const STATEFUL_ORDER_TIME_WINDOW: TimeDelta = TimeDelta::days(95);

/// The chain's clock: the latest committed block, as the types an `OrderBuilder` takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainTime {
    /// Latest committed block height.
    pub height: Height,
    /// That block's time.
    pub block_time: DateTime<Utc>,
    /// The chain's `ShortBlockWindow` the good-til helpers check against (from
    /// [`ChainSettings::short_block_window`](crate::ChainSettings::short_block_window)).
    pub short_block_window: u32,
}

/// A good-til outside the chain's window (the node would refuse the order), or the chain's
/// clock could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoodTilError {
    /// A short-term good-til block must be between the next block and `ShortBlockWindow`
    /// blocks past it (clob 10 / 11): `offset` from the latest block, 1 to `max`.
    #[error(
        "good-til block offset {offset} is outside the chain's window: 1 to {max} blocks past \
         the latest block (ShortBlockWindow {window})"
    )]
    BlockOutsideWindow {
        /// The offset asked for.
        offset: u32,
        /// The largest offset the chain accepts (`ShortBlockWindow` + 1).
        max: u32,
        /// The `ShortBlockWindow` checked against.
        window: u32,
    },
    /// A stateful good-til time must be after the latest block time and at most 95 days past
    /// it, in whole seconds (clob 3003 / 3004).
    #[error(
        "good-til time {lifetime} past the latest block is outside the chain's window: at least \
         1 s, at most {max} (StatefulOrderTimeWindow)"
    )]
    TimeOutsideWindow {
        /// The lifetime asked for.
        lifetime: TimeDelta,
        /// The longest lifetime the chain accepts ([`STATEFUL_ORDER_TIME_WINDOW`]).
        max: TimeDelta,
    },
    /// The chain's clock could not be read.
    #[error("reading the chain clock failed: {0}")]
    Clock(#[source] GatewayError),
}

impl ChainTime {
    /// The clock a gateway reports, with the `ShortBlockWindow` to check good-tils against.
    pub fn new(clock: ChainClock, short_block_window: u32) -> Self {
        ChainTime {
            height: Height(clock.height),
            block_time: DateTime::from_timestamp(i64::from(clock.block_time), 0)
                .unwrap_or_default(),
            short_block_window,
        }
    }

    /// The good-til block `offset` blocks past the latest one, for a short-term order
    /// (`OrderBuilder::until`). The chain accepts the next block up to `ShortBlockWindow`
    /// blocks past it, so `offset` is 1 to `short_block_window + 1`; anything else is
    /// [`GoodTilError::BlockOutsideWindow`]. Blocks come every 0.5–1.1 s: 20 is about 10–20 s.
    pub fn good_til_block(&self, offset: u32) -> Result<Height, GoodTilError> {
        let max = self.short_block_window.saturating_add(1);
        if offset == 0 || offset > max {
            return Err(GoodTilError::BlockOutsideWindow {
                offset,
                max,
                window: self.short_block_window,
            });
        }
        self.height
            .0
            .checked_add(offset)
            .map(Height)
            .ok_or(GoodTilError::BlockOutsideWindow {
                offset,
                max,
                window: self.short_block_window,
            })
    }

    /// The good-til time `lifetime` past the latest block time, in whole seconds (what the
    /// chain stores), for a long-term or conditional order (`OrderBuilder::until`). From 1 s
    /// to [`STATEFUL_ORDER_TIME_WINDOW`] (95 days); anything else is
    /// [`GoodTilError::TimeOutsideWindow`].
    pub fn good_til_time(&self, lifetime: TimeDelta) -> Result<DateTime<Utc>, GoodTilError> {
        let outside = || GoodTilError::TimeOutsideWindow {
            lifetime,
            max: STATEFUL_ORDER_TIME_WINDOW,
        };
        if lifetime < TimeDelta::seconds(1) || lifetime > STATEFUL_ORDER_TIME_WINDOW {
            return Err(outside());
        }
        // Whole seconds, rounded down: the chain compares seconds, so the result stays inside
        // the window; the lower bound of 1 s keeps it after the block time.
        let secs = self.block_time.timestamp() + lifetime.num_seconds();
        if u32::try_from(secs).is_err() {
            return Err(outside());
        }
        DateTime::from_timestamp(secs, 0).ok_or_else(outside)
    }
}

/// The chain's clock and good-til values, read through the client's gateway.
impl OrderMetaClient {
    /// The chain's clock now: the latest block's height and time (one gateway call, within
    /// its deadline).
    pub async fn chain_time(&self) -> Result<ChainTime, GatewayError> {
        let clock = self.gateway.clock().await?;
        Ok(ChainTime::new(clock, self.settings.short_block_window))
    }

    /// A short-term order's good-til block, `offset` blocks past the latest one, checked
    /// against the chain's window ([`ChainTime::good_til_block`]).
    pub async fn good_til_block(&self, offset: u32) -> Result<Height, GoodTilError> {
        self.chain_time()
            .await
            .map_err(GoodTilError::Clock)?
            .good_til_block(offset)
    }

    /// A stateful order's good-til time, `lifetime` past the latest block time, checked
    /// against the chain's window ([`ChainTime::good_til_time`]).
    pub async fn good_til_time(&self, lifetime: TimeDelta) -> Result<DateTime<Utc>, GoodTilError> {
        self.chain_time()
            .await
            .map_err(GoodTilError::Clock)?
            .good_til_time(lifetime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(height: u32, block_time: u32) -> ChainTime {
        ChainTime::new(ChainClock { height, block_time }, 40)
    }

    #[test]
    fn good_til_blocks_within_the_window() {
        let t = at(1_000, 1_700_000_000);
        assert_eq!(t.good_til_block(1).expect("next block"), Height(1_001));
        assert_eq!(t.good_til_block(41).expect("window end"), Height(1_041));
        for offset in [0, 42, u32::MAX] {
            assert!(
                matches!(
                    t.good_til_block(offset),
                    Err(GoodTilError::BlockOutsideWindow {
                        max: 41,
                        window: 40,
                        ..
                    })
                ),
                "{offset}"
            );
        }
        let narrow = ChainTime {
            short_block_window: 20,
            ..t
        };
        assert!(narrow.good_til_block(21).is_ok());
        assert!(narrow.good_til_block(22).is_err());
        assert!(at(u32::MAX, 0).good_til_block(1).is_err(), "no overflow");
    }

    #[test]
    fn good_til_times_within_the_window() {
        let t = at(1_000, 1_700_000_000);
        assert_eq!(t.block_time.timestamp(), 1_700_000_000);
        let week = t.good_til_time(TimeDelta::days(7)).expect("a week");
        assert_eq!(week.timestamp(), 1_700_000_000 + 7 * 86_400);
        let edge = t
            .good_til_time(STATEFUL_ORDER_TIME_WINDOW)
            .expect("95 days");
        assert_eq!(edge - t.block_time, STATEFUL_ORDER_TIME_WINDOW);
        // Sub-second parts are dropped: the chain stores whole seconds.
        let t1 = t
            .good_til_time(TimeDelta::milliseconds(1_999))
            .expect("1.999 s");
        assert_eq!(t1.timestamp(), 1_700_000_001);
        for lifetime in [
            TimeDelta::zero(),
            TimeDelta::milliseconds(999),
            TimeDelta::seconds(-5),
            STATEFUL_ORDER_TIME_WINDOW + TimeDelta::seconds(1),
        ] {
            assert!(
                matches!(
                    t.good_til_time(lifetime),
                    Err(GoodTilError::TimeOutsideWindow { .. })
                ),
                "{lifetime}"
            );
        }
        assert!(
            at(1, u32::MAX - 10)
                .good_til_time(TimeDelta::days(1))
                .is_err(),
            "past the u32 seconds the chain stores"
        );
    }
}
