//! The bot's own names for its orders: the caller label given at placement
//! ([`PlaceOptions`]) and the client id. Lookups and cancels by either need no good-til
//! ([`OrderMetaClient::find_by_client_id`], [`OrderMetaClient::cancel_by_client_id`],
//! [`OrderMetaClient::cancel_by_label`]), and what placing with a client id that names a
//! still-open order does ([`ClientIdReuse`]).

use ordermeta_core::{ClientIdKey, ErrorKind, OrderId, OrderMetadata, OrderStatus, StoreError};

use super::OrderMetaClient;
use super::active::ActiveWrite;
use super::cancel::Cancelled;
use super::metrics::timed;
use crate::convert::order_key;
use crate::error::{CancelError, PlaceError};
use crate::indexer::{Applied, indexer_order_id};

/// What placing an order does when its client id (same owner, subaccount and market) names a
/// record that is still open (`pending`, `active` or `cancelling`).
///
/// The chain identifies an order by owner, subaccount, market, flags and client id: placing
/// again with the same `OrderId` **replaces** the resting order (a short-term one with a
/// higher good-til block, a stateful one with a later good-til time). See `docs/design.md`,
/// *Client-id reuse*, for why `MarkReplaced` is the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientIdReuse {
    /// Place the order; once the node accepted it, the previous record with the same
    /// `OrderId` becomes `cancelled`, its history saying it was replaced and by which order.
    /// (A previous order with other order flags is a different chain order that stays live:
    /// its record is left as it is.) The default: it is what the chain does, and re-placing
    /// a client id is how market makers amend quotes.
    #[default]
    MarkReplaced,
    /// Refuse the placement with [`PlaceError::ClientIdInUse`]; nothing is recorded or sent.
    /// For bots that treat a client id as a unique order name.
    Refuse,
}

/// Options of [`OrderMetaClient::place_order_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaceOptions {
    /// The caller's own name for the order (its order id or UUID), stored on the record and
    /// indexed: [`find_by_label`](OrderMetaClient::find_by_label),
    /// [`cancel_by_label`](OrderMetaClient::cancel_by_label). 1..=128 bytes, no control
    /// characters (else [`PlaceError::InvalidOrder`]).
    pub label: Option<String>,
    /// This placement's client-id reuse policy; `None` takes
    /// [`ChainSettings::client_id_reuse`](crate::ChainSettings::client_id_reuse).
    pub client_id_reuse: Option<ClientIdReuse>,
    /// Where this placement's `active` write runs; `None` takes
    /// [`ChainSettings::active_write`](crate::ChainSettings::active_write).
    pub active_write: Option<ActiveWrite>,
}

impl PlaceOptions {
    /// Options carrying `label`.
    pub fn label(label: impl Into<String>) -> Self {
        PlaceOptions {
            label: Some(label.into()),
            ..PlaceOptions::default()
        }
    }

    /// The same options with the `active` write run here ([`ActiveWrite`]).
    pub fn active_write(mut self, mode: ActiveWrite) -> Self {
        self.active_write = Some(mode);
        self
    }

    /// The same options with this reuse policy.
    pub fn client_id_reuse(mut self, policy: ClientIdReuse) -> Self {
        self.client_id_reuse = Some(policy);
        self
    }
}

impl OrderMetaClient {
    /// The newest record of the signer's order with this client id on `subaccount` and
    /// `clob_pair` (any order flags): what a restarted bot that knows only its client id
    /// needs. `Ok(None)` if there is none.
    pub async fn find_by_client_id(
        &self,
        subaccount: u32,
        clob_pair: u32,
        client_id: u32,
    ) -> Result<Option<OrderMetadata>, StoreError> {
        let key = self.client_id_key(subaccount, clob_pair, client_id);
        timed("find", self.store.find_by_client_id(&key)).await
    }

    /// The newest record carrying `label` (given at placement: [`PlaceOptions::label`]).
    pub async fn find_by_label(&self, label: &str) -> Result<Option<OrderMetadata>, StoreError> {
        timed("find", self.store.find_by_label(label)).await
    }

    /// Cancels the newest order with this client id on `subaccount` and `clob_pair` — no
    /// good-til needed — exactly as [`cancel_order`](Self::cancel_order) cancels it by id.
    ///
    /// Without a record, and with an [indexer](Self::with_indexer), an open order the indexer
    /// knows under this client id (placed before ordermeta, or by another tool) is imported
    /// and cancelled. Otherwise [`CancelError::MetadataNotFound`], its `order_id` reading
    /// `owner/subaccount/clob_pair/*/client_id`.
    pub async fn cancel_by_client_id(
        &self,
        subaccount: u32,
        clob_pair: u32,
        client_id: u32,
    ) -> Result<Cancelled, CancelError> {
        let name = format!(
            "{}/{subaccount}/{clob_pair}/*/{client_id}",
            self.gateway.signer()
        );
        match self
            .find_by_client_id(subaccount, clob_pair, client_id)
            .await
        {
            Ok(Some(meta)) => return self.cancel_order(&meta.order_id).await,
            Ok(None) => {}
            Err(e) => return Err(CancelError::from_store(&name, e)),
        }
        if let Some(order_id) = self
            .import_from_indexer(subaccount, clob_pair, client_id)
            .await
        {
            return self.cancel_order(&order_id).await;
        }
        Err(CancelError::MetadataNotFound {
            order_id: name,
            store: self.store_description.clone(),
            not_recorded: None,
        })
    }

    /// Cancels the newest order carrying `label`, as [`cancel_order`](Self::cancel_order)
    /// cancels it by id. Without one: [`CancelError::MetadataNotFound`], its `order_id`
    /// reading `label "<label>"`.
    pub async fn cancel_by_label(&self, label: &str) -> Result<Cancelled, CancelError> {
        let name = format!("label {label:?}");
        match self.find_by_label(label).await {
            Ok(Some(meta)) => self.cancel_order(&meta.order_id).await,
            Ok(None) => Err(CancelError::MetadataNotFound {
                order_id: name,
                store: self.store_description.clone(),
                not_recorded: None,
            }),
            Err(e) => Err(CancelError::from_store(&name, e)),
        }
    }

    fn client_id_key(&self, subaccount: u32, clob_pair: u32, client_id: u32) -> ClientIdKey {
        ClientIdKey {
            owner: self.gateway.signer(),
            subaccount_number: subaccount,
            clob_pair_id: clob_pair,
            client_id,
        }
    }

    /// Imports the open order the indexer knows under this client id (short-term, long-term
    /// or conditional), if any; returns its order id.
    async fn import_from_indexer(
        &self,
        subaccount: u32,
        clob_pair: u32,
        client_id: u32,
    ) -> Option<String> {
        let indexer = self.indexer.as_ref()?;
        let owner = self.gateway.signer();
        for order_flags in [
            ordermeta_core::ORDER_FLAGS_SHORT_TERM,
            ordermeta_core::ORDER_FLAGS_LONG_TERM,
            ordermeta_core::ORDER_FLAGS_CONDITIONAL,
        ] {
            let id = OrderId {
                owner: owner.clone(),
                subaccount_number: subaccount,
                client_id,
                order_flags,
                clob_pair_id: clob_pair,
            };
            let Ok(Some(o)) = indexer.order(&owner, &indexer_order_id(&id)).await else {
                continue;
            };
            if !o.status.is_open() || o.order_id != id {
                continue;
            }
            let good_til = o.good_til?;
            return match self.import_order(&o).await {
                Ok(Some(Applied::Imported) | None) => Some(order_key(&id, good_til)),
                _ => None,
            };
        }
        None
    }

    /// The open record a placement of `meta` would reuse the client id of, under `policy`;
    /// for [`ClientIdReuse::Refuse`], the refusal.
    pub(super) async fn reused_client_id(
        &self,
        meta: &OrderMetadata,
        policy: ClientIdReuse,
    ) -> Result<Option<OrderMetadata>, PlaceError> {
        let key = ClientIdKey::of(meta);
        let previous = match timed("find", self.store.find_by_client_id(&key)).await {
            Ok(previous) => previous,
            // The store is down: the record's write fails the same way next, and the failure
            // policy decides (and counts) what happens; nothing can be marked.
            Err(e) if matches!(e.kind(), ErrorKind::Backend | ErrorKind::Timeout) => {
                return Ok(None);
            }
            Err(source) if policy == ClientIdReuse::Refuse => {
                return Err(PlaceError::Storage {
                    order_id: meta.order_id.clone(),
                    source,
                });
            }
            // A corrupt record under the client id must not stop trading; it stays unmarked.
            Err(e) => {
                tracing::warn!(order_id = meta.order_id, error = %e, "client id reuse not checked");
                return Ok(None);
            }
        };
        let Some(previous) = previous
            .filter(|p| p.order_id != meta.order_id && OrderStatus::OPEN.contains(&p.status))
        else {
            return Ok(None);
        };
        match policy {
            ClientIdReuse::Refuse => Err(PlaceError::ClientIdInUse {
                order_id: meta.order_id.clone(),
                previous: previous.order_id,
                status: previous.status,
            }),
            ClientIdReuse::MarkReplaced => Ok(Some(previous)),
        }
    }
}
