//! The indexer's data, built from the chain's events the way the real indexer builds it:
//!
//! - `live` is what vulcan keeps in Redis from the node's off-chain updates: the orders on the
//!   book, with the memclob's (optimistic) filled amount;
//! - `rows` is what ender writes to PostgreSQL from each block's on-chain events: stateful
//!   orders when placed, any order once it fills, with the statuses vulcan and ender set;
//! - `fills`, `subaccounts`, the latest block, and the canceled-orders cache ender reads when a
//!   fill arrives for an order cancelled meanwhile.
//!
//! Each event yields the `v4_subaccounts` updates the real services send for it (vulcan
//! `order-place-handler.ts`, `order-remove-handler.ts`; ender `order-fills/order-handler.ts`,
//! `stateful-order/*.ts`), in order. The REST views are in `query.rs`.

use std::collections::{BTreeMap, HashMap};

use bip32::secp256k1::sha2::{Digest, Sha256};
use chrono::{DateTime, Utc};
use dydx_proto::dydxprotocol::clob::{Order, OrderId, order};

use super::Market;
use super::ids;
use super::wire::{self, FillMessage, OrderMessage, SubaccountContents};
use crate::chain::events::{ChainEvent, RemovalReason, RemovalStatus};
use crate::types::order_flags;

/// An order status as the indexer's API names it (`APIOrderStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Open,
    Filled,
    Canceled,
    BestEffortCanceled,
    Untriggered,
    BestEffortOpened,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Filled => "FILLED",
            Self::Canceled => "CANCELED",
            Self::BestEffortCanceled => "BEST_EFFORT_CANCELED",
            Self::Untriggered => "UNTRIGGERED",
            Self::BestEffortOpened => "BEST_EFFORT_OPENED",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Self::Open,
            Self::Filled,
            Self::Canceled,
            Self::BestEffortCanceled,
            Self::Untriggered,
            Self::BestEffortOpened,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    fn of_removal(status: RemovalStatus) -> Self {
        match status {
            RemovalStatus::BestEffortCanceled => Self::BestEffortCanceled,
            RemovalStatus::Canceled => Self::Canceled,
        }
    }
}

/// An order on the book as vulcan keeps it (Redis).
#[derive(Clone, Debug)]
pub(crate) struct LiveOrder {
    pub order: Order,
    /// The memclob's filled amount (`totalOptimisticFilled`), in base quantums.
    pub optimistic_filled: u64,
}

/// An order row as ender and vulcan keep it (PostgreSQL).
#[derive(Clone, Debug)]
pub(crate) struct OrderRow {
    pub order: Order,
    /// Filled in committed blocks, in base quantums.
    pub total_filled: u64,
    pub status: Status,
    pub created_at_height: u32,
    pub updated_at: DateTime<Utc>,
    pub updated_at_height: u32,
}

/// A fill row.
#[derive(Clone, Debug)]
pub(crate) struct FillRow {
    pub id: String,
    pub order: Order,
    pub quantums: u64,
    pub event_id: [u8; 12],
    pub transaction_hash: String,
    pub created_at: DateTime<Utc>,
    pub created_at_height: u32,
}

/// One `v4_subaccounts` update for one subaccount.
#[derive(Clone, Debug)]
pub(crate) struct Update {
    pub address: String,
    pub number: u32,
    pub contents: SubaccountContents,
}

/// Everything the indexer knows.
#[derive(Debug)]
pub(crate) struct IndexerState {
    pub markets: BTreeMap<u32, Market>,
    pub height: u32,
    pub time: DateTime<Utc>,
    /// `(address, number)` → the height it was last updated at.
    pub subaccounts: BTreeMap<(String, u32), u32>,
    pub live: HashMap<String, LiveOrder>,
    pub rows: HashMap<String, OrderRow>,
    pub fills: Vec<FillRow>,
    /// `CanceledOrdersCache`: order id → how it was cancelled.
    canceled: HashMap<String, RemovalStatus>,
    /// Index of the next on-chain event in the current block.
    event_index: u32,
}

/// `(owner, number)` of an order id.
pub(crate) fn owner_of(id: &OrderId) -> (String, u32) {
    id.subaccount_id
        .as_ref()
        .map(|s| (s.owner.clone(), s.number))
        .unwrap_or_default()
}

fn order_id_of(order: &Order) -> OrderId {
    order.order_id.clone().unwrap_or_default()
}

impl IndexerState {
    pub(crate) fn new(
        markets: &[Market],
        height: u32,
        time: DateTime<Utc>,
        addresses: Vec<String>,
    ) -> Self {
        Self {
            markets: markets
                .iter()
                .map(|m| (m.clob_pair_id, m.clone()))
                .collect(),
            height,
            time,
            subaccounts: addresses.into_iter().map(|a| ((a, 0), height)).collect(),
            live: HashMap::new(),
            rows: HashMap::new(),
            fills: Vec::new(),
            canceled: HashMap::new(),
            event_index: 0,
        }
    }

    fn market(&self, id: &OrderId) -> Option<Market> {
        let market = self.markets.get(&id.clob_pair_id).cloned();
        if market.is_none() {
            // vulcan and ender refuse orders of an unknown clob pair.
            tracing::warn!(
                clob_pair_id = id.clob_pair_id,
                "indexer: unknown clob pair, order ignored"
            );
        }
        market
    }

    fn touch_subaccount(&mut self, id: &OrderId) {
        let height = self.height;
        self.subaccounts.entry(owner_of(id)).or_insert(height);
    }

    fn update(&self, id: &OrderId, orders: Vec<OrderMessage>, fills: Vec<FillMessage>) -> Update {
        let (address, number) = owner_of(id);
        Update {
            address,
            number,
            contents: SubaccountContents {
                orders: (!orders.is_empty()).then_some(orders),
                fills: (!fills.is_empty()).then_some(fills),
                block_height: Some(self.height.to_string()),
            },
        }
    }

    /// Applies one chain event; pushes the updates the real indexer would send for it.
    pub(crate) fn apply(&mut self, event: ChainEvent, out: &mut Vec<Update>) {
        match event {
            ChainEvent::Account { address } => {
                let height = self.height;
                self.subaccounts.entry((address, 0)).or_insert(height);
            }
            ChainEvent::OrderPlaced { order } => {
                self.place_live(order, Status::BestEffortOpened, out)
            }
            ChainEvent::OrderRemoved {
                order_id,
                reason,
                status,
            } => self.remove_live(&order_id, reason, status, out),
            ChainEvent::OrderMatched {
                order_id,
                total_filled,
            } => {
                if let Some(live) = self.live.get_mut(&ids::order_uuid(&order_id)) {
                    live.optimistic_filled = total_filled;
                }
            }
            ChainEvent::Block { height, time } => self.begin_block(height, time),
            ChainEvent::Fill {
                order,
                fill_quantums,
                total_filled,
            } => self.fill(order, fill_quantums, total_filled, out),
            ChainEvent::StatefulPlaced { order } => self.stateful_placed(order, out),
            ChainEvent::StatefulRemoved { order_id, reason } => {
                self.stateful_removed(&order_id, reason, out);
            }
        }
    }

    /// ender's block bookkeeping, and roundtable's `cancel-stale-orders`: short-term rows still
    /// `OPEN` whose good-til-block is below the latest height are `CANCELED`.
    fn begin_block(&mut self, height: u32, time: DateTime<Utc>) {
        self.height = height;
        self.time = time;
        self.event_index = 0;
        for row in self.rows.values_mut() {
            let stale = matches!(
                row.order.good_til_oneof,
                Some(order::GoodTilOneof::GoodTilBlock(gtb)) if gtb < height
            );
            if row.status == Status::Open
                && stale
                && order_id_of(&row.order).order_flags == order_flags::SHORT_TERM
            {
                row.status = Status::Canceled;
                row.updated_at = time;
                row.updated_at_height = height;
            }
        }
    }

    /// vulcan `OrderPlaceHandler`: the order goes to Redis, leaves the canceled cache, and the
    /// subaccount hears of it (`BEST_EFFORT_OPENED` from the node, `OPEN` from ender).
    fn place_live(&mut self, order: Order, status: Status, out: &mut Vec<Update>) {
        let id = order_id_of(&order);
        let Some(market) = self.market(&id) else {
            return;
        };
        self.touch_subaccount(&id);
        let uuid = ids::order_uuid(&id);
        self.canceled.remove(&uuid);
        let message = self.live_message(&order, self.rows.get(&uuid), status, &market);
        self.live.insert(
            uuid,
            LiveOrder {
                order,
                optimistic_filled: 0,
            },
        );
        out.push(self.update(&id, vec![message], Vec::new()));
    }

    /// vulcan `OrderRemoveHandler.handleOrderRemoval`.
    fn remove_live(
        &mut self,
        id: &OrderId,
        reason: RemovalReason,
        status: RemovalStatus,
        out: &mut Vec<Update>,
    ) {
        let Some(market) = self.market(id) else {
            return;
        };
        let uuid = ids::order_uuid(id);
        let Some(live) = self.live.remove(&uuid) else {
            // `SEND_SUBACCOUNT_WEBSOCKET_MESSAGE_FOR_CANCELS_MISSING_ORDERS` (on by default).
            if reason != RemovalReason::FullyFilled {
                let message =
                    self.missing_message(id, self.rows.get(&uuid), status, reason, &market);
                out.push(self.update(id, vec![message], Vec::new()));
            }
            return;
        };
        // The committed fill decides whether the row still changes.
        let remaining = self.rows.get(&uuid).map_or(live.order.quantums, |row| {
            live.order.quantums.saturating_sub(row.total_filled)
        });
        if remaining > 0
            && let Some(row) = self.rows.get_mut(&uuid)
        {
            row.status = Status::of_removal(status);
        }
        let silent = (remaining == 0
            && status == RemovalStatus::BestEffortCanceled
            && reason == RemovalReason::UserCanceled)
            || reason == RemovalReason::FullyFilled;
        if !silent {
            let mut message = self.live_message(
                &live.order,
                self.rows.get(&uuid),
                Status::of_removal(status),
                &market,
            );
            message.total_optimistic_filled = Some(market.size(live.optimistic_filled));
            message.removal_reason = Some(reason.name());
            out.push(self.update(id, vec![message], Vec::new()));
        }
        self.canceled.insert(uuid, status);
    }

    /// ender `OrderHandler` (one side of an `OrderFillEvent`, the resting order as maker):
    /// the order row is upserted with its total and status (`dydx_get_order_status.sql`), a
    /// fill row is written, and the subaccount gets both.
    fn fill(&mut self, order: Order, fill_quantums: u64, total_filled: u64, out: &mut Vec<Update>) {
        let id = order_id_of(&order);
        let Some(market) = self.market(&id) else {
            return;
        };
        self.touch_subaccount(&id);
        let uuid = ids::order_uuid(&id);
        let status = self.fill_status(&order, total_filled, &uuid);
        let (height, time) = (self.height, self.time);
        let row = self.rows.entry(uuid.clone()).or_insert_with(|| OrderRow {
            order: order.clone(),
            total_filled: 0,
            status,
            created_at_height: height,
            updated_at: time,
            updated_at_height: height,
        });
        row.order = order.clone();
        row.total_filled = total_filled;
        row.status = status;
        row.updated_at = time;
        row.updated_at_height = height;
        let row = row.clone();

        let event_id = ids::event_id(height, 0, self.event_index);
        self.event_index += 1;
        let hash = Sha256::digest(format!("ordermeta-dydx-sim/fill/{}", ids::hex(&event_id)));
        let fill = FillRow {
            id: ids::fill_uuid(&event_id, "MAKER"),
            order,
            quantums: fill_quantums,
            event_id,
            transaction_hash: ids::hex(&hash).to_ascii_uppercase(),
            created_at: time,
            created_at_height: height,
        };
        if let Some(updated) = self.subaccounts.get_mut(&owner_of(&id)) {
            *updated = height;
        }
        let order_message = row_message(&row, row.status, &market);
        let fill_message = fill_message(&fill, &market);
        self.fills.push(fill);
        out.push(self.update(&id, vec![order_message], vec![fill_message]));
    }

    fn fill_status(&self, order: &Order, total_filled: u64, uuid: &str) -> Status {
        let flags = order_id_of(order).order_flags;
        if total_filled >= order.quantums {
            return Status::Filled;
        }
        if flags == order_flags::LONG_TERM {
            return Status::Open;
        }
        match wire::time_in_force(order).0 {
            "FOK" => return Status::Filled,
            "IOC" => return Status::Canceled,
            _ => {}
        }
        match self.canceled.get(uuid) {
            Some(RemovalStatus::BestEffortCanceled) => Status::BestEffortCanceled,
            Some(RemovalStatus::Canceled) => Status::Canceled,
            None => Status::Open,
        }
    }

    /// ender `StatefulOrderPlacementHandler` / `ConditionalOrderPlacementHandler`.
    fn stateful_placed(&mut self, order: Order, out: &mut Vec<Update>) {
        let id = order_id_of(&order);
        let Some(market) = self.market(&id) else {
            return;
        };
        self.touch_subaccount(&id);
        let conditional = id.order_flags == order_flags::CONDITIONAL;
        let status = if conditional {
            Status::Untriggered
        } else {
            Status::Open
        };
        let row = OrderRow {
            order: order.clone(),
            total_filled: 0,
            status,
            created_at_height: self.height,
            updated_at: self.time,
            updated_at_height: self.height,
        };
        self.rows.insert(ids::order_uuid(&id), row.clone());
        if conditional {
            // Untriggered: not on the book; ender sends the row itself.
            out.push(self.update(&id, vec![row_message(&row, status, &market)], Vec::new()));
        } else {
            // ender hands vulcan an `OrderPlace` with `ORDER_PLACEMENT_STATUS_OPENED`.
            self.place_live(order, Status::Open, out);
        }
    }

    /// ender `StatefulOrderRemovalHandler` (the row is `CANCELED`), then vulcan's handling of
    /// the `OrderRemove` it sends: a user cancel is reported from the row
    /// (`handleStatefulOrderCancelation`), other removals like any removal.
    fn stateful_removed(&mut self, id: &OrderId, reason: RemovalReason, out: &mut Vec<Update>) {
        let Some(market) = self.market(id) else {
            return;
        };
        let uuid = ids::order_uuid(id);
        let (height, time) = (self.height, self.time);
        if let Some(row) = self.rows.get_mut(&uuid) {
            row.status = Status::Canceled;
            row.updated_at = time;
            row.updated_at_height = height;
        }
        if reason == RemovalReason::UserCanceled {
            self.live.remove(&uuid);
            if let Some(row) = self.rows.get(&uuid) {
                let mut message = row_message(row, Status::Canceled, &market);
                message.removal_reason = Some(reason.name());
                out.push(self.update(id, vec![message], Vec::new()));
            }
            return;
        }
        self.remove_live(id, reason, RemovalStatus::Canceled, out);
    }

    /// An order from Redis, with the row's heights when there is one (vulcan
    /// `generateSubaccountMessageContents`, `createSubaccountWebsocketMessageFromRemoveOrderResult`).
    fn live_message(
        &self,
        order: &Order,
        row: Option<&OrderRow>,
        status: Status,
        market: &Market,
    ) -> OrderMessage {
        let id = order_id_of(order);
        let (owner, number) = owner_of(&id);
        let (tif, post_only) = wire::time_in_force(order);
        let (gtb, gtbt) = wire::good_til(order);
        OrderMessage {
            id: ids::order_uuid(&id),
            subaccount_id: ids::subaccount_uuid(&owner, number),
            client_id: id.client_id.to_string(),
            clob_pair_id: Some(id.clob_pair_id.to_string()),
            side: Some(wire::side(order)),
            size: Some(market.size(order.quantums)),
            price: Some(market.price(order.subticks)),
            order_type: Some(wire::order_type(order)),
            status: status.as_str(),
            time_in_force: Some(tif),
            post_only: Some(post_only),
            reduce_only: Some(order.reduce_only),
            order_flags: id.order_flags.to_string(),
            good_til_block: gtb,
            good_til_block_time: gtbt,
            ticker: Some(market.ticker.clone()),
            created_at_height: row.map(|r| r.created_at_height.to_string()),
            updated_at: row.map(|r| wire::iso(r.updated_at)),
            updated_at_height: row.map(|r| r.updated_at_height.to_string()),
            client_metadata: Some(order.client_metadata.to_string()),
            trigger_price: wire::trigger_price(order, market),
            ..OrderMessage::default()
        }
    }

    /// vulcan `createSubaccountWebsocketMessageFromOrderRemoveMessage`: the order is no longer
    /// in Redis; what the row knows, if any.
    fn missing_message(
        &self,
        id: &OrderId,
        row: Option<&OrderRow>,
        status: RemovalStatus,
        reason: RemovalReason,
        market: &Market,
    ) -> OrderMessage {
        let (owner, number) = owner_of(id);
        let mut message = OrderMessage {
            id: ids::order_uuid(id),
            subaccount_id: ids::subaccount_uuid(&owner, number),
            client_id: id.client_id.to_string(),
            clob_pair_id: Some(id.clob_pair_id.to_string()),
            status: Status::of_removal(status).as_str(),
            order_flags: id.order_flags.to_string(),
            ticker: Some(market.ticker.clone()),
            removal_reason: Some(reason.name()),
            ..OrderMessage::default()
        };
        if let Some(row) = row {
            let full = row_message(row, Status::of_removal(status), market);
            message.created_at_height = full.created_at_height;
            message.updated_at = full.updated_at;
            message.updated_at_height = full.updated_at_height;
            message.price = full.price;
            message.size = full.size;
            message.client_metadata = full.client_metadata;
            // `...(reduceOnly && { reduceOnly })`: only when true.
            message.reduce_only = row.order.reduce_only.then_some(true);
            message.side = full.side;
            message.time_in_force = full.time_in_force;
            message.total_filled = full.total_filled;
            message.good_til_block = full.good_til_block;
            message.good_til_block_time = full.good_til_block_time;
            message.trigger_price = full.trigger_price;
            message.order_type = full.order_type;
        }
        message
    }
}

/// A row as ender sends it (`generateOrderSubaccountMessage`), with `status`.
pub(crate) fn row_message(row: &OrderRow, status: Status, market: &Market) -> OrderMessage {
    let id = order_id_of(&row.order);
    let (owner, number) = owner_of(&id);
    let (tif, post_only) = wire::time_in_force(&row.order);
    let (gtb, gtbt) = wire::good_til(&row.order);
    OrderMessage {
        id: ids::order_uuid(&id),
        subaccount_id: ids::subaccount_uuid(&owner, number),
        client_id: id.client_id.to_string(),
        clob_pair_id: Some(id.clob_pair_id.to_string()),
        side: Some(wire::side(&row.order)),
        size: Some(market.size(row.order.quantums)),
        total_filled: Some(market.size(row.total_filled)),
        total_optimistic_filled: None,
        price: Some(market.price(row.order.subticks)),
        order_type: Some(wire::order_type(&row.order)),
        status: status.as_str(),
        time_in_force: Some(tif),
        post_only: Some(post_only),
        reduce_only: Some(row.order.reduce_only),
        order_flags: id.order_flags.to_string(),
        good_til_block: gtb,
        good_til_block_time: gtbt,
        ticker: Some(market.ticker.clone()),
        removal_reason: None,
        created_at_height: Some(row.created_at_height.to_string()),
        updated_at: Some(wire::iso(row.updated_at)),
        updated_at_height: Some(row.updated_at_height.to_string()),
        client_metadata: Some(row.order.client_metadata.to_string()),
        trigger_price: wire::trigger_price(&row.order, market),
    }
}

/// ender `generateFillSubaccountMessage`.
pub(crate) fn fill_message(fill: &FillRow, market: &Market) -> FillMessage {
    let id = order_id_of(&fill.order);
    let (owner, number) = owner_of(&id);
    FillMessage {
        id: fill.id.clone(),
        subaccount_id: ids::subaccount_uuid(&owner, number),
        side: wire::side(&fill.order),
        liquidity: "MAKER",
        fill_type: "LIMIT",
        clob_pair_id: id.clob_pair_id.to_string(),
        size: market.size(fill.quantums),
        price: market.price(fill.order.subticks),
        quote_amount: market.quote_amount(fill.order.subticks, fill.quantums),
        event_id: ids::hex(&fill.event_id),
        transaction_hash: fill.transaction_hash.clone(),
        created_at: wire::iso(fill.created_at),
        created_at_height: fill.created_at_height.to_string(),
        ticker: market.ticker.clone(),
        order_id: ids::order_uuid(&id),
        client_metadata: fill.order.client_metadata.to_string(),
    }
}
