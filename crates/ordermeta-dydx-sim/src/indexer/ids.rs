//! The indexer's ids: UUID v5 over the same strings, in the same namespace, as the real
//! indexer (`indexer/packages/postgres/src/helpers/uuid.ts`, `getUuid`), so an id computed here
//! is the id mainnet's indexer gives the same order, subaccount or fill.

use dydx_proto::dydxprotocol::clob::OrderId;
use uuid::Uuid;

/// `NAMESPACE` of `helpers/uuid.ts`.
const NAMESPACE: Uuid = Uuid::from_u128(0x0f9d_a948_a6fb_4c45_9edc_4685_c3f3_317d);

fn uuid_of(name: &str) -> String {
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// `SubaccountTable.uuid(address, subaccountNumber)`: v5 of `"{address}-{number}"`.
pub fn subaccount_uuid(address: &str, number: u32) -> String {
    uuid_of(&format!("{address}-{number}"))
}

/// `OrderTable.orderIdToUuid`: v5 of `"{subaccount uuid}-{clientId}-{clobPairId}-{orderFlags}"`.
pub fn order_uuid(order_id: &OrderId) -> String {
    let (owner, number) = order_id
        .subaccount_id
        .as_ref()
        .map(|s| (s.owner.as_str(), s.number))
        .unwrap_or_default();
    uuid_of(&format!(
        "{}-{}-{}-{}",
        subaccount_uuid(owner, number),
        order_id.client_id,
        order_id.clob_pair_id,
        order_id.order_flags
    ))
}

/// A fill's event id (`dydx_event_id_from_parts.sql`): block height, transaction index + 2 and
/// event index, each 4 bytes big-endian.
pub(crate) fn event_id(height: u32, transaction_index: u32, event_index: u32) -> [u8; 12] {
    let mut id = [0u8; 12];
    id[..4].copy_from_slice(&height.to_be_bytes());
    id[4..8].copy_from_slice(&(transaction_index + 2).to_be_bytes());
    id[8..].copy_from_slice(&event_index.to_be_bytes());
    id
}

/// Lower-case hex, as `Buffer.toString('hex')`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `FillTable.uuid(eventId, liquidity)`: v5 of `"{hex event id}-{liquidity}"`.
pub(crate) fn fill_uuid(event_id: &[u8], liquidity: &str) -> String {
    uuid_of(&format!("{}-{liquidity}", hex(event_id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dydx_proto::dydxprotocol::subaccounts::SubaccountId;

    /// `MEGAVAULT_SUBACCOUNT_ID` of `indexer/packages/postgres/src/constants.ts`: "Generated
    /// from the module address + subaccount number 0".
    #[test]
    fn subaccount_uuid_matches_the_indexers_megavault_constant() {
        assert_eq!(
            subaccount_uuid("dydx18tkxrnrkqc2t0lr3zxr5g6a4hdvqksylxqje4r", 0),
            "c7169f81-0c80-54c5-a41f-9cbb6a538fdf"
        );
    }

    /// The indexer's postgres tests (`__tests__/stores/fill-table.test.ts`) expect
    /// `df91255d-5e17-5e2e-824a-87ddf3c5214a` as the subaccount id of their `defaultSubaccount`
    /// (`defaultAddress`, number 0).
    #[test]
    fn subaccount_uuid_matches_the_indexers_test_fixture() {
        assert_eq!(
            subaccount_uuid("dydx1n88uc38xhjgxzw9nwre4ep2c8ga4fjxc565lnf", 0),
            "df91255d-5e17-5e2e-824a-87ddf3c5214a"
        );
    }

    #[test]
    fn order_uuid_is_the_v5_of_the_documented_string() {
        let id = OrderId {
            subaccount_id: Some(SubaccountId {
                owner: "dydx1n88uc38xhjgxzw9nwre4ep2c8ga4fjxc565lnf".into(),
                number: 0,
            }),
            client_id: 7,
            order_flags: 64,
            clob_pair_id: 1,
        };
        let expected = Uuid::new_v5(&NAMESPACE, b"df91255d-5e17-5e2e-824a-87ddf3c5214a-7-1-64");
        assert_eq!(order_uuid(&id), expected.to_string());
        assert_eq!(expected.get_version_num(), 5);
        // Another field, another id.
        let other = OrderId {
            client_id: 8,
            ..id.clone()
        };
        assert_ne!(order_uuid(&other), order_uuid(&id));
    }

    #[test]
    fn event_ids_are_height_tx_index_plus_two_and_event_index() {
        // The example of the indexer's websocket documentation: height 61169, tx 0, event 77.
        assert_eq!(
            event_id(61_169, 0, 77),
            [0, 0, 238, 241, 0, 0, 0, 2, 0, 0, 0, 77]
        );
        assert_eq!(hex(&event_id(1, 0, 0)), "000000010000000200000000");
        assert_ne!(
            fill_uuid(&event_id(1, 0, 0), "MAKER"),
            fill_uuid(&event_id(1, 0, 0), "TAKER")
        );
    }
}
