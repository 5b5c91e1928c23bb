//! Fuzzing the mapping of the chain's error replies: a cancel the node refuses with any
//! (codespace, code, log) — known codes, unknown ones, odd codespaces, any log text — must end
//! in a typed [`CancelError`] whose kind matches what was recorded, with the claim never left
//! behind (no record stays `cancelling`), and never a panic.
//!
//! Through the public path: a mocked gateway (feature `mock`) answering `cancel_order` over
//! the in-memory store. Cases: 256, or `ORDERMETA_FUZZ_CASES` (`scripts/soak.sh`: 1,000,000).
//! The printable order id parser's properties live beside it (`convert.rs`, same variable).
#![cfg(all(feature = "mock", feature = "recording"))]

use std::sync::{Arc, Mutex};

use ordermeta_core::{
    GoodTil, MemoryStore, MetadataStore, MetadataStoreExt, NewOrder, OrderId, OrderMetadata,
    OrderStatus, OrderType, Side, now,
};
use ordermeta_dydx::{
    CancelErrorKind, CancelRetry, ChainClock, ChainError, ChainSettings, GatewayError,
    MockOrderGateway, OrderMetaClient, RecordingSwitch, codes, order_key,
};
use proptest::prelude::*;
use proptest::test_runner::Config;

const ME: &str = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn20l73w";
const CLOCK: ChainClock = ChainClock {
    height: 100,
    block_time: 1_800_000_000,
};

fn config() -> Config {
    Config {
        cases: std::env::var("ORDERMETA_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        max_shrink_iters: 1024,
        ..Config::default()
    }
}

fn arb_chain_error() -> impl Strategy<Value = ChainError> {
    let known = [
        codes::ORDER_IS_CANCELED,
        codes::CANCEL_ALREADY_EXISTS,
        codes::HEIGHT_EXCEEDS_GOOD_TIL_BLOCK,
        codes::INVALID_STATEFUL_ORDER_CANCELLATION,
        codes::STATEFUL_CANCEL_ALREADY_EXISTS,
        codes::TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME,
        codes::STATEFUL_ORDER_DOES_NOT_EXIST,
        codes::STATEFUL_CANCEL_FAILED_ORDER_REMOVED,
        codes::BLOCK_RATE_LIMIT_EXCEEDED,
        0,
        u32::MAX,
    ];
    (
        prop_oneof![
            Just("clob".to_owned()),
            Just("sdk".to_owned()),
            Just("subaccounts".to_owned()),
            Just("CLOB".to_owned()),
            Just(String::new()),
            "\\PC{0,16}",
        ],
        prop_oneof![proptest::sample::select(known.to_vec()), any::<u32>()],
        "\\PC{0,80}",
    )
        .prop_map(|(codespace, code, log)| ChainError {
            codespace,
            code,
            log,
        })
}

fn meta(stateful: bool, client_id: u32) -> (OrderMetadata, GoodTil) {
    let id = OrderId {
        owner: ME.to_owned(),
        subaccount_number: 0,
        client_id,
        order_flags: if stateful { 64 } else { 0 },
        clob_pair_id: 0,
    };
    let good_til = if stateful {
        GoodTil::BlockTime(CLOCK.block_time + 100)
    } else {
        GoodTil::Block(CLOCK.height + 10)
    };
    let m = OrderMetadata::new(
        NewOrder {
            order_id: order_key(&id, good_til),
            dydx_order_id: id,
            good_til,
            symbol: "BTC-USD".into(),
            side: Side::Buy,
            quantity: "0.001".into(),
            price: Some("50000".into()),
            order_type: OrderType::Limit,
        },
        OrderStatus::Active,
        now(),
    );
    (m, good_til)
}

/// What the client must make of `e` (its kind and the status it records), by the rules in
/// `dydx-rules.md`: codes it acts on, clob codespace only; everything else is the refusal.
fn expected(e: &ChainError, expired_after: bool) -> (CancelErrorKind, OrderStatus) {
    let clob = e.codespace == codes::CODESPACE_CLOB;
    match e.code {
        codes::CANCEL_ALREADY_EXISTS | codes::STATEFUL_CANCEL_ALREADY_EXISTS if clob => {
            (CancelErrorKind::CancelInProgress, OrderStatus::Cancelled)
        }
        codes::HEIGHT_EXCEEDS_GOOD_TIL_BLOCK | codes::TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME if clob => {
            (CancelErrorKind::OrderExpired, OrderStatus::Expired)
        }
        codes::STATEFUL_ORDER_DOES_NOT_EXIST if clob => {
            if expired_after {
                (CancelErrorKind::OrderExpired, OrderStatus::Expired)
            } else {
                (CancelErrorKind::AlreadyCancelled, OrderStatus::Cancelled)
            }
        }
        codes::BLOCK_RATE_LIMIT_EXCEEDED if clob => {
            (CancelErrorKind::RateLimited, OrderStatus::Active)
        }
        _ => (CancelErrorKind::Rejected, OrderStatus::Active),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn chain_error_replies_map_to_typed_errors(
        error in arb_chain_error(),
        stateful: bool,
        expired_after: bool,
        client_id: u32,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (kind, status, text) = rt.block_on(async {
            let store = Arc::new(MemoryStore::new());
            let (m, _) = meta(stateful, client_id);
            let key = m.order_id.clone();
            store.record(&m).await.expect("seed");
            let after = if expired_after {
                ChainClock { height: CLOCK.height + 50, block_time: CLOCK.block_time + 500 }
            } else {
                CLOCK
            };
            let mut gw = MockOrderGateway::new();
            gw.expect_signer().return_const(ME.to_owned());
            let mut first = true;
            gw.expect_clock().returning(move || {
                let c = if first { CLOCK } else { after };
                first = false;
                Ok(c)
            });
            let answer = Mutex::new(Some(GatewayError::Rejected(error.clone())));
            gw.expect_cancel().times(1).returning(move |_, _| {
                Err(answer.lock().expect("lock").take().expect("one answer"))
            });
            let settings = ChainSettings { cancel_retry: CancelRetry::never(), ..ChainSettings::default() };
            let store_dyn: Arc<dyn MetadataStore> = store.clone();
            let client = OrderMetaClient::new(Arc::new(gw), store_dyn, RecordingSwitch::new(true), settings);
            let err = client.cancel_order(&key).await.expect_err("refused");
            let stored = store.get_required(&key).await.expect("get");
            (err.kind(), stored.status, err.to_string())
        });
        prop_assert!(!text.is_empty());
        prop_assert_eq!((kind, status), expected(&error, expired_after), "{}", error);
    }
}
