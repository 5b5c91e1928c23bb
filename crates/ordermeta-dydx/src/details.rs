//! [`Market`] and the [`OrderDetails`] of a built `Order`: side, size, price and type read
//! from the order itself (quantums and subticks turned into exact decimal text with the
//! market's parameters), or details a caller wrote checked against the order.
//!
//! The conversions are the inverse of `dydx`'s `OrderMarketParams::quantize_*`: size =
//! quantums × 10^`atomic_resolution`; price = subticks × 10^(`quantum_conversion_exponent` −
//! `atomic_resolution` − 6), 6 being the quote asset's (USDC) atomic resolution. Both are
//! exact, in integer arithmetic on the decimal digits (no floating point).

use std::fmt;

use dydx::indexer::PerpetualMarket;
use dydx::node::OrderMarketParams;
use dydx_proto::dydxprotocol::clob::Order;
use dydx_proto::dydxprotocol::clob::order::{ConditionType, Side as ProtoSide, TimeInForce};
use ordermeta_core::{OrderType, Side};

use crate::client::OrderDetails;

/// The quote asset's (USDC) atomic resolution: a price's subticks are in 10^-6 quote units.
const QUOTE_ATOMIC_RESOLUTION: i32 = -6;
/// The largest power of ten a conversion accepts: real markets stay within ±20; anything
/// beyond is a broken parameter, not a market.
const MAX_EXPONENT: i32 = 60;

/// A market as ordermeta needs it: its symbol (recorded with each order) and the `dydx`
/// parameters that turn an order's quantums and subticks into size and price. Pass it to
/// `OrderBuilder::new` (it converts into `OrderMarketParams`) and to
/// [`OrderMetaClient::place`](crate::OrderMetaClient::place).
///
/// From the indexer: `Market::from(indexer.markets().get_perpetual_market(&"BTC-USD".into()).await?)`.
#[derive(Clone, Debug)]
pub struct Market {
    /// The market's symbol (ticker), e.g. `BTC-USD`.
    pub symbol: String,
    /// The market's parameters, as `dydx`'s `OrderBuilder` takes them.
    pub params: OrderMarketParams,
}

impl Market {
    /// A market from its symbol and its parameters.
    pub fn new(symbol: impl Into<String>, params: OrderMarketParams) -> Self {
        Market {
            symbol: symbol.into(),
            params,
        }
    }

    /// The market's clob pair id (what an order's id carries).
    pub fn clob_pair_id(&self) -> u32 {
        self.params.clob_pair_id.0
    }
}

impl From<PerpetualMarket> for Market {
    fn from(market: PerpetualMarket) -> Self {
        let symbol = market.ticker.0.clone();
        Market::new(symbol, market.into())
    }
}

impl From<&Market> for OrderMarketParams {
    fn from(market: &Market) -> Self {
        market.params.clone()
    }
}

impl From<Market> for OrderMarketParams {
    fn from(market: Market) -> Self {
        market.params
    }
}

/// Which part of an [`OrderDetails`] disagrees with the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DetailsField {
    /// [`OrderDetails::symbol`].
    Symbol,
    /// [`OrderDetails::side`].
    Side,
    /// [`OrderDetails::quantity`].
    Quantity,
    /// [`OrderDetails::price`].
    Price,
    /// [`OrderDetails::order_type`].
    OrderType,
}

impl fmt::Display for DetailsField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DetailsField::Symbol => "symbol",
            DetailsField::Side => "side",
            DetailsField::Quantity => "quantity",
            DetailsField::Price => "price",
            DetailsField::OrderType => "order type",
        })
    }
}

/// Order details that cannot be derived from an order, or that disagree with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DetailsError {
    /// A detail the caller gave says something else than the order that would be broadcast.
    #[error(
        "order details disagree with the order: {field} is {given:?}, the order says {order:?}"
    )]
    Disagree {
        /// The field.
        field: DetailsField,
        /// What the caller's details say.
        given: String,
        /// What the order says.
        order: String,
    },
    /// The order is for another market than the one given.
    #[error("the order is for clob pair {order}, the market given is clob pair {market}")]
    WrongMarket {
        /// The order's clob pair.
        order: u32,
        /// The market's clob pair.
        market: u32,
    },
    /// The order (or the market) holds something the details cannot express.
    #[error("cannot read the order's details: {reason}")]
    Unreadable {
        /// What.
        reason: &'static str,
    },
}

impl OrderDetails {
    /// The details of `order` in `market`: the market's symbol, the order's side, its size
    /// and price as exact decimal text, and its type (a conditional order's condition type
    /// says stop or take-profit; immediate-or-cancel or fill-or-kill makes a *market* order —
    /// dYdX has no other: `OrderBuilder::market` builds an IOC order with a worst price —,
    /// anything else a *limit* order). The price is the order's limit price (for a market
    /// order, the worst price it accepts).
    pub fn from_order(order: &Order, market: &Market) -> Result<OrderDetails, DetailsError> {
        let clob_pair = order.order_id.as_ref().map_or(0, |id| id.clob_pair_id);
        if clob_pair != market.clob_pair_id() {
            return Err(DetailsError::WrongMarket {
                order: clob_pair,
                market: market.clob_pair_id(),
            });
        }
        let params = &market.params;
        let price_exponent = params
            .quantum_conversion_exponent
            .checked_sub(params.atomic_resolution)
            .and_then(|e| e.checked_add(QUOTE_ATOMIC_RESOLUTION));
        let unreadable = DetailsError::Unreadable {
            reason: "market parameters out of range",
        };
        Ok(OrderDetails {
            symbol: market.symbol.clone(),
            side: order_side(order)?,
            quantity: decimal_text(order.quantums, params.atomic_resolution)
                .ok_or_else(|| unreadable.clone())?,
            price: Some(
                decimal_text(
                    order.subticks,
                    price_exponent.ok_or_else(|| unreadable.clone())?,
                )
                .ok_or(unreadable)?,
            ),
            order_type: order_type(order),
        })
    }

    /// Checks these details against `order` in `market`: the same symbol and side, the same
    /// size and price as numbers (`"1.50"` is `"1.5"`), and a compatible type (a *limit*
    /// order may be immediate-or-cancel; a *market* order must be; stop and take-profit
    /// must match the order's condition). A market order's price may be left out.
    pub fn check(&self, order: &Order, market: &Market) -> Result<(), DetailsError> {
        let derived = OrderDetails::from_order(order, market)?;
        self.check_order(order)?;
        if self.symbol != derived.symbol {
            return Err(disagree(
                DetailsField::Symbol,
                &self.symbol,
                &derived.symbol,
            ));
        }
        if normalize(&self.quantity).as_deref() != Some(derived.quantity.as_str()) {
            return Err(disagree(
                DetailsField::Quantity,
                &self.quantity,
                &derived.quantity,
            ));
        }
        let order_price = derived.price.unwrap_or_default();
        match &self.price {
            None if is_market(self.order_type) => Ok(()),
            Some(given) if normalize(given).as_deref() == Some(order_price.as_str()) => Ok(()),
            given => Err(disagree(
                DetailsField::Price,
                given.as_deref().unwrap_or("none"),
                &order_price,
            )),
        }
    }

    /// What can be checked without the market: the side and the type.
    pub(crate) fn check_order(&self, order: &Order) -> Result<(), DetailsError> {
        let side = order_side(order)?;
        if self.side != side {
            return Err(disagree(
                DetailsField::Side,
                self.side.as_str(),
                side.as_str(),
            ));
        }
        let derived = order_type(order);
        let agrees = family(self.order_type) == family(derived)
            && (!is_market(self.order_type) || is_market(derived));
        if !agrees {
            return Err(disagree(
                DetailsField::OrderType,
                self.order_type.as_str(),
                derived.as_str(),
            ));
        }
        Ok(())
    }
}

fn disagree(field: DetailsField, given: &str, order: &str) -> DetailsError {
    DetailsError::Disagree {
        field,
        given: given.to_owned(),
        order: order.to_owned(),
    }
}

fn order_side(order: &Order) -> Result<Side, DetailsError> {
    match ProtoSide::try_from(order.side) {
        Ok(ProtoSide::Buy) => Ok(Side::Buy),
        Ok(ProtoSide::Sell) => Ok(Side::Sell),
        _ => Err(DetailsError::Unreadable {
            reason: "the order's side is neither buy nor sell",
        }),
    }
}

/// The type the order is, by its condition type and time in force.
fn order_type(order: &Order) -> OrderType {
    let immediate = matches!(
        TimeInForce::try_from(order.time_in_force),
        Ok(TimeInForce::Ioc | TimeInForce::FillOrKill)
    );
    match (ConditionType::try_from(order.condition_type), immediate) {
        (Ok(ConditionType::StopLoss), false) => OrderType::StopLimit,
        (Ok(ConditionType::StopLoss), true) => OrderType::StopMarket,
        (Ok(ConditionType::TakeProfit), false) => OrderType::TakeProfitLimit,
        (Ok(ConditionType::TakeProfit), true) => OrderType::TakeProfitMarket,
        (_, false) => OrderType::Limit,
        (_, true) => OrderType::Market,
    }
}

/// Plain, stop or take-profit (a type added later is its own family).
fn family(t: OrderType) -> u8 {
    match t {
        OrderType::Market | OrderType::Limit => 0,
        OrderType::StopLimit | OrderType::StopMarket => 1,
        OrderType::TakeProfitLimit | OrderType::TakeProfitMarket => 2,
        _ => 3,
    }
}

fn is_market(t: OrderType) -> bool {
    matches!(
        t,
        OrderType::Market | OrderType::StopMarket | OrderType::TakeProfitMarket
    )
}

/// `value` × 10^`exponent` as plain decimal text without trailing zeros (`"0.001"`,
/// `"65000"`); `None` for an exponent beyond ±[`MAX_EXPONENT`].
pub(crate) fn decimal_text(value: u64, exponent: i32) -> Option<String> {
    if !(-MAX_EXPONENT..=MAX_EXPONENT).contains(&exponent) {
        return None;
    }
    if value == 0 {
        return Some("0".to_owned());
    }
    let digits = value.to_string();
    let shift = exponent.unsigned_abs() as usize;
    if exponent >= 0 {
        return Some(digits + &"0".repeat(shift));
    }
    let padded = format!(
        "{}{digits}",
        "0".repeat((shift + 1).saturating_sub(digits.len()))
    );
    let (int, frac) = padded.split_at(padded.len() - shift);
    let frac = frac.trim_end_matches('0');
    Some(if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    })
}

/// Decimal text in the form [`decimal_text`] writes (`"01.50"` → `"1.5"`); `None` if it is
/// not a plain non-negative decimal number.
pub(crate) fn normalize(text: &str) -> Option<String> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    if text.ends_with('.') {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    Some(if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    })
}

#[cfg(test)]
mod tests;
