//! The chain's stateless (`ValidateBasic`) rules, one vector each, sent by the unmodified `dydx`
//! client over real gRPC; each asserts the exact `(codespace, code)` the simulator answers, and
//! cites the v4-chain file (under `protocol/`) the rule comes from. Checked against
//! dydxprotocol/v4-chain at 84d4664 (2026-03).

mod common;

use chrono::{DateTime, Utc};
use common::*;
use dydx::indexer::Height;
use dydx::node::{OrderSide, OrderTimeInForce};
use dydx_proto::dydxprotocol::clob::{
    BuilderCodeParameters, Order, OrderBatch, order::ConditionType, order::GoodTilOneof,
};
use dydx_proto::dydxprotocol::subaccounts::SubaccountId;
use ordermeta_dydx_sim::{RateLimits, SimConfig, order_flags};

const PLACE: &str = "x/clob/types/message_place_order.go, MsgPlaceOrder.ValidateBasic";
const CANCEL: &str = "x/clob/types/message_cancel_order.go, MsgCancelOrder.ValidateBasic";
const BATCH: &str = "x/clob/types/message_batch_cancel.go, MsgBatchCancel.ValidateBasic";
const SUBACCOUNT: &str = "x/subaccounts/types/subaccount.go, SubaccountId.Validate";
const ORDER_ID: &str = "x/clob/types/order_id.go, OrderId.Validate";
const GOOD_TIL_BLOCK: &str = "x/clob/keeper/orders.go, validateGoodTilBlock";

fn qty() -> dydx::indexer::Quantity {
    "0.01".parse().expect("quantity")
}

/// What a vector sends.
enum Send {
    Place(Order),
    /// `MsgCancelOrder` with this order id and good-til.
    Cancel(dydx_proto::dydxprotocol::clob::OrderId, CancelUntil),
    /// `MsgBatchCancel` of subaccount 0 with these batches and GTB.
    Batch(Vec<OrderBatch>, u32),
}

enum CancelUntil {
    Block(u32),
    Time(DateTime<Utc>),
}

struct Vector {
    name: &'static str,
    source: &'static str,
    send: Send,
    expected: (&'static str, u32),
}

#[tokio::test]
async fn every_validate_basic_rule_answers_the_chains_code() {
    let mut env = env_with(SimConfig::default().with_rate_limits(RateLimits::unlimited())).await;
    let h = env.sim.height();
    let gtbt = env.sim.block_time() + secs(3600);
    let acc = &env.account;
    let short = |cid: u32| short_order(acc, cid, h + 10).1;
    let long = |cid: u32| long_order(acc, cid, gtbt).1;
    let with = |mut order: Order, edit: &dyn Fn(&mut Order)| {
        edit(&mut order);
        order
    };
    let id_of = |order: &Order| order.order_id.clone().expect("order id");

    let vectors = vec![
        // --- MsgPlaceOrder -------------------------------------------------------------
        Vector {
            name: "fill-or-kill is deprecated",
            source: PLACE,
            send: Send::Place(
                builder(acc)
                    .limit(OrderSide::Buy, 50_000, qty())
                    .time_in_force(OrderTimeInForce::FillOrKill)
                    .until(Height(h + 10))
                    .build(1u32)
                    .expect("build")
                    .1,
            ),
            expected: ("clob", 48),
        },
        Vector {
            name: "fill-or-kill is checked first (before quantums 0 and a bad flag)",
            source: PLACE,
            send: Send::Place(with(short(2), &|o| {
                o.time_in_force = OrderTimeInForce::FillOrKill as i32;
                o.quantums = 0;
                o.order_id.as_mut().expect("id").order_flags = 7;
            })),
            expected: ("clob", 48),
        },
        Vector {
            name: "conditional without a condition type (the builder's .limit().conditional())",
            source: PLACE,
            send: Send::Place(
                builder(acc)
                    .limit(OrderSide::Buy, 50_000, qty())
                    .conditional()
                    .until(gtbt)
                    .build(3u32)
                    .expect("build")
                    .1,
            ),
            expected: ("clob", 6000),
        },
        Vector {
            // The builder clamps prices to one tick, so the trigger is zeroed by hand.
            name: "conditional with trigger subticks 0",
            source: PLACE,
            send: Send::Place(with(
                builder(acc)
                    .stop_limit(OrderSide::Sell, 50_000, 49_000, qty())
                    .until(gtbt)
                    .build(4u32)
                    .expect("build")
                    .1,
                &|o| o.conditional_order_trigger_subticks = 0,
            )),
            expected: ("clob", 6001),
        },
        Vector {
            name: "non-conditional with a condition type",
            source: PLACE,
            send: Send::Place(with(short(5), &|o| {
                o.condition_type = ConditionType::StopLoss as i32;
            })),
            expected: ("clob", 6000),
        },
        Vector {
            name: "non-conditional with trigger subticks",
            source: PLACE,
            send: Send::Place(with(long(6), &|o| {
                o.conditional_order_trigger_subticks = 5_000_000;
            })),
            expected: ("clob", 6001),
        },
        Vector {
            name: "reduce-only on a non-IOC order",
            source: PLACE,
            send: Send::Place(
                builder(acc)
                    .limit(OrderSide::Sell, 50_000, qty())
                    .reduce_only(true)
                    .until(Height(h + 10))
                    .build(7u32)
                    .expect("build")
                    .1,
            ),
            expected: ("clob", 9003),
        },
        Vector {
            name: "order flags outside 0/32/64/128/256",
            source: PLACE,
            send: Send::Place(with(long(8), &|o| {
                o.order_id.as_mut().expect("id").order_flags = 7;
            })),
            expected: ("clob", 3000),
        },
        Vector {
            name: "long-term IOC",
            source: PLACE,
            send: Send::Place(
                builder(acc)
                    .limit(OrderSide::Buy, 50_000, qty())
                    .time_in_force(OrderTimeInForce::Ioc)
                    .long_term()
                    .until(gtbt)
                    .build(9u32)
                    .expect("build")
                    .1,
            ),
            expected: ("clob", 3002),
        },
        Vector {
            name: "short-term order with GTB 0",
            source: PLACE,
            send: Send::Place(with(short(10), &|o| {
                o.good_til_oneof = Some(GoodTilOneof::GoodTilBlock(0));
            })),
            expected: ("clob", 5),
        },
        Vector {
            name: "stateful order with GTBT 0",
            source: PLACE,
            send: Send::Place(with(long(11), &|o| {
                o.good_til_oneof = Some(GoodTilOneof::GoodTilBlockTime(0));
            })),
            expected: ("clob", 3001),
        },
        Vector {
            name: "side unspecified",
            source: PLACE,
            send: Send::Place(with(short(12), &|o| o.side = 0)),
            expected: ("clob", 3),
        },
        Vector {
            name: "time in force outside the enum",
            source: PLACE,
            send: Send::Place(with(short(13), &|o| o.time_in_force = 9)),
            expected: ("clob", 44),
        },
        Vector {
            name: "quantums 0",
            source: PLACE,
            send: Send::Place(with(short(14), &|o| o.quantums = 0)),
            expected: ("clob", 4),
        },
        Vector {
            name: "subticks 0",
            source: PLACE,
            send: Send::Place(with(short(15), &|o| o.subticks = 0)),
            expected: ("clob", 6),
        },
        Vector {
            name: "invalid order router address",
            source: PLACE,
            send: Send::Place(with(short(16), &|o| {
                o.order_router_address = "not-an-address".into();
            })),
            expected: ("clob", 11000),
        },
        Vector {
            name: "builder code with fee ppm 0",
            source: PLACE,
            send: Send::Place(with(short(17), &|o| {
                o.builder_code_parameters = Some(BuilderCodeParameters {
                    builder_address: acc.address().to_string(),
                    fee_ppm: 0,
                });
            })),
            expected: ("clob", 50),
        },
        Vector {
            name: "TWAP order without TWAP parameters",
            source: PLACE,
            send: Send::Place(with(long(18), &|o| {
                o.order_id.as_mut().expect("id").order_flags = order_flags::TWAP;
            })),
            expected: ("clob", 12),
        },
        Vector {
            name: "subaccount number above 128 000",
            source: SUBACCOUNT,
            send: Send::Place(with(short(19), &|o| {
                o.order_id
                    .as_mut()
                    .expect("id")
                    .subaccount_id
                    .as_mut()
                    .expect("sub")
                    .number = 128_001;
            })),
            expected: ("subaccounts", 200),
        },
        // --- MsgCancelOrder ------------------------------------------------------------
        Vector {
            name: "cancel with order flags outside the known ones",
            source: ORDER_ID,
            send: Send::Cancel(
                with(long(20), &|o| {
                    o.order_id.as_mut().expect("id").order_flags = 16;
                })
                .order_id
                .expect("id"),
                CancelUntil::Time(gtbt),
            ),
            expected: ("clob", 3000),
        },
        Vector {
            name: "short-term cancel with GTB 0",
            source: CANCEL,
            send: Send::Cancel(id_of(&short(21)), CancelUntil::Block(0)),
            expected: ("clob", 5),
        },
        Vector {
            name: "short-term cancel with a block time",
            source: CANCEL,
            send: Send::Cancel(id_of(&short(22)), CancelUntil::Time(gtbt)),
            expected: ("clob", 5),
        },
        Vector {
            name: "stateful cancel with GTBT 0",
            source: CANCEL,
            send: Send::Cancel(
                id_of(&long(23)),
                CancelUntil::Time(DateTime::from_timestamp(0, 0).expect("epoch")),
            ),
            expected: ("clob", 3001),
        },
        Vector {
            name: "stateful cancel with a block height",
            source: CANCEL,
            send: Send::Cancel(id_of(&long(24)), CancelUntil::Block(h + 5)),
            expected: ("clob", 3001),
        },
        Vector {
            name: "cancel for a subaccount whose owner is not an address",
            source: SUBACCOUNT,
            send: Send::Cancel(
                with(long(25), &|o| {
                    o.order_id.as_mut().expect("id").subaccount_id = Some(SubaccountId {
                        owner: "dydx1notanaddress".into(),
                        number: 0,
                    });
                })
                .order_id
                .expect("id"),
                CancelUntil::Time(gtbt),
            ),
            expected: ("subaccounts", 201),
        },
        // --- MsgBatchCancel ------------------------------------------------------------
        Vector {
            name: "batch without batches",
            source: BATCH,
            send: Send::Batch(vec![], h + 5),
            expected: ("clob", 45),
        },
        Vector {
            name: "batch with two batches for one clob pair",
            source: BATCH,
            send: Send::Batch(
                vec![
                    OrderBatch {
                        clob_pair_id: 0,
                        client_ids: vec![1],
                    },
                    OrderBatch {
                        clob_pair_id: 0,
                        client_ids: vec![2],
                    },
                ],
                h + 5,
            ),
            expected: ("clob", 45),
        },
        Vector {
            name: "batch with an empty client id list",
            source: BATCH,
            send: Send::Batch(
                vec![OrderBatch {
                    clob_pair_id: 0,
                    client_ids: vec![],
                }],
                h + 5,
            ),
            expected: ("clob", 45),
        },
        Vector {
            name: "batch with duplicate client ids",
            source: BATCH,
            send: Send::Batch(
                vec![OrderBatch {
                    clob_pair_id: 0,
                    client_ids: vec![3, 3],
                }],
                h + 5,
            ),
            expected: ("clob", 45),
        },
        Vector {
            name: "batch of 101 client ids over two pairs",
            source: BATCH,
            send: Send::Batch(
                vec![
                    OrderBatch {
                        clob_pair_id: 0,
                        client_ids: (1..=51).collect(),
                    },
                    OrderBatch {
                        clob_pair_id: 1,
                        client_ids: (1..=50).collect(),
                    },
                ],
                h + 5,
            ),
            expected: ("clob", 45),
        },
        Vector {
            name: "batch with GTB 0 passes ValidateBasic and fails the GTB window",
            source: GOOD_TIL_BLOCK,
            send: Send::Batch(
                vec![OrderBatch {
                    clob_pair_id: 0,
                    client_ids: vec![4],
                }],
                0,
            ),
            expected: ("clob", 10),
        },
    ];

    let address = env.account.address().to_string();
    let before = env.sim.account(&address).expect("account");
    let count = vectors.len();
    for v in vectors {
        let result = match v.send {
            Send::Place(order) => env.client.place_order(&mut env.account, order).await,
            Send::Cancel(id, CancelUntil::Block(b)) => {
                env.client
                    .cancel_order(&mut env.account, id, Height(b))
                    .await
            }
            Send::Cancel(id, CancelUntil::Time(t)) => {
                env.client.cancel_order(&mut env.account, id, t).await
            }
            Send::Batch(batches, gtb) => {
                let sub = env.account.subaccount(0).expect("subaccount");
                env.client
                    .batch_cancel_orders(&mut env.account, sub, batches, Height(gtb))
                    .await
            }
        };
        let (codespace, code) = outcome(&env.sim, &result);
        assert_eq!(
            (codespace.as_str(), code),
            v.expected,
            "{} ({}): {result:?}",
            v.name,
            v.source
        );
    }
    assert!(count >= 30, "{count} vectors");
    // Refused before any state: no order, no sequence or nonce consumed, nothing pending.
    assert!(env.sim.orders().is_empty(), "{:?}", env.sim.orders());
    assert!(env.sim.pending_txs().is_empty());
    assert_eq!(env.sim.account(&address).expect("account"), before);

    // The same order without the defect is accepted (the vectors differ only in the defect).
    let ok = builder(&env.account)
        .limit(OrderSide::Sell, 50_000, qty())
        .time_in_force(OrderTimeInForce::Ioc)
        .reduce_only(true)
        .until(Height(h + 10))
        .build(40u32)
        .expect("build")
        .1;
    let result = env.client.place_order(&mut env.account, ok).await;
    assert_eq!(
        outcome(&env.sim, &result),
        (String::new(), 0),
        "reduce-only IOC"
    );
    let stop = builder(&env.account)
        .stop_limit(OrderSide::Sell, 50_000, 49_000, qty())
        .until(gtbt)
        .build(41u32)
        .expect("build")
        .1;
    let result = env.client.place_order(&mut env.account, stop).await;
    assert_eq!(outcome(&env.sim, &result), (String::new(), 0), "stop-limit");
}

/// `Simulate` runs the same stateless rules (the `dydx` client simulates before some txs).
#[tokio::test]
async fn simulate_answers_validate_basic_failures() {
    use dydx_proto::ToAny;
    use dydx_proto::dydxprotocol::clob::MsgPlaceOrder;
    let mut env = env().await;
    let (_, order) = short_order(&env.account, 1, env.sim.height() + 5);
    let order = Order {
        time_in_force: OrderTimeInForce::FillOrKill as i32,
        ..order
    };
    env.account
        .set_next_nonce(dydx::node::sequencer::Nonce::Sequence(0));
    let raw = env
        .client
        .builder
        .build_transaction(
            &env.account,
            std::iter::once(MsgPlaceOrder { order: Some(order) }.to_any()),
            None,
            None,
        )
        .expect("build tx");
    let err = env
        .client
        .simulate(&raw)
        .await
        .expect_err("fill-or-kill refused");
    assert!(err.to_string().contains("deprecated"), "{err}");
}
