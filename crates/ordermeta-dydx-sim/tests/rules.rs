//! Table-driven tests of every rule in `dydx-rules.md`, each step asserting the
//! `(codespace, code)` the real `dydx` client gets back.
//!
//! Offsets are relative to the chain when the step runs: `dh` to the latest height (so
//! `dh = 1` is the next height), `dt` to the latest block time in seconds.

mod common;

use common::*;
use dydx::indexer::Height;
use dydx::node::{OrderBuilder, OrderSide, OrderTimeInForce};
use dydx_proto::dydxprotocol::clob::OrderBatch;
use ordermeta_dydx_sim::{Fill, OrderStatus, RateLimits, SimConfig};

#[derive(Clone, Debug)]
enum Step {
    PlaceShort(u32, i64),
    PlaceLong(u32, i64),
    PlaceLongIoc(u32, i64),
    CancelShort(u32, i64),
    /// A short-term order id cancelled with a block time (wrong good-til kind).
    CancelShortWithTime(u32, i64),
    CancelLong(u32, i64),
    /// A long-term order id cancelled with a block height (wrong good-til kind).
    CancelLongWithBlock(u32, i64),
    Batch(Vec<u32>, i64),
    Advance(u32),
    FillLong(u32),
    ShortStatus(u32, Option<OrderStatus>),
    LongStatus(u32, Option<OrderStatus>),
}

use Step::*;

const OK: (&str, u32) = ("", 0);

/// A named scenario: steps with the `(codespace, code)` each must return.
type Case = (&'static str, Vec<(Step, (&'static str, u32))>);

fn at(base: u32, dh: i64) -> u32 {
    u32::try_from(i64::from(base) + dh).expect("height offset in range")
}

async fn run(name: &str, config: SimConfig, steps: Vec<(Step, (&str, u32))>) {
    let mut env = env_with(config).await;
    for (i, (step, expected)) in steps.into_iter().enumerate() {
        let h = env.sim.height();
        let now = env.sim.block_time();
        let account = &mut env.account;
        let client = &mut env.client;
        let result = match step.clone() {
            PlaceShort(cid, dh) => {
                let (_, order) = short_order(account, cid, at(h, dh));
                client.place_order(account, order).await
            }
            PlaceLong(cid, dt) => {
                let (_, order) = long_order(account, cid, now + secs(dt));
                client.place_order(account, order).await
            }
            PlaceLongIoc(cid, dt) => {
                let (_, order) = OrderBuilder::new(market(), account.subaccount(0).expect("sub"))
                    .limit(
                        OrderSide::Buy,
                        50_000,
                        "0.01".parse::<dydx::indexer::Quantity>().expect("q"),
                    )
                    .time_in_force(OrderTimeInForce::Ioc)
                    .long_term()
                    .until(now + secs(dt))
                    .build(cid)
                    .expect("build");
                client.place_order(account, order).await
            }
            CancelShort(cid, dh) => {
                let (id, _) = short_order(account, cid, h + 1);
                client.cancel_order(account, id, Height(at(h, dh))).await
            }
            CancelShortWithTime(cid, dt) => {
                let (id, _) = short_order(account, cid, h + 1);
                client.cancel_order(account, id, now + secs(dt)).await
            }
            CancelLong(cid, dt) => {
                let (id, _) = long_order(account, cid, now);
                client.cancel_order(account, id, now + secs(dt)).await
            }
            CancelLongWithBlock(cid, dh) => {
                let (id, _) = long_order(account, cid, now);
                client.cancel_order(account, id, Height(at(h, dh))).await
            }
            Batch(client_ids, dh) => {
                let subaccount = account.subaccount(0).expect("subaccount");
                let batch = OrderBatch {
                    clob_pair_id: 0,
                    client_ids,
                };
                client
                    .batch_cancel_orders(account, subaccount, vec![batch], Height(at(h, dh)))
                    .await
            }
            Advance(n) => {
                env.sim.advance_blocks(n);
                continue;
            }
            FillLong(cid) => {
                let (id, _) = long_order(account, cid, now);
                env.sim.fill(&id, Fill::Full).expect("fill");
                continue;
            }
            ShortStatus(cid, status) => {
                let (id, _) = short_order(account, cid, h + 1);
                assert_eq!(
                    env.sim.order(&id).map(|o| o.status),
                    status,
                    "{name}: step {i}"
                );
                continue;
            }
            LongStatus(cid, status) => {
                let (id, _) = long_order(account, cid, now);
                assert_eq!(
                    env.sim.order(&id).map(|o| o.status),
                    status,
                    "{name}: step {i}"
                );
                continue;
            }
        };
        let (codespace, code) = outcome(&env.sim, &result);
        assert_eq!(
            (codespace.as_str(), code),
            expected,
            "{name}: step {i} {step:?}: {result:?}"
        );
    }
    env.sim.shutdown().await.expect("shutdown");
}

fn unlimited() -> SimConfig {
    SimConfig::default().with_rate_limits(RateLimits::unlimited())
}

const DAY: i64 = 24 * 60 * 60;
const WINDOW_95D: i64 = 95 * DAY;

#[tokio::test]
async fn short_term_rules() {
    let cases: Vec<Case> = vec![
        (
            "place GTB = latest height is in the past",
            vec![(PlaceShort(1, 0), ("clob", 10))],
        ),
        ("place GTB = next height", vec![(PlaceShort(1, 1), OK)]),
        (
            "place GTB = next height + 40",
            vec![(PlaceShort(1, 41), OK)],
        ),
        (
            "place GTB = next height + 41",
            vec![(PlaceShort(1, 42), ("clob", 11))],
        ),
        (
            "cancel GTB below next height",
            vec![(PlaceShort(1, 10), OK), (CancelShort(1, 0), ("clob", 10))],
        ),
        (
            "cancel GTB beyond the window",
            vec![(PlaceShort(1, 10), OK), (CancelShort(1, 42), ("clob", 11))],
        ),
        (
            "cancel GTB = order GTB removes",
            vec![
                (PlaceShort(1, 10), OK),
                (CancelShort(1, 10), OK),
                (ShortStatus(1, Some(OrderStatus::Canceled)), OK),
            ],
        ),
        (
            "cancel GTB > order GTB removes",
            vec![
                (PlaceShort(1, 10), OK),
                (CancelShort(1, 15), OK),
                (ShortStatus(1, Some(OrderStatus::Canceled)), OK),
            ],
        ),
        (
            "cancel GTB < order GTB is accepted and leaves the order live",
            vec![
                (PlaceShort(1, 10), OK),
                (CancelShort(1, 5), OK),
                (ShortStatus(1, Some(OrderStatus::Open)), OK),
            ],
        ),
        (
            "cancel of an unknown order is a pre-cancel; re-place at or below its GTB is 7",
            vec![
                (CancelShort(1, 10), OK),
                (ShortStatus(1, None), OK),
                (PlaceShort(1, 10), ("clob", 7)),
                (PlaceShort(1, 9), ("clob", 7)),
                (PlaceShort(1, 11), OK),
                (ShortStatus(1, Some(OrderStatus::Open)), OK),
            ],
        ),
        (
            "second cancel with GTB <= the first is 9",
            vec![
                (CancelShort(1, 10), OK),
                (CancelShort(1, 10), ("clob", 9)),
                (CancelShort(1, 8), ("clob", 9)),
                (CancelShort(1, 11), OK),
            ],
        ),
        (
            "pre-cancel expires at its GTB, then the id can be placed again",
            vec![
                (CancelShort(1, 2), OK),
                (Advance(2), OK),
                (PlaceShort(1, 1), OK),
            ],
        ),
        (
            "replacement must raise the GTB",
            vec![
                (PlaceShort(1, 10), OK),
                (PlaceShort(1, 9), ("clob", 20)),
                (PlaceShort(1, 11), OK),
            ],
        ),
        (
            "short-term cancel with a block time is invalid",
            vec![
                (PlaceShort(1, 10), OK),
                (CancelShortWithTime(1, 60), ("clob", 5)),
            ],
        ),
        (
            "expires when the latest height reaches its GTB",
            vec![
                (PlaceShort(1, 3), OK),
                (Advance(2), OK),
                (ShortStatus(1, Some(OrderStatus::Open)), OK),
                (Advance(1), OK),
                (ShortStatus(1, Some(OrderStatus::Expired)), OK),
                (CancelShort(1, 1), OK),
            ],
        ),
    ];
    for (name, steps) in cases {
        run(name, unlimited(), steps).await;
    }
}

#[tokio::test]
async fn short_block_window_is_configurable() {
    let config = unlimited().with_short_block_window(20);
    run(
        "window 20",
        config,
        vec![
            (PlaceShort(1, 21), OK),
            (PlaceShort(2, 22), ("clob", 11)),
            (CancelShort(1, 22), ("clob", 11)),
            (CancelShort(1, 21), OK),
        ],
    )
    .await;
}

#[tokio::test]
async fn stateful_rules() {
    let cases: Vec<Case> = vec![
        (
            "place GTBT = previous block time",
            vec![(PlaceLong(1, 0), ("clob", 3003))],
        ),
        (
            "place GTBT before previous block time",
            vec![(PlaceLong(1, -5), ("clob", 3003))],
        ),
        (
            "place GTBT = previous block time + 95 days",
            vec![(PlaceLong(1, WINDOW_95D), OK)],
        ),
        (
            "place GTBT beyond 95 days",
            vec![(PlaceLong(1, WINDOW_95D + 1), ("clob", 3004))],
        ),
        (
            "long-term IOC",
            vec![(PlaceLongIoc(1, 600), ("clob", 3002))],
        ),
        (
            "same id while live",
            vec![(PlaceLong(1, 600), OK), (PlaceLong(1, 700), ("clob", 3005))],
        ),
        (
            "cancel GTBT below the order's",
            vec![(PlaceLong(1, 600), OK), (CancelLong(1, 599), ("clob", 29))],
        ),
        (
            "cancel GTBT = previous block time",
            vec![(PlaceLong(1, 600), OK), (CancelLong(1, 0), ("clob", 3003))],
        ),
        (
            "cancel GTBT beyond 95 days",
            vec![
                (PlaceLong(1, 600), OK),
                (CancelLong(1, WINDOW_95D + 1), ("clob", 3004)),
            ],
        ),
        (
            "cancel of a missing order",
            vec![(CancelLong(1, 600), ("clob", 3006))],
        ),
        (
            "cancel with a block height is invalid",
            vec![
                (PlaceLong(1, 600), OK),
                (CancelLongWithBlock(1, 5), ("clob", 3001)),
            ],
        ),
        (
            "cancel GTBT above the order's is fine; duplicate uncommitted is clob/32",
            vec![
                (PlaceLong(1, 600), OK),
                (CancelLong(1, 900), OK),
                (LongStatus(1, Some(OrderStatus::CancelPending)), OK),
                (CancelLong(1, 900), ("clob", 32)),
                (PlaceLong(1, 1200), ("clob", 3008)),
                (Advance(1), OK),
                (LongStatus(1, Some(OrderStatus::Canceled)), OK),
                (CancelLong(1, 900), ("clob", 3006)),
            ],
        ),
        (
            "filled order cannot be cancelled",
            vec![
                (PlaceLong(1, 600), OK),
                // A stateful order rests on the book (and can fill) from the next block on.
                (LongStatus(1, Some(OrderStatus::PlacePending)), OK),
                (Advance(1), OK),
                (FillLong(1), OK),
                (CancelLong(1, 600), ("clob", 3006)),
            ],
        ),
    ];
    for (name, steps) in cases {
        run(name, unlimited(), steps).await;
    }
}

#[tokio::test]
async fn batch_cancel_rules() {
    let cases: Vec<Case> = vec![
        (
            "cancels every listed order with GTB >= theirs",
            vec![
                (PlaceShort(1, 10), OK),
                (PlaceShort(2, 12), OK),
                (Batch(vec![1, 2], 11), OK),
                (ShortStatus(1, Some(OrderStatus::Canceled)), OK),
                (ShortStatus(2, Some(OrderStatus::Open)), OK),
            ],
        ),
        (
            "101 client ids",
            vec![(Batch((1..=101).collect(), 10), ("clob", 45))],
        ),
        ("100 client ids", vec![(Batch((1..=100).collect(), 10), OK)]),
        (
            "duplicate client ids",
            vec![(Batch(vec![1, 1], 10), ("clob", 45))],
        ),
        (
            "GTB below next height",
            vec![(Batch(vec![1], 0), ("clob", 10))],
        ),
        (
            "GTB beyond the window",
            vec![(Batch(vec![1], 42), ("clob", 11))],
        ),
        (
            "no cancel succeeds",
            vec![
                (Batch(vec![1, 2], 10), OK),
                (Batch(vec![1, 2], 10), ("clob", 46)),
            ],
        ),
        (
            "partly failing batch still succeeds",
            vec![(Batch(vec![1], 10), OK), (Batch(vec![1, 2], 10), OK)],
        ),
    ];
    for (name, steps) in cases {
        run(name, unlimited(), steps).await;
    }
}
