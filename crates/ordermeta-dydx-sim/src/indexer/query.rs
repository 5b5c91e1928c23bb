//! The REST views of the indexer's data, as comlink computes them
//! (`controllers/api/v4/orders-controller.ts`, `fills-controller.ts`,
//! `addresses-controller.ts`; `request-helpers/request-transformer.ts`): an order is merged
//! from its row (PostgreSQL, the source of truth for the status) and its book entry (Redis,
//! which overrides price, size, good-til and flags); an order only on the book is
//! `BEST_EFFORT_OPENED`.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use dydx_proto::dydxprotocol::clob::{Order, order};

use super::Market;
use super::ids;
use super::state::{IndexerState, LiveOrder, OrderRow, Status, owner_of};
use super::wire::{self, FillResponse, OrderResponse, SubaccountResponse};

/// `API_LIMIT_V4` of comlink.
pub(crate) const API_LIMIT: usize = 1000;

/// The filters of `GET /v4/orders` (`ListOrdersOpts` of the client).
#[derive(Clone, Debug, Default)]
pub(crate) struct OrderFilter {
    pub limit: Option<usize>,
    pub clob_pair_id: Option<u32>,
    pub side: Option<String>,
    pub order_type: Option<String>,
    pub statuses: Vec<Status>,
    pub good_til_block_before_or_at: Option<u32>,
    pub good_til_block_after: Option<u32>,
    pub good_til_block_time_before_or_at: Option<DateTime<Utc>>,
    pub good_til_block_time_after: Option<DateTime<Utc>>,
    /// `None` and `Some(true)` sort by good-til descending, `Some(false)` ascending.
    pub return_latest_orders: Option<bool>,
}

/// The filters of `GET /v4/fills`.
#[derive(Clone, Debug, Default)]
pub(crate) struct FillFilter {
    pub limit: Option<usize>,
    pub clob_pair_id: Option<u32>,
    pub created_before_or_at_height: Option<u32>,
    pub created_before_or_at: Option<DateTime<Utc>>,
}

fn good_til_block(order: &Order) -> Option<u32> {
    match order.good_til_oneof {
        Some(order::GoodTilOneof::GoodTilBlock(b)) => Some(b),
        _ => None,
    }
}

fn good_til_block_time(order: &Order) -> Option<i64> {
    match order.good_til_oneof {
        Some(order::GoodTilOneof::GoodTilBlockTime(t)) => Some(i64::from(t)),
        _ => None,
    }
}

impl OrderFilter {
    /// The filters both stores apply (clob pair, side, good-til bounds).
    fn matches_common(&self, order: &Order) -> bool {
        let id = order.order_id.clone().unwrap_or_default();
        if self.clob_pair_id.is_some_and(|c| c != id.clob_pair_id) {
            return false;
        }
        if self.side.as_deref().is_some_and(|s| s != wire::side(order)) {
            return false;
        }
        // An order without the bounded kind of good-til is out when that bound is given.
        let block_ok = match good_til_block(order) {
            Some(gtb) => {
                self.good_til_block_before_or_at.is_none_or(|b| gtb <= b)
                    && self.good_til_block_after.is_none_or(|a| gtb > a)
            }
            None => {
                self.good_til_block_before_or_at.is_none() && self.good_til_block_after.is_none()
            }
        };
        let time_ok = match good_til_block_time(order) {
            Some(gtbt) => {
                self.good_til_block_time_before_or_at
                    .is_none_or(|b| gtbt <= b.timestamp())
                    && self
                        .good_til_block_time_after
                        .is_none_or(|a| gtbt > a.timestamp())
            }
            None => {
                self.good_til_block_time_before_or_at.is_none()
                    && self.good_til_block_time_after.is_none()
            }
        };
        block_ok && time_ok
    }

    fn matches_row(&self, row: &OrderRow) -> bool {
        self.matches_common(&row.order)
            && self
                .order_type
                .as_deref()
                .is_none_or(|t| t == wire::order_type(&row.order))
            && (self.statuses.is_empty() || self.statuses.contains(&row.status))
    }

    fn matches_live(&self, live: &LiveOrder) -> bool {
        // The Redis side holds LIMIT orders only.
        self.order_type.as_deref().is_none_or(|t| t == "LIMIT") && self.matches_common(&live.order)
    }
}

/// `compareOrderResponses`: good-til-block orders before good-til-block-time ones, each by
/// value.
fn compare(a: &OrderResponse, b: &OrderResponse) -> Ordering {
    let key = |o: &OrderResponse| {
        (
            o.good_til_block.is_none(),
            o.good_til_block
                .as_deref()
                .and_then(|s| s.parse::<u64>().ok()),
            o.good_til_block_time.clone(),
        )
    };
    key(a).cmp(&key(b))
}

impl IndexerState {
    fn market_of(&self, order: &Order) -> Option<&Market> {
        let id = order.order_id.as_ref()?;
        self.markets.get(&id.clob_pair_id)
    }

    /// `postgresAndRedisOrderToResponseObject`.
    fn response(&self, row: Option<&OrderRow>, live: Option<&LiveOrder>) -> Option<OrderResponse> {
        let base = row.map(|r| &r.order).or(live.map(|l| &l.order))?;
        let market = self.market_of(base)?;
        let id = base.order_id.clone().unwrap_or_default();
        let (owner, number) = owner_of(&id);
        // The book's copy wins for these fields.
        let shown = live.map_or(base, |l| &l.order);
        let (tif, post_only) = wire::time_in_force(shown);
        let (gtb, gtbt) = wire::good_til(shown);
        let row_order = row.map_or(shown, |r| &r.order);
        Some(OrderResponse {
            id: ids::order_uuid(&id),
            subaccount_id: ids::subaccount_uuid(&owner, number),
            client_id: id.client_id.to_string(),
            clob_pair_id: id.clob_pair_id.to_string(),
            side: wire::side(row_order),
            size: market.size(shown.quantums),
            total_filled: market.size(row.map_or(0, |r| r.total_filled)),
            price: market.price(shown.subticks),
            order_type: row.map_or("LIMIT", |r| wire::order_type(&r.order)),
            status: row.map_or(Status::BestEffortOpened, |r| r.status).as_str(),
            time_in_force: tif,
            post_only,
            reduce_only: shown.reduce_only,
            order_flags: id.order_flags.to_string(),
            good_til_block: gtb,
            good_til_block_time: gtbt,
            created_at_height: row.map(|r| r.created_at_height.to_string()),
            client_metadata: row_order.client_metadata.to_string(),
            trigger_price: row.and_then(|r| wire::trigger_price(&r.order, market)),
            ticker: market.ticker.clone(),
            updated_at: row.map(|r| wire::iso(r.updated_at)),
            updated_at_height: row.map(|r| r.updated_at_height.to_string()),
            subaccount_number: number,
        })
    }

    /// `GET /v4/orders`: a subaccount's orders, merged, filtered, sorted and limited.
    pub(crate) fn list_orders(
        &self,
        address: &str,
        number: u32,
        filter: &OrderFilter,
    ) -> Vec<OrderResponse> {
        let owned = |order: &Order| {
            order
                .order_id
                .as_ref()
                .is_some_and(|id| owner_of(id) == (address.to_owned(), number))
        };
        let mut ids: Vec<&String> = self
            .rows
            .iter()
            .filter(|(_, r)| owned(&r.order) && filter.matches_row(r))
            .map(|(id, _)| id)
            .chain(
                self.live
                    .iter()
                    .filter(|(_, l)| owned(&l.order) && filter.matches_live(l))
                    .map(|(id, _)| id),
            )
            .collect();
        ids.sort();
        ids.dedup();
        let mut orders: Vec<OrderResponse> = ids
            .into_iter()
            .filter_map(|id| self.response(self.rows.get(id), self.live.get(id)))
            .filter(|o| {
                filter.statuses.is_empty() || filter.statuses.iter().any(|s| s.as_str() == o.status)
            })
            .collect();
        if filter.return_latest_orders == Some(false) {
            orders.sort_by(compare);
        } else {
            orders.sort_by(|a, b| compare(b, a));
        }
        orders.truncate(filter.limit.unwrap_or(API_LIMIT));
        orders
    }

    /// `GET /v4/orders/:orderId`.
    pub(crate) fn order(&self, uuid: &str) -> Option<OrderResponse> {
        self.response(self.rows.get(uuid), self.live.get(uuid))
    }

    /// The `orders` of the `subscribed` message (socks `getInitialResponseForSubaccountSubscription`):
    /// open, untriggered and best-effort-opened orders, then those best-effort-cancelled whose
    /// good-til-block is within the last 20 blocks.
    pub(crate) fn snapshot_orders(&self, address: &str, number: u32) -> Vec<OrderResponse> {
        let open = OrderFilter {
            statuses: vec![Status::Open, Status::Untriggered, Status::BestEffortOpened],
            ..OrderFilter::default()
        };
        let recently_canceled = OrderFilter {
            statuses: vec![Status::BestEffortCanceled],
            good_til_block_after: Some(self.height.saturating_sub(20).max(1)),
            ..OrderFilter::default()
        };
        let mut orders = self.list_orders(address, number, &open);
        orders.extend(self.list_orders(address, number, &recently_canceled));
        orders
    }

    /// `GET /v4/fills`: newest first.
    pub(crate) fn list_fills(
        &self,
        address: &str,
        number: u32,
        filter: &FillFilter,
    ) -> Vec<FillResponse> {
        self.fills
            .iter()
            .rev()
            .filter(|f| {
                let id = f.order.order_id.clone().unwrap_or_default();
                owner_of(&id) == (address.to_owned(), number)
                    && filter.clob_pair_id.is_none_or(|c| c == id.clob_pair_id)
                    && filter
                        .created_before_or_at_height
                        .is_none_or(|h| f.created_at_height <= h)
                    && filter
                        .created_before_or_at
                        .is_none_or(|t| f.created_at <= t)
            })
            .take(filter.limit.unwrap_or(API_LIMIT))
            .filter_map(|f| {
                let market = self.market_of(&f.order)?;
                Some(FillResponse {
                    id: f.id.clone(),
                    side: wire::side(&f.order),
                    liquidity: "MAKER",
                    fill_type: "LIMIT",
                    market: market.ticker.clone(),
                    market_type: "PERPETUAL",
                    price: market.price(f.order.subticks),
                    size: market.size(f.quantums),
                    fee: "0".into(),
                    affiliate_rev_share: "0".into(),
                    created_at: wire::iso(f.created_at),
                    created_at_height: f.created_at_height.to_string(),
                    order_id: f
                        .order
                        .order_id
                        .as_ref()
                        .map(ids::order_uuid)
                        .unwrap_or_default(),
                    client_metadata: f.order.client_metadata.to_string(),
                    subaccount_number: number,
                })
            })
            .collect()
    }

    /// `GET /v4/addresses/:address/subaccountNumber/:number`.
    pub(crate) fn subaccount(&self, address: &str, number: u32) -> Option<SubaccountResponse> {
        let updated = self.subaccounts.get(&(address.to_owned(), number))?;
        Some(SubaccountResponse {
            address: address.to_owned(),
            subaccount_number: number,
            equity: "0".into(),
            free_collateral: "0".into(),
            open_perpetual_positions: serde_json::Map::new(),
            asset_positions: serde_json::Map::new(),
            margin_enabled: true,
            updated_at_height: updated.to_string(),
            latest_processed_block_height: self.height.to_string(),
        })
    }

    /// `GET /v4/addresses/:address`: every known subaccount of the address.
    pub(crate) fn subaccounts_of(&self, address: &str) -> Vec<SubaccountResponse> {
        self.subaccounts
            .keys()
            .filter(|(a, _)| a == address)
            .filter_map(|(a, n)| self.subaccount(a, *n))
            .collect()
    }
}
