//! [`DydxIndexer`]: [`IndexerApi`] over the unmodified `dydx` crate's `IndexerClient` — its
//! REST calls here, its websocket feed in `ws.rs` — with a deadline on every call, and the
//! conversions of the indexer's REST types into ordermeta's.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use dydx::indexer::{
    ApiOrderStatus, GetFillsOpts, IndexerClient, IndexerConfig, ListOrdersOpts,
    OrderResponseObject, OrderStatus as DydxStatus, Subaccount,
};
use ordermeta_core::{GoodTil, OrderId, OrderType, Side};

use super::{
    FeedStream, IndexerApi, IndexerClock, IndexerError, IndexerFill, IndexerOrder,
    IndexerOrderStatus, IndexerSubaccount, decimal_text,
};

/// Default deadline of every indexer call: 5 s.
pub const DEFAULT_INDEXER_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadlines and limits of a [`DydxIndexer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexerOptions {
    /// Deadline of each REST call. Default [`DEFAULT_INDEXER_TIMEOUT`].
    pub call_timeout: Duration,
    /// Deadline of a feed subscription: connecting and the indexer's acknowledgement.
    /// Default [`DEFAULT_INDEXER_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Most orders one REST listing asks for (the indexer caps it too). Default 500.
    pub list_limit: u32,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        IndexerOptions {
            call_timeout: DEFAULT_INDEXER_TIMEOUT,
            connect_timeout: DEFAULT_INDEXER_TIMEOUT,
            list_limit: 500,
        }
    }
}

/// [`IndexerApi`] over the `dydx` crate's `IndexerClient`, unmodified: REST for the orders,
/// fills and clock; one websocket connection per [subscription](IndexerApi::subscribe)
/// (so a lost connection costs only that subscription; a new one reconnects).
///
/// The crate's REST client has no deadline of its own; every call here gets
/// [`IndexerOptions::call_timeout`].
pub struct DydxIndexer {
    config: IndexerConfig,
    rest: IndexerClient,
    options: IndexerOptions,
}

impl std::fmt::Debug for DydxIndexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DydxIndexer")
            .field("rest", &self.config.rest.endpoint)
            .field("sock", &self.config.sock.endpoint)
            .field("options", &self.options)
            .finish()
    }
}

impl DydxIndexer {
    /// An indexer client for `config` (REST and websocket endpoints). Must be called within
    /// a tokio runtime: the `dydx` client spawns its websocket task at once.
    pub fn new(config: IndexerConfig, options: IndexerOptions) -> Self {
        DydxIndexer {
            rest: IndexerClient::new(config.clone()),
            config,
            options,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &IndexerConfig {
        &self.config
    }

    /// Runs a REST call within the deadline, mapping its failure.
    async fn call<T, F>(&self, operation: &'static str, fut: F) -> Result<T, IndexerError>
    where
        F: Future<Output = Result<T, anyhow::Error>>,
    {
        match tokio::time::timeout(self.options.call_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(IndexerError::Timeout {
                operation,
                after: self.options.call_timeout,
            }),
        }
    }

    async fn list(
        &self,
        subaccount: &IndexerSubaccount,
        opts: ListOrdersOpts,
    ) -> Result<Vec<IndexerOrder>, IndexerError> {
        let sub = dydx_subaccount(subaccount)?;
        let orders = self
            .call(
                "orders",
                self.rest.accounts().get_subaccount_orders(&sub, Some(opts)),
            )
            .await?;
        Ok(orders
            .iter()
            .filter_map(|o| from_rest(&subaccount.owner, o))
            .collect())
    }
}

#[async_trait]
impl IndexerApi for DydxIndexer {
    async fn open_orders(
        &self,
        subaccount: &IndexerSubaccount,
    ) -> Result<Vec<IndexerOrder>, IndexerError> {
        // `status` takes one value, and best-effort opened short-term orders have no filter
        // of their own: ask for OPEN, for UNTRIGGERED and for the latest orders of any
        // status, and keep the open ones.
        let limit = Some(self.options.list_limit);
        let mut by_id: HashMap<String, IndexerOrder> = HashMap::new();
        for status in [Some(DydxStatus::Open), Some(DydxStatus::Untriggered), None] {
            let opts = ListOrdersOpts {
                limit,
                status: status.clone(),
                return_latest_orders: status.is_none().then_some(true),
                ..ListOrdersOpts::default()
            };
            for o in self.list(subaccount, opts).await? {
                if o.status.is_open() {
                    by_id.insert(o.indexer_id.clone(), o);
                }
            }
        }
        let mut orders: Vec<IndexerOrder> = by_id.into_values().collect();
        orders.sort_by(|a, b| a.indexer_id.cmp(&b.indexer_id));
        Ok(orders)
    }

    async fn latest_orders(
        &self,
        subaccount: &IndexerSubaccount,
        limit: u32,
    ) -> Result<Vec<IndexerOrder>, IndexerError> {
        let opts = ListOrdersOpts {
            limit: Some(limit.clamp(1, self.options.list_limit.max(1))),
            return_latest_orders: Some(true),
            ..ListOrdersOpts::default()
        };
        self.list(subaccount, opts).await
    }

    async fn order(
        &self,
        owner: &str,
        indexer_id: &str,
    ) -> Result<Option<IndexerOrder>, IndexerError> {
        let id = dydx::indexer::OrderId(indexer_id.to_owned());
        let accounts = self.rest.accounts();
        match tokio::time::timeout(self.options.call_timeout, accounts.get_order(&id)).await {
            Ok(Ok(o)) => match from_rest(owner, &o) {
                Some(order) => Ok(Some(order)),
                None => Err(IndexerError::Invalid {
                    operation: "order",
                    reason: format!(
                        "order {indexer_id} has a good-til or flags ordermeta cannot read"
                    ),
                }),
            },
            Ok(Err(e)) if http_status(&e) == Some(404) => Ok(None),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(IndexerError::Timeout {
                operation: "order",
                after: self.options.call_timeout,
            }),
        }
    }

    async fn fills_since(
        &self,
        subaccount: &IndexerSubaccount,
        after_height: u32,
        limit: u32,
    ) -> Result<Vec<IndexerFill>, IndexerError> {
        let sub = dydx_subaccount(subaccount)?;
        let opts = GetFillsOpts {
            limit: Some(limit.max(1)),
            ..GetFillsOpts::default()
        };
        let fills = self
            .call(
                "fills",
                self.rest.accounts().get_subaccount_fills(&sub, Some(opts)),
            )
            .await?;
        Ok(fills
            .into_iter()
            .filter(|f| f.created_at_height.0 > after_height)
            .map(|f| IndexerFill {
                id: f.id.0,
                order_indexer_id: f.order_id.map(|o| o.0),
                size: decimal_text(&f.size),
                height: f.created_at_height.0,
            })
            .collect())
    }

    async fn clock(&self) -> Result<IndexerClock, IndexerError> {
        let h = self
            .call("height", self.rest.utility().get_height())
            .await?;
        Ok(IndexerClock {
            height: h.height.0,
            time: h.time,
        })
    }

    async fn subscribe(&self, subaccount: &IndexerSubaccount) -> Result<FeedStream, IndexerError> {
        super::ws::subscribe(&self.config, subaccount, self.options.connect_timeout).await
    }
}

/// The `dydx` crate's subaccount for ours (its address type checks the bech32 form).
pub(super) fn dydx_subaccount(s: &IndexerSubaccount) -> Result<Subaccount, IndexerError> {
    let invalid = |reason: String| IndexerError::Invalid {
        operation: "subaccount",
        reason,
    };
    let address = s
        .owner
        .parse()
        .map_err(|e| invalid(format!("{}: {e}", s.owner)))?;
    let number = s
        .number
        .try_into()
        .map_err(|e| invalid(format!("subaccount {}: {e}", s.number)))?;
    Ok(Subaccount::new(address, number))
}

fn unavailable(e: anyhow::Error) -> IndexerError {
    IndexerError::Unavailable { source: e.into() }
}

/// The HTTP status of a failed REST call, if it got one.
fn http_status(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| c.downcast_ref::<reqwest::Error>())
        .and_then(reqwest::Error::status)
        .map(|s| s.as_u16())
}

/// Our view of a REST order of `owner`; `None` when its good-til does not fit its flags.
pub(super) fn from_rest(owner: &str, o: &OrderResponseObject) -> Option<IndexerOrder> {
    let order_flags = o.order_flags.clone() as u32;
    let order_id = OrderId {
        owner: owner.to_owned(),
        subaccount_number: o.subaccount_number.value(),
        client_id: o.client_id.0,
        order_flags,
        clob_pair_id: o.clob_pair_id.0,
    };
    let good_til = good_til(
        &order_id,
        o.good_til_block.as_ref().map(|h| h.0),
        o.good_til_block_time,
    )?;
    Some(IndexerOrder {
        indexer_id: o.id.0.clone(),
        order_id,
        good_til: Some(good_til),
        status: api_status(&o.status),
        total_filled: Some(decimal_text(&o.total_filled)),
        size: Some(decimal_text(&o.size.0)),
        price: Some(decimal_text(&o.price.0)),
        side: Some(side(&o.side)),
        ticker: Some(o.ticker.0.clone()),
        order_type: order_type(&o.order_type),
        removal_reason: None,
        height: o
            .updated_at_height
            .as_ref()
            .or(o.created_at_height.as_ref())
            .map(|h| h.0),
    })
}

/// The good-til the flags call for: a block for short-term orders, a time for stateful ones.
pub(super) fn good_til(
    id: &OrderId,
    block: Option<u32>,
    time: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<GoodTil> {
    if id.is_short_term() {
        block.map(GoodTil::Block)
    } else {
        time.and_then(|t| u32::try_from(t.timestamp()).ok())
            .map(GoodTil::BlockTime)
    }
}

pub(super) fn api_status(s: &ApiOrderStatus) -> IndexerOrderStatus {
    match s {
        ApiOrderStatus::OrderStatus(DydxStatus::Open) => IndexerOrderStatus::Open,
        ApiOrderStatus::OrderStatus(DydxStatus::Filled) => IndexerOrderStatus::Filled,
        ApiOrderStatus::OrderStatus(DydxStatus::Canceled) => IndexerOrderStatus::Canceled,
        ApiOrderStatus::OrderStatus(DydxStatus::BestEffortCanceled) => {
            IndexerOrderStatus::BestEffortCanceled
        }
        ApiOrderStatus::OrderStatus(DydxStatus::Untriggered) => IndexerOrderStatus::Untriggered,
        ApiOrderStatus::BestEffort(_) => IndexerOrderStatus::BestEffortOpened,
    }
}

pub(super) fn side(s: &dydx::indexer::OrderSide) -> Side {
    match s {
        dydx::indexer::OrderSide::Buy => Side::Buy,
        dydx::indexer::OrderSide::Sell => Side::Sell,
    }
}

pub(super) fn order_type(t: &dydx::indexer::OrderType) -> Option<OrderType> {
    use dydx::indexer::OrderType as T;
    Some(match t {
        T::Limit => OrderType::Limit,
        T::Market => OrderType::Market,
        T::StopLimit => OrderType::StopLimit,
        T::StopMarket => OrderType::StopMarket,
        T::TakeProfit => OrderType::TakeProfitLimit,
        T::TakeProfitMarket => OrderType::TakeProfitMarket,
        _ => return None,
    })
}
