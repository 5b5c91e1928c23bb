use std::str::FromStr;

use dydx::indexer::{ClientId, ClobPairId, Height, OrderExecution, Price, Quantity};
use dydx::node::{OrderBuilder, OrderSide, Wallet};
use proptest::prelude::*;

use super::*;

/// The public test mnemonic of the `dydx` crate's examples (never funded on mainnet).
const MNEMONIC: &str = "mirror actor skill push coach wait confirm orchard lunch mobile athlete gossip awake miracle matter bus reopen team ladder lazy list timber render wait";

/// BTC-USD's parameters on dYdX (clob pair 0).
fn btc() -> Market {
    Market::new(
        "BTC-USD",
        OrderMarketParams {
            atomic_resolution: -10,
            clob_pair_id: ClobPairId(0),
            oracle_price: None,
            quantum_conversion_exponent: -9,
            step_base_quantums: 1_000_000,
            subticks_per_tick: 100_000,
        },
    )
}

fn builder(market: &Market) -> OrderBuilder {
    let wallet = Wallet::from_mnemonic(MNEMONIC).expect("wallet");
    let sub = wallet
        .account_offline(0)
        .expect("account")
        .subaccount(0)
        .expect("subaccount");
    OrderBuilder::new(market, sub)
}

fn qty(s: &str) -> Quantity {
    Quantity::from_str(s).expect("quantity")
}

fn px(s: &str) -> Price {
    Price::from_str(s).expect("price")
}

#[test]
fn a_limit_order_reads_back_as_built() {
    let market = btc();
    let (_, order) = builder(&market)
        .limit(OrderSide::Buy, px("65001"), qty("0.0015"))
        .until(Height(100))
        .build(ClientId(1))
        .expect("order");
    let details = OrderDetails::from_order(&order, &market).expect("details");
    assert_eq!(
        details,
        OrderDetails {
            symbol: "BTC-USD".into(),
            side: Side::Buy,
            quantity: "0.0015".into(),
            price: Some("65001".into()),
            order_type: OrderType::Limit,
        }
    );
    details
        .check(&order, &market)
        .expect("its own details agree");
}

#[test]
fn market_and_conditional_orders_get_their_types() {
    let market = btc();
    let (_, market_sell) = builder(&market)
        .market(OrderSide::Sell, qty("2"))
        .price(px("60000"))
        .until(Height(100))
        .build(ClientId(2))
        .expect("market order");
    let d = OrderDetails::from_order(&market_sell, &market).expect("details");
    assert_eq!((d.side, d.order_type), (Side::Sell, OrderType::Market));
    assert_eq!(d.price.as_deref(), Some("60000"));

    let until = chrono::DateTime::from_timestamp(2_000_000_000, 0).expect("time");
    let (_, stop) = builder(&market)
        .stop_limit(OrderSide::Sell, px("59000"), px("59500"), qty("1"))
        .until(until)
        .build(ClientId(3))
        .expect("stop limit");
    let d = OrderDetails::from_order(&stop, &market).expect("details");
    assert_eq!(d.order_type, OrderType::StopLimit);
    assert_eq!(d.price.as_deref(), Some("59000"));

    let (_, tp) = builder(&market)
        .take_profit_market(OrderSide::Buy, px("70000"), qty("1"))
        .execution(OrderExecution::Ioc)
        .price(px("71000"))
        .until(until)
        .build(ClientId(4))
        .expect("take profit market");
    let d = OrderDetails::from_order(&tp, &market).expect("details");
    assert_eq!(d.order_type, OrderType::TakeProfitMarket);
}

#[test]
fn details_that_disagree_are_named() {
    let market = btc();
    let (_, order) = builder(&market)
        .limit(OrderSide::Buy, px("65000"), qty("0.01"))
        .until(Height(100))
        .build(ClientId(5))
        .expect("order");
    let good = OrderDetails::from_order(&order, &market).expect("details");
    // Same numbers, other spellings: they agree.
    let respelled = OrderDetails {
        quantity: "0.0100".into(),
        price: Some("065000.000".into()),
        ..good.clone()
    };
    respelled.check(&order, &market).expect("same numbers");

    let cases = [
        (
            OrderDetails {
                side: Side::Sell,
                ..good.clone()
            },
            DetailsField::Side,
        ),
        (
            OrderDetails {
                quantity: "0.1".into(),
                ..good.clone()
            },
            DetailsField::Quantity,
        ),
        (
            OrderDetails {
                quantity: "a lot".into(),
                ..good.clone()
            },
            DetailsField::Quantity,
        ),
        (
            OrderDetails {
                price: Some("64000".into()),
                ..good.clone()
            },
            DetailsField::Price,
        ),
        (
            OrderDetails {
                price: None,
                ..good.clone()
            },
            DetailsField::Price,
        ),
        (
            OrderDetails {
                symbol: "ETH-USD".into(),
                ..good.clone()
            },
            DetailsField::Symbol,
        ),
        (
            OrderDetails {
                order_type: OrderType::Market,
                ..good.clone()
            },
            DetailsField::OrderType,
        ),
        (
            OrderDetails {
                order_type: OrderType::StopLimit,
                ..good.clone()
            },
            DetailsField::OrderType,
        ),
    ];
    for (details, field) in cases {
        match details.check(&order, &market) {
            Err(DetailsError::Disagree { field: f, .. }) => assert_eq!(f, field, "{details:?}"),
            other => panic!("{details:?}: expected a disagreement on {field}, got {other:?}"),
        }
    }
    // Without the market, side and type are still checked.
    assert!(good.check_order(&order).is_ok());
    let wrong_side = OrderDetails {
        side: Side::Sell,
        ..good
    };
    assert!(wrong_side.check_order(&order).is_err());
}

#[test]
fn an_order_of_another_market_is_refused() {
    let market = btc();
    let (_, order) = builder(&market)
        .limit(OrderSide::Buy, px("65000"), qty("1"))
        .until(Height(100))
        .build(ClientId(6))
        .expect("order");
    let mut eth = btc();
    eth.params.clob_pair_id = ClobPairId(1);
    assert_eq!(
        OrderDetails::from_order(&order, &eth),
        Err(DetailsError::WrongMarket {
            order: 0,
            market: 1
        })
    );
}

#[test]
fn decimal_text_and_normalize() {
    for (value, exp, text) in [
        (0, -10, "0"),
        (1, 0, "1"),
        (15, -1, "1.5"),
        (10_000_000, -10, "0.001"),
        (6_500_000_000, -5, "65000"),
        (7, -3, "0.007"),
        (12, 3, "12000"),
        (u64::MAX, -19, "1.8446744073709551615"),
    ] {
        assert_eq!(
            decimal_text(value, exp).as_deref(),
            Some(text),
            "{value}e{exp}"
        );
    }
    assert_eq!(decimal_text(1, 61), None);
    assert_eq!(decimal_text(1, -61), None);
    for (given, normal) in [
        ("01.50", Some("1.5")),
        (".5", Some("0.5")),
        ("000", Some("0")),
        ("7", Some("7")),
        ("1.", None),
        ("", None),
        (".", None),
        ("-1", None),
        ("1e3", None),
        ("1.2.3", None),
    ] {
        assert_eq!(normalize(given).as_deref(), normal, "{given:?}");
    }
}

proptest! {
    /// The text read from an order builds the same order again with `dydx`'s own
    /// quantization: the conversion is exact.
    #[test]
    fn derived_size_and_price_rebuild_the_order(ticks in 1u64..10_000_000, steps in 1u64..1_000_000) {
        let market = btc();
        let (subticks, quantums) = (ticks * 100_000, steps * 1_000_000);
        let order = Order { quantums, subticks, side: ProtoSide::Buy as i32, ..Order::default() };
        let d = OrderDetails::from_order(&order, &market).expect("details");
        let (_, rebuilt) = builder(&market)
            .limit(OrderSide::Buy, px(d.price.as_deref().unwrap_or_default()), qty(&d.quantity))
            .until(Height(100))
            .build(ClientId(7))
            .expect("order");
        prop_assert_eq!((rebuilt.subticks, rebuilt.quantums), (subticks, quantums));
        prop_assert_eq!(normalize(&d.quantity), Some(d.quantity.clone()));
    }
}
