//! The admin API of a running simulator (`/sim/...` on its HTTP server, next to the indexer),
//! what the binary's subcommands call from a second terminal:
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /sim/status` | [`StatusView`] |
//! | `GET /sim/orders[?all=true]` | [`OrderView`]s: live ones (pending, open, cancel pending), or all |
//! | `GET /sim/accounts` | [`AccountView`]s |
//! | `GET /sim/txs[?limit=N]` | [`TxView`]s, newest last (default the last 20) |
//! | `POST /sim/fill` with [`FillRequest`] | the filled [`OrderView`]; 404 / 409 / 400 with [`AdminError`] |
//! | `POST /sim/blocks` with [`BlocksRequest`] | the new [`StatusView`] |
//!
//! No authentication: serve it on loopback only.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dydx_proto::dydxprotocol::clob::{OrderId, order};
use dydx_proto::dydxprotocol::subaccounts::SubaccountId;
use serde::{Deserialize, Serialize};

use crate::chain::SharedChain;
use crate::error::SimError;
use crate::indexer::ids;
use crate::types::{Fill, GoodTil, MsgKind, OrderState, OrderStatus};

/// The chain's height and time, and where it is served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// Chain id.
    pub chain_id: String,
    /// Latest block height.
    pub height: u32,
    /// Latest block time (RFC 3339).
    pub block_time: String,
}

/// One order as the simulator holds it: its full `OrderId`, good-til and status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// Subaccount owner (`OrderId.subaccount_id.owner`).
    pub owner: String,
    /// Subaccount number.
    pub subaccount: u32,
    /// `OrderId.client_id`.
    pub client_id: u32,
    /// `OrderId.clob_pair_id`.
    pub clob_pair: u32,
    /// `OrderId.order_flags` (0 short-term, 32 conditional, 64 long-term).
    pub flags: u32,
    /// `block:<height>` or `time:<unix seconds>`.
    pub good_til: String,
    /// `place_pending`, `open`, `cancel_pending`, `canceled`, `filled`, `expired`, `removed`.
    pub status: String,
    /// `buy` or `sell`.
    pub side: String,
    /// Size in base quantums.
    pub quantums: u64,
    /// Filled base quantums.
    pub filled_quantums: u64,
    /// Price in subticks.
    pub subticks: u64,
    /// The order's id at the indexer.
    pub indexer_id: String,
    /// Latest block height when placed.
    pub placed_at_height: u32,
}

impl OrderView {
    /// `owner/subaccount/client_id/clob_pair/flags`: what `fill` accepts (as does the indexer id).
    pub fn selector(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.owner, self.subaccount, self.client_id, self.clob_pair, self.flags
        )
    }
}

/// One account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// Bech32 address.
    pub address: String,
    /// Account number.
    pub account_number: u64,
    /// Committed sequence.
    pub sequence: u64,
    /// CheckTx sequence (the next plain sequence a stateful tx must carry).
    pub check_tx_sequence: u64,
    /// Whether the public key is known.
    pub pubkey_known: bool,
}

/// One received message and its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxView {
    /// Position in the message log.
    pub index: u64,
    /// Tx hash (upper-case hex).
    pub hash: String,
    /// Latest block height when received.
    pub height: u32,
    /// `place`, `cancel`, `batch_cancel`, `other` or `undecodable`.
    pub kind: String,
    /// The order's selector, for a place or cancel.
    pub order: Option<String>,
    /// CheckTx code (0 = accepted).
    pub code: u32,
    /// CheckTx codespace.
    pub codespace: String,
    /// Height of the block that executed it (stateful txs only).
    pub included_height: Option<u32>,
    /// Execution code in that block.
    pub delivered_code: Option<u32>,
}

/// Body of `POST /sim/fill`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillRequest {
    /// `owner/subaccount/client_id/clob_pair/flags`, or the order's indexer id.
    pub order: String,
    /// Base quantums to fill; `None` fills the rest.
    pub quantums: Option<u64>,
}

/// Body of `POST /sim/blocks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksRequest {
    /// How many blocks to produce.
    pub count: u32,
}

/// An admin request that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminError {
    /// Why.
    pub error: String,
}

/// The admin routes.
pub(crate) fn router(chain: SharedChain) -> Router {
    Router::new()
        .route("/sim/status", get(status))
        .route("/sim/orders", get(orders))
        .route("/sim/accounts", get(accounts))
        .route("/sim/txs", get(txs))
        .route("/sim/fill", post(fill))
        .route("/sim/blocks", post(blocks))
        .with_state(Arc::new(chain))
}

fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::PlacePending => "place_pending",
        OrderStatus::Open => "open",
        OrderStatus::CancelPending => "cancel_pending",
        OrderStatus::Canceled => "canceled",
        OrderStatus::Filled => "filled",
        OrderStatus::Expired => "expired",
        OrderStatus::Removed => "removed",
    }
}

fn view(state: &OrderState) -> OrderView {
    let id = &state.order_id;
    let (owner, subaccount) = id
        .subaccount_id
        .as_ref()
        .map(|s| (s.owner.clone(), s.number))
        .unwrap_or_default();
    OrderView {
        owner,
        subaccount,
        client_id: id.client_id,
        clob_pair: id.clob_pair_id,
        flags: id.order_flags,
        good_til: match state.good_til {
            GoodTil::Block(b) => format!("block:{b}"),
            GoodTil::BlockTime(t) => format!("time:{t}"),
        },
        status: status_name(state.status).into(),
        side: if state.order.side == order::Side::Sell as i32 {
            "sell".into()
        } else {
            "buy".into()
        },
        quantums: state.quantums,
        filled_quantums: state.filled_quantums,
        subticks: state.order.subticks,
        indexer_id: ids::order_uuid(id),
        placed_at_height: state.placed_at_height,
    }
}

fn status_view(chain: &SharedChain) -> StatusView {
    let chain = chain.lock();
    StatusView {
        chain_id: chain.chain_id.clone(),
        height: chain.height,
        block_time: chain.block_time.to_rfc3339(),
    }
}

async fn status(State(chain): State<Arc<SharedChain>>) -> Json<StatusView> {
    Json(status_view(&chain))
}

#[derive(Debug, Deserialize)]
struct OrdersQuery {
    all: Option<bool>,
}

async fn orders(
    State(chain): State<Arc<SharedChain>>,
    Query(query): Query<OrdersQuery>,
) -> Json<Vec<OrderView>> {
    let all = query.all.unwrap_or(false);
    let orders = chain.lock().orders();
    Json(
        orders
            .iter()
            .filter(|o| all || o.status.is_live() || o.status == OrderStatus::PlacePending)
            .map(view)
            .collect(),
    )
}

async fn accounts(State(chain): State<Arc<SharedChain>>) -> Json<Vec<AccountView>> {
    let chain = chain.lock();
    let mut accounts: Vec<_> = chain
        .addresses()
        .iter()
        .filter_map(|a| chain.account(a))
        .collect();
    accounts.sort_by_key(|a| a.account_number);
    Json(
        accounts
            .into_iter()
            .map(|a| AccountView {
                address: a.address,
                account_number: a.account_number,
                sequence: a.sequence,
                check_tx_sequence: a.check_tx_sequence,
                pubkey_known: a.pubkey.is_some(),
            })
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
struct TxsQuery {
    limit: Option<usize>,
}

fn selector_of(id: &OrderId) -> String {
    let (owner, number) = id
        .subaccount_id
        .as_ref()
        .map(|s| (s.owner.as_str(), s.number))
        .unwrap_or_default();
    format!(
        "{owner}/{number}/{}/{}/{}",
        id.client_id, id.clob_pair_id, id.order_flags
    )
}

async fn txs(
    State(chain): State<Arc<SharedChain>>,
    Query(query): Query<TxsQuery>,
) -> Json<Vec<TxView>> {
    let messages = chain.lock().messages();
    let skip = messages.len().saturating_sub(query.limit.unwrap_or(20));
    Json(
        messages
            .iter()
            .skip(skip)
            .map(|m| TxView {
                index: m.index,
                hash: m.tx_hash.clone(),
                height: m.height,
                kind: match &m.kind {
                    MsgKind::PlaceOrder { .. } => "place",
                    MsgKind::CancelOrder { .. } => "cancel",
                    MsgKind::BatchCancel { .. } => "batch_cancel",
                    MsgKind::Other { .. } => "other",
                    MsgKind::Undecodable => "undecodable",
                }
                .into(),
                order: m.kind.order_id().map(selector_of),
                code: m.code(),
                codespace: m.codespace().to_owned(),
                included_height: m.delivered.as_ref().map(|d| d.height),
                delivered_code: m.delivered.as_ref().map(|d| d.code()),
            })
            .collect(),
    )
}

/// An order id from `owner/subaccount/client_id/clob_pair/flags`.
fn parse_selector(selector: &str) -> Option<OrderId> {
    let parts: Vec<&str> = selector.split('/').collect();
    let [owner, number, client_id, clob_pair_id, order_flags] = parts.as_slice() else {
        return None;
    };
    Some(OrderId {
        subaccount_id: Some(SubaccountId {
            owner: (*owner).to_owned(),
            number: number.parse().ok()?,
        }),
        client_id: client_id.parse().ok()?,
        order_flags: order_flags.parse().ok()?,
        clob_pair_id: clob_pair_id.parse().ok()?,
    })
}

fn admin_error(status: StatusCode, error: impl ToString) -> Response {
    (
        status,
        Json(AdminError {
            error: error.to_string(),
        }),
    )
        .into_response()
}

async fn fill(State(chain): State<Arc<SharedChain>>, Json(request): Json<FillRequest>) -> Response {
    let mut chain = chain.lock();
    let id = match parse_selector(&request.order) {
        Some(id) => id,
        None => {
            let by_indexer_id = chain
                .orders()
                .into_iter()
                .find(|o| ids::order_uuid(&o.order_id) == request.order);
            match by_indexer_id {
                Some(order) => order.order_id,
                None => {
                    return admin_error(
                        StatusCode::NOT_FOUND,
                        format!("no order {}", request.order),
                    );
                }
            }
        }
    };
    let amount = request.quantums.map_or(Fill::Full, Fill::Quantums);
    match chain.fill(&id, amount) {
        Ok(state) => Json(view(&state)).into_response(),
        Err(SimError::OrderNotFound) => {
            admin_error(StatusCode::NOT_FOUND, format!("no order {}", request.order))
        }
        Err(e @ SimError::OrderNotOpen(_)) => admin_error(StatusCode::CONFLICT, e),
        Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn blocks(
    State(chain): State<Arc<SharedChain>>,
    Json(request): Json<BlocksRequest>,
) -> Json<StatusView> {
    {
        let mut locked = chain.lock();
        for _ in 0..request.count {
            locked.produce_block();
        }
    }
    Json(status_view(&chain))
}
