//! The REST routes comlink serves that the `dydx` client calls for orders, fills, subaccounts,
//! markets, height and time. Errors answer like comlink: 400 with `{"errors":[{"msg",
//! "param","location"}]}` for a bad parameter, 404 with `{"errors":[{"msg"}]}` for nothing found.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::query::{API_LIMIT, FillFilter, OrderFilter};
use super::state::Status;
use super::wire::{self, PerpetualMarketResponse};
use super::{Indexer, ws};

/// The indexer's routes.
pub(crate) fn router(indexer: Arc<Indexer>) -> Router {
    Router::new()
        .route("/v4/orders", get(list_orders))
        .route("/v4/orders/{order_id}", get(get_order))
        .route("/v4/fills", get(list_fills))
        .route("/v4/addresses/{address}", get(get_address))
        .route(
            "/v4/addresses/{address}/subaccountNumber/{number}",
            get(get_subaccount),
        )
        .route("/v4/height", get(height))
        .route("/v4/time", get(time))
        .route("/v4/perpetualMarkets", get(perpetual_markets))
        .route("/v4/ws", get(ws::upgrade))
        .with_state(indexer)
}

/// A failed request, answered as comlink answers it.
#[derive(Debug)]
enum ApiError {
    BadRequest { param: String, msg: String },
    NotFound(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest { param, msg } => (
                StatusCode::BAD_REQUEST,
                Json(json!({"errors": [{"msg": msg, "param": param, "location": "query"}]})),
            )
                .into_response(),
            Self::NotFound(msg) => (
                StatusCode::NOT_FOUND,
                Json(json!({"errors": [{"msg": msg}]})),
            )
                .into_response(),
        }
    }
}

/// The query string's parameters (a repeated one keeps its last value; lists are
/// comma-separated, as comlink's `sanitizeArray` reads them).
struct Params(HashMap<String, String>);

impl Params {
    fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|_| ApiError::BadRequest {
                    param: name.into(),
                    msg: format!("{name} is invalid: {v}"),
                })
            })
            .transpose()
    }

    fn required<T: FromStr>(&self, name: &str) -> Result<T, ApiError> {
        self.parse(name)?.ok_or_else(|| ApiError::BadRequest {
            param: name.into(),
            msg: format!("{name} is required"),
        })
    }

    fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.parse::<DateTime<Utc>>(name)
    }

    fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            Some(v) if !allowed.contains(&v) => Err(ApiError::BadRequest {
                param: name.into(),
                msg: format!("{name} must be one of {}", allowed.join(",")),
            }),
            v => Ok(v.map(str::to_owned)),
        }
    }

    fn limit(&self) -> Result<Option<usize>, ApiError> {
        match self.parse::<usize>("limit")? {
            Some(l) if l == 0 || l > API_LIMIT => Err(ApiError::BadRequest {
                param: "limit".into(),
                msg: format!(
                    "limit must be a positive integer that is not greater than max: {API_LIMIT}"
                ),
            }),
            l => Ok(l),
        }
    }

    /// `address` and `subaccountNumber` (0..=128000).
    fn subaccount(&self) -> Result<(String, u32), ApiError> {
        let address: String = self.required("address")?;
        let number: u32 = self.required("subaccountNumber")?;
        if number > 128_000 {
            return Err(ApiError::BadRequest {
                param: "subaccountNumber".into(),
                msg: "subaccountNumber must be a non-negative integer less than 128001".into(),
            });
        }
        Ok((address, number))
    }
}

/// The clob pair of a ticker, or a 400 as comlink's `CheckTickerOptionalQuerySchema`.
fn clob_pair_of(
    indexer: &Indexer,
    param: &str,
    ticker: Option<&str>,
) -> Result<Option<u32>, ApiError> {
    let Some(ticker) = ticker else {
        return Ok(None);
    };
    indexer
        .lock()
        .state
        .markets
        .values()
        .find(|m| m.ticker == ticker)
        .map(|m| Some(m.clob_pair_id))
        .ok_or_else(|| ApiError::BadRequest {
            param: param.into(),
            msg: format!("{param} must be a valid ticker"),
        })
}

const ORDER_TYPES: &[&str] = &[
    "LIMIT",
    "MARKET",
    "STOP_LIMIT",
    "STOP_MARKET",
    "TRAILING_STOP",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
];

async fn list_orders(
    State(indexer): State<Arc<Indexer>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(pairs);
    let (address, number) = params.subaccount()?;
    let statuses = match params.get("status") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                Status::parse(s.trim()).ok_or_else(|| ApiError::BadRequest {
                    param: "status".into(),
                    msg: format!("status must be one of OPEN,FILLED,CANCELED,BEST_EFFORT_CANCELED,UNTRIGGERED,BEST_EFFORT_OPENED: {s}"),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let filter = OrderFilter {
        limit: params.limit()?,
        clob_pair_id: clob_pair_of(&indexer, "ticker", params.get("ticker"))?,
        side: params.one_of("side", &["BUY", "SELL"])?,
        order_type: params.one_of("type", ORDER_TYPES)?,
        statuses,
        good_til_block_before_or_at: params.parse("goodTilBlockBeforeOrAt")?,
        good_til_block_after: params.parse("goodTilBlockAfter")?,
        good_til_block_time_before_or_at: params.time("goodTilBlockTimeBeforeOrAt")?,
        good_til_block_time_after: params.time("goodTilBlockTimeAfter")?,
        return_latest_orders: params.parse("returnLatestOrders")?,
    };
    let orders = indexer.lock().state.list_orders(&address, number, &filter);
    Ok(Json(orders).into_response())
}

async fn get_order(
    State(indexer): State<Arc<Indexer>>,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    if uuid::Uuid::parse_str(&order_id).is_err() {
        return Err(ApiError::BadRequest {
            param: "orderId".into(),
            msg: "Invalid value".into(),
        });
    }
    let order = indexer.lock().state.order(&order_id);
    order
        .map(|o| Json(o).into_response())
        .ok_or_else(|| ApiError::NotFound(format!("Unable to find order id {order_id}")))
}

async fn list_fills(
    State(indexer): State<Arc<Indexer>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(pairs);
    let (address, number) = params.subaccount()?;
    // comlink filters by market only when `market` and `marketType` are both given.
    let clob_pair_id = match (params.get("market"), params.get("marketType")) {
        (Some(market), Some("PERPETUAL")) => clob_pair_of(&indexer, "market", Some(market))?,
        (Some(market), Some(other)) => {
            return Err(ApiError::NotFound(format!(
                "{market} not found in markets of type {other}"
            )));
        }
        _ => None,
    };
    let filter = FillFilter {
        limit: params.limit()?,
        clob_pair_id,
        created_before_or_at_height: params.parse("createdBeforeOrAtHeight")?,
        created_before_or_at: params.time("createdBeforeOrAt")?,
    };
    let fills = indexer.lock().state.list_fills(&address, number, &filter);
    Ok(Json(json!({ "fills": fills })).into_response())
}

async fn get_address(
    State(indexer): State<Arc<Indexer>>,
    Path(address): Path<String>,
) -> Result<Response, ApiError> {
    let subaccounts = indexer.lock().state.subaccounts_of(&address);
    if subaccounts.is_empty() {
        return Err(ApiError::NotFound(format!(
            "No subaccounts found for address {address}"
        )));
    }
    Ok(Json(json!({ "subaccounts": subaccounts, "totalTradingRewards": "0" })).into_response())
}

async fn get_subaccount(
    State(indexer): State<Arc<Indexer>>,
    Path((address, number)): Path<(String, u32)>,
) -> Result<Response, ApiError> {
    let subaccount = indexer.lock().state.subaccount(&address, number);
    subaccount
        .map(|s| Json(json!({ "subaccount": s })).into_response())
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "No subaccount found with address {address} and subaccountNumber {number}"
            ))
        })
}

async fn height(State(indexer): State<Arc<Indexer>>) -> Response {
    let inner = indexer.lock();
    Json(json!({
        "height": inner.state.height.to_string(),
        "time": wire::iso(inner.state.time),
    }))
    .into_response()
}

/// The server's wall clock, as comlink answers.
async fn time() -> Response {
    let now = Utc::now();
    Json(json!({
        "iso": wire::iso(now),
        "epoch": now.timestamp_millis() as f64 / 1000.0,
    }))
    .into_response()
}

async fn perpetual_markets(
    State(indexer): State<Arc<Indexer>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(pairs);
    let limit = params.limit()?.unwrap_or(API_LIMIT);
    let ticker = params.get("ticker");
    let markets: serde_json::Map<String, serde_json::Value> = indexer
        .lock()
        .state
        .markets
        .values()
        .filter(|m| ticker.is_none_or(|t| t == m.ticker))
        .take(limit)
        .filter_map(|m| {
            let value = serde_json::to_value(PerpetualMarketResponse::of(m)).ok()?;
            Some((m.ticker.clone(), value))
        })
        .collect();
    Ok(Json(json!({ "markets": markets })).into_response())
}
