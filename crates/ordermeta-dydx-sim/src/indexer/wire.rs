//! The indexer's JSON objects, field for field as `indexer/services/comlink` (REST) and
//! `indexer/services/socks` (websocket) send them, restricted to the fields the `dydx` 0.3
//! client declares (`dydx::indexer::OrderResponseObject`, `OrderSubaccountMessageContents`,
//! `FillResponseObject`, …), and the conversions of quantums and subticks to the decimal
//! strings the indexer prints (`protocol-translations.ts`, Big.js `toFixed()`).

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use dydx_proto::dydxprotocol::clob::{Order, order};
use serde::Serialize;

use super::Market;

/// `QUOTE_CURRENCY_ATOMIC_RESOLUTION` of the indexer (USDC has 6 decimals).
const QUOTE_CURRENCY_ATOMIC_RESOLUTION: i32 = -6;

/// `value * 10^exp` as a plain decimal without exponent or trailing zeros (Big.js `toFixed()`).
pub(crate) fn decimal(value: u128, exp: i32) -> String {
    let digits = value.to_string();
    if value == 0 {
        return "0".into();
    }
    if exp >= 0 {
        let zeros = usize::try_from(exp).unwrap_or(0);
        return format!("{digits}{}", "0".repeat(zeros));
    }
    let scale = usize::try_from(exp.unsigned_abs()).unwrap_or(0);
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale - digits.len() + 1))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

impl Market {
    /// `subticksToPrice`.
    pub(crate) fn price(&self, subticks: u64) -> String {
        decimal(
            u128::from(subticks),
            self.quantum_conversion_exponent + QUOTE_CURRENCY_ATOMIC_RESOLUTION
                - self.atomic_resolution,
        )
    }

    /// `quantumsToHumanFixedString`.
    pub(crate) fn size(&self, quantums: u64) -> String {
        decimal(u128::from(quantums), self.atomic_resolution)
    }

    /// `price * size` of a fill, exactly.
    pub(crate) fn quote_amount(&self, subticks: u64, quantums: u64) -> String {
        decimal(
            u128::from(subticks) * u128::from(quantums),
            self.quantum_conversion_exponent + QUOTE_CURRENCY_ATOMIC_RESOLUTION,
        )
    }
}

/// Times as the indexer prints them (`toISOString()`: milliseconds, `Z`).
pub(crate) fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A good-til-block-time (unix seconds) as an ISO time.
pub(crate) fn iso_secs(secs: u32) -> String {
    Utc.timestamp_opt(i64::from(secs), 0)
        .single()
        .map(iso)
        .unwrap_or_default()
}

/// `OrderSide`.
pub(crate) fn side(order: &Order) -> &'static str {
    if order.side == order::Side::Sell as i32 {
        "SELL"
    } else {
        "BUY"
    }
}

/// `APITimeInForce` and `postOnly` of the indexer's `TimeInForce` (`api-translations.ts`).
pub(crate) fn time_in_force(order: &Order) -> (&'static str, bool) {
    match order::TimeInForce::try_from(order.time_in_force) {
        Ok(order::TimeInForce::Ioc) => ("IOC", false),
        Ok(order::TimeInForce::FillOrKill) => ("FOK", false),
        Ok(order::TimeInForce::PostOnly) => ("GTT", true),
        _ => ("GTT", false),
    }
}

/// `protocolConditionTypeToOrderType` (as called with its default order flag).
pub(crate) fn order_type(order: &Order) -> &'static str {
    match order::ConditionType::try_from(order.condition_type) {
        Ok(order::ConditionType::StopLoss) => "STOP_LIMIT",
        Ok(order::ConditionType::TakeProfit) => "TAKE_PROFIT",
        _ => "LIMIT",
    }
}

/// `(goodTilBlock, goodTilBlockTime)` as strings.
pub(crate) fn good_til(order: &Order) -> (Option<String>, Option<String>) {
    match order.good_til_oneof {
        Some(order::GoodTilOneof::GoodTilBlock(b)) => (Some(b.to_string()), None),
        Some(order::GoodTilOneof::GoodTilBlockTime(t)) => (None, Some(iso_secs(t))),
        None => (None, None),
    }
}

/// The trigger price of a conditional order.
pub(crate) fn trigger_price(order: &Order, market: &Market) -> Option<String> {
    (order.condition_type != order::ConditionType::Unspecified as i32)
        .then(|| market.price(order.conditional_order_trigger_subticks))
}

/// One order in a `v4_subaccounts` update (`OrderSubaccountMessageContents`). Which fields
/// are set depends on the handler that sent it, as on the real indexer.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderMessage {
    pub id: String,
    pub subaccount_id: String,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clob_pair_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_filled: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_optimistic_filled: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub order_type: Option<&'static str>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reduce_only: Option<bool>,
    pub order_flags: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub good_til_block: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub good_til_block_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at_height: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at_height: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_price: Option<String>,
}

/// One fill in a `v4_subaccounts` update (`FillSubaccountMessageContents`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FillMessage {
    pub id: String,
    pub subaccount_id: String,
    pub side: &'static str,
    pub liquidity: &'static str,
    #[serde(rename = "type")]
    pub fill_type: &'static str,
    pub clob_pair_id: String,
    pub size: String,
    pub price: String,
    pub quote_amount: String,
    pub event_id: String,
    pub transaction_hash: String,
    pub created_at: String,
    pub created_at_height: String,
    pub ticker: String,
    pub order_id: String,
    pub client_metadata: String,
}

/// The contents of one `v4_subaccounts` update (`SubaccountMessageContents`).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubaccountContents {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<Vec<OrderMessage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fills: Option<Vec<FillMessage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_height: Option<String>,
}

/// `OrderResponseObject` of `GET /v4/orders`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderResponse {
    pub id: String,
    pub subaccount_id: String,
    pub client_id: String,
    pub clob_pair_id: String,
    pub side: &'static str,
    pub size: String,
    pub total_filled: String,
    pub price: String,
    #[serde(rename = "type")]
    pub order_type: &'static str,
    pub status: &'static str,
    pub time_in_force: &'static str,
    pub post_only: bool,
    pub reduce_only: bool,
    pub order_flags: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub good_til_block: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub good_til_block_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at_height: Option<String>,
    pub client_metadata: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_price: Option<String>,
    pub ticker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at_height: Option<String>,
    pub subaccount_number: u32,
}

/// `FillResponseObject` of `GET /v4/fills`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FillResponse {
    pub id: String,
    pub side: &'static str,
    pub liquidity: &'static str,
    #[serde(rename = "type")]
    pub fill_type: &'static str,
    pub market: String,
    pub market_type: &'static str,
    pub price: String,
    pub size: String,
    pub fee: String,
    pub affiliate_rev_share: String,
    pub created_at: String,
    pub created_at_height: String,
    pub order_id: String,
    pub client_metadata: String,
    pub subaccount_number: u32,
}

/// `SubaccountResponseObject`. No collateral is simulated: equity, free collateral and the
/// positions are empty.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubaccountResponse {
    pub address: String,
    pub subaccount_number: u32,
    pub equity: String,
    pub free_collateral: String,
    pub open_perpetual_positions: serde_json::Map<String, serde_json::Value>,
    pub asset_positions: serde_json::Map<String, serde_json::Value>,
    pub margin_enabled: bool,
    pub updated_at_height: String,
    pub latest_processed_block_height: String,
}

/// `PerpetualMarket` of `GET /v4/perpetualMarkets` (market data that is not simulated is 0).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PerpetualMarketResponse {
    pub clob_pair_id: String,
    pub ticker: String,
    pub status: &'static str,
    #[serde(rename = "priceChange24H")]
    pub price_change_24h: String,
    #[serde(rename = "volume24H")]
    pub volume_24h: String,
    #[serde(rename = "trades24H")]
    pub trades_24h: u64,
    pub next_funding_rate: String,
    pub initial_margin_fraction: String,
    pub maintenance_margin_fraction: String,
    pub open_interest: String,
    pub atomic_resolution: i32,
    pub quantum_conversion_exponent: i32,
    pub tick_size: String,
    pub step_size: String,
    pub step_base_quantums: u64,
    pub subticks_per_tick: u32,
    pub market_type: &'static str,
    pub base_open_interest: String,
}

impl PerpetualMarketResponse {
    pub(crate) fn of(market: &Market) -> Self {
        Self {
            clob_pair_id: market.clob_pair_id.to_string(),
            ticker: market.ticker.clone(),
            status: "ACTIVE",
            price_change_24h: "0".into(),
            volume_24h: "0".into(),
            trades_24h: 0,
            next_funding_rate: "0".into(),
            initial_margin_fraction: "0.05".into(),
            maintenance_margin_fraction: "0.03".into(),
            open_interest: "0".into(),
            atomic_resolution: market.atomic_resolution,
            quantum_conversion_exponent: market.quantum_conversion_exponent,
            tick_size: market.price(u64::from(market.subticks_per_tick)),
            step_size: market.size(market.step_base_quantums),
            step_base_quantums: market.step_base_quantums,
            subticks_per_tick: market.subticks_per_tick,
            market_type: "CROSS",
            base_open_interest: "0".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_print_like_big_js_to_fixed() {
        assert_eq!(decimal(1_000_000, -10), "0.0001");
        assert_eq!(decimal(5_000_000_000, -5), "50000");
        assert_eq!(decimal(123_450, -2), "1234.5");
        assert_eq!(decimal(7, 3), "7000");
        assert_eq!(decimal(0, -4), "0");
        assert_eq!(decimal(1, -1), "0.1");
    }

    #[test]
    fn btc_usd_prices_and_sizes_match_the_client_conversions() {
        let btc = Market::btc_usd();
        // `dydx::node::OrderBuilder` turns price 50 000, size 0.01 into these.
        assert_eq!(btc.price(5_000_000_000), "50000");
        assert_eq!(btc.size(100_000_000), "0.01");
        assert_eq!(btc.quote_amount(5_000_000_000, 100_000_000), "500");
        assert_eq!(btc.price(u64::from(btc.subticks_per_tick)), "1");
        assert_eq!(iso_secs(0), "1970-01-01T00:00:00.000Z");
    }
}
