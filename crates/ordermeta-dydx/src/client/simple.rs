//! The short ways in: [`OrderMetaClient::connect`] (a node, a wallet and a store, with the
//! defaults) and [`OrderMetaClient::place`] (the order's details read from the order itself).

use std::sync::Arc;

use dydx::node::{NodeConfig, Wallet};
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta_core::MetadataStore;

use super::{ChainSettings, OrderDetails, OrderMetaClient, Placed};
use crate::convert::{describe, order_key};
use crate::details::Market;
use crate::error::PlaceError;
use crate::gateway::{DydxGateway, GatewayError};
use crate::recording::{InvalidRecordingSetting, RecordingSwitch};

/// Why [`OrderMetaClient::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The node could not be reached, or the account not loaded, within the connect deadline.
    #[error("connecting to the node failed: {0}")]
    Node(#[source] GatewayError),
    /// `ORDERMETA_RECORDING` holds something that is no rollout scope.
    #[error(transparent)]
    Recording(#[from] InvalidRecordingSetting),
}

impl OrderMetaClient {
    /// Connects to a node as account 0 of `wallet`, over `store`, with the defaults: the
    /// recording scope from `ORDERMETA_RECORDING` (all orders when unset;
    /// [`RecordingSwitch::from_env`]), [`ChainSettings::default`] and the
    /// [`DydxGateway`]'s default deadlines (connecting within 5 s). For anything else
    /// (another account, timestamp nonces, other settings), build the [`DydxGateway`] and call
    /// [`new`](Self::new).
    ///
    /// `config` is the `dydx` crate's node configuration: `ClientConfig::from_file(..)`'s
    /// `node`, or a `NodeConfig` written out. The client names the store in its errors
    /// ([`MetadataStore::description`], or [`describe_store`](Self::describe_store)).
    pub async fn connect(
        config: NodeConfig,
        wallet: &Wallet,
        store: Arc<dyn MetadataStore>,
    ) -> Result<Self, ConnectError> {
        let recording = RecordingSwitch::from_env()?;
        let gateway = DydxGateway::connect(config, wallet, 0)
            .await
            .map_err(ConnectError::Node)?;
        Ok(Self::new(
            Arc::new(gateway),
            store,
            recording,
            ChainSettings::default(),
        ))
    }

    /// Places `order` (as built by `OrderBuilder` for `market`), its details — side, size,
    /// price, type — read from the order itself ([`OrderDetails::from_order`]), with the
    /// market's symbol. Everything else is [`place_order`](Self::place_order)'s: the record
    /// is written before the broadcast.
    ///
    /// An order of another market than `market`, or one whose side is not buy or sell, is
    /// [`PlaceError::Details`]; nothing is recorded or sent.
    pub async fn place(&self, order: Order, market: &Market) -> Result<Placed, PlaceError> {
        let details = OrderDetails::from_order(&order, market).map_err(|source| {
            let order_id = describe(&order)
                .map(|(id, good_til)| order_key(&id, good_til))
                .unwrap_or_default();
            PlaceError::Details { order_id, source }
        })?;
        self.place_order(order, details).await
    }
}
