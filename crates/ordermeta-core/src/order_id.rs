//! The dYdX `OrderId` and its storage codec: base64 of its protobuf bytes.
//!
//! The message mirrors `dydxprotocol.clob.OrderId` field for field and tag for tag, so the bytes
//! are identical to what `dydx-proto` encodes (the crate's tests prove it both ways). It is
//! declared here with `prost` so the core crate needs no network crate.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Order flag of a short-term order (good-til-block).
pub const ORDER_FLAGS_SHORT_TERM: u32 = 0;
/// Order flag of a conditional order (stateful, good-til-block-time).
pub const ORDER_FLAGS_CONDITIONAL: u32 = 32;
/// Order flag of a long-term order (stateful, good-til-block-time).
pub const ORDER_FLAGS_LONG_TERM: u32 = 64;
/// Order flag of a TWAP order (stateful, good-til-block-time).
pub const ORDER_FLAGS_TWAP: u32 = 128;
/// Order flag of a TWAP suborder (chain-internal).
pub const ORDER_FLAGS_TWAP_SUBORDER: u32 = 256;

/// The chain's identity of an order: subaccount (owner + number), client id, flags and market.
///
/// Re-using a client id on the same subaccount, market and flags addresses the same order on
/// chain, so these five fields are exactly what a cancel must repeat.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderId {
    /// Bech32 address (`dydx1…`) of the wallet owning the subaccount.
    pub owner: String,
    /// Subaccount number of the owner.
    pub subaccount_number: u32,
    /// The client id chosen at placement (protobuf `fixed32`).
    pub client_id: u32,
    /// Order flags: 0 short-term, 32 conditional, 64 long-term, 128 TWAP, 256 TWAP suborder.
    pub order_flags: u32,
    /// The market (CLOB pair) id.
    pub clob_pair_id: u32,
}

/// Wire form of `dydxprotocol.subaccounts.SubaccountId`.
#[derive(Clone, PartialEq, Message)]
struct SubaccountIdPb {
    #[prost(string, tag = "1")]
    owner: String,
    #[prost(uint32, tag = "2")]
    number: u32,
}

/// Wire form of `dydxprotocol.clob.OrderId`.
#[derive(Clone, PartialEq, Message)]
struct OrderIdPb {
    #[prost(message, optional, tag = "1")]
    subaccount_id: Option<SubaccountIdPb>,
    #[prost(fixed32, tag = "2")]
    client_id: u32,
    #[prost(uint32, tag = "3")]
    order_flags: u32,
    #[prost(uint32, tag = "4")]
    clob_pair_id: u32,
}

impl OrderId {
    /// True for short-term orders (flags 0), whose good-til is a block height.
    pub fn is_short_term(&self) -> bool {
        self.order_flags == ORDER_FLAGS_SHORT_TERM
    }

    /// True for stateful orders (conditional, long-term, TWAP), whose good-til is a block time.
    pub fn is_stateful(&self) -> bool {
        !self.is_short_term()
    }

    /// The protobuf bytes, identical to `dydx_proto::dydxprotocol::clob::OrderId::encode_to_vec`.
    pub fn to_protobuf(&self) -> Vec<u8> {
        OrderIdPb {
            subaccount_id: Some(SubaccountIdPb {
                owner: self.owner.clone(),
                number: self.subaccount_number,
            }),
            client_id: self.client_id,
            order_flags: self.order_flags,
            clob_pair_id: self.clob_pair_id,
        }
        .encode_to_vec()
    }

    /// Decodes protobuf bytes. Missing subaccount or owner, and undecodable bytes, are
    /// [`StoreError::InvalidMetadata`].
    pub fn from_protobuf(bytes: &[u8]) -> Result<Self, StoreError> {
        let pb = OrderIdPb::decode(bytes)
            .map_err(|e| StoreError::invalid(None, format!("OrderId protobuf: {e}")))?;
        let sub = pb
            .subaccount_id
            .ok_or_else(|| StoreError::invalid(None, "OrderId has no subaccount_id"))?;
        if sub.owner.is_empty() {
            return Err(StoreError::invalid(None, "OrderId has an empty owner"));
        }
        Ok(OrderId {
            owner: sub.owner,
            subaccount_number: sub.number,
            client_id: pb.client_id,
            order_flags: pb.order_flags,
            clob_pair_id: pb.clob_pair_id,
        })
    }

    /// Base64 (standard alphabet, padded) of the protobuf bytes: the seed's `dydx_order_id` column.
    pub fn to_base64(&self) -> String {
        B64.encode(self.to_protobuf())
    }

    /// Inverse of [`to_base64`](Self::to_base64); garbage is [`StoreError::InvalidMetadata`].
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| StoreError::invalid(None, format!("OrderId base64: {e}")))?;
        Self::from_protobuf(&bytes)
    }
}

impl fmt::Display for OrderId {
    /// `owner/subaccount/clob_pair/flags/client_id`: readable, and unique per chain order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{}",
            self.owner, self.subaccount_number, self.clob_pair_id, self.order_flags, self.client_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dydx_proto::dydxprotocol::clob::OrderId as PbOrderId;
    use dydx_proto::dydxprotocol::subaccounts::SubaccountId as PbSubaccountId;
    use proptest::prelude::*;

    fn arb_order_id() -> impl Strategy<Value = OrderId> {
        (
            "dydx1[a-z0-9]{10,58}",
            any::<u32>(),
            any::<u32>(),
            prop_oneof![
                Just(0u32),
                Just(32),
                Just(64),
                Just(128),
                Just(256),
                any::<u32>()
            ],
            any::<u32>(),
        )
            .prop_map(|(owner, n, c, f, p)| OrderId {
                owner,
                subaccount_number: n,
                client_id: c,
                order_flags: f,
                clob_pair_id: p,
            })
    }

    fn to_dydx(id: &OrderId) -> PbOrderId {
        PbOrderId {
            subaccount_id: Some(PbSubaccountId {
                owner: id.owner.clone(),
                number: id.subaccount_number,
            }),
            client_id: id.client_id,
            order_flags: id.order_flags,
            clob_pair_id: id.clob_pair_id,
        }
    }

    proptest! {
        #[test]
        fn bytes_identical_to_dydx_proto(id in arb_order_id()) {
            let ours = id.to_protobuf();
            let theirs = prost::Message::encode_to_vec(&to_dydx(&id));
            prop_assert_eq!(&ours, &theirs);
        }

        #[test]
        fn decodes_what_dydx_proto_encodes(id in arb_order_id()) {
            let theirs = prost::Message::encode_to_vec(&to_dydx(&id));
            prop_assert_eq!(OrderId::from_protobuf(&theirs).expect("decode"), id.clone());
            let back: PbOrderId = prost::Message::decode(id.to_protobuf().as_slice())
                .expect("dydx-proto decodes ours");
            prop_assert_eq!(back, to_dydx(&id));
        }

        #[test]
        fn base64_round_trips(id in arb_order_id()) {
            prop_assert_eq!(OrderId::from_base64(&id.to_base64()).expect("decode"), id);
        }

        #[test]
        fn garbage_never_panics(text in ".*") {
            let _ = OrderId::from_base64(&text);
        }
    }

    #[test]
    fn garbage_is_invalid_metadata() {
        for bad in ["not base64!", "////", "", "AAAA"] {
            let err = OrderId::from_base64(bad).expect_err(bad);
            assert_eq!(err.kind(), crate::ErrorKind::InvalidMetadata, "{bad}");
        }
    }
}
