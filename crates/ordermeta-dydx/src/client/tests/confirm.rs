//! Stateful outcomes confirmed after their block, and the chain's stateless rules refused
//! before recording.

use std::time::Duration;

use super::*;
use crate::{ConfirmSettings, Supervisor, SupervisorConfig};

/// The gateway reports `result` for every tx, in block 101.
fn executes_with(gw: &mut MockOrderGateway, result: Result<(), ChainError>) {
    gw.expect_tx_result().returning(move |_| {
        Ok(Some(TxOutcome {
            height: 101,
            result: result.clone(),
        }))
    });
}

fn chain_error(codespace: &str, code: u32) -> ChainError {
    ChainError {
        codespace: codespace.into(),
        code,
        log: "failed to execute message".into(),
    }
}

fn stateful_gt() -> GoodTil {
    GoodTil::BlockTime(CLOCK.block_time + 3600)
}

async fn last_reason(store: &FlakyStore, id: &str) -> String {
    let meta = store.get_required(id).await.expect("get");
    meta.history
        .last()
        .and_then(|h| h.reason.clone())
        .unwrap_or_default()
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn stateful_placement_failed_in_its_block_is_recorded_failed() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(1).returning(|_| Ok("P".into()));
    executes_with(&mut gw, Err(chain_error("clob", 3007)));
    let c = client(gw, store.clone());
    let placed = c
        .place_order(built_order(&oid(1, 64), Some(stateful_gt())), details())
        .await
        .expect("accepted at CheckTx");
    assert_eq!(c.unconfirmed(), 1);
    // The confirmation runs the queued `active` write first: the history tells it in order.
    let report = c.confirm_outstanding().await;
    assert_eq!((report.failed, report.waiting), (1, 0), "{report:?}");
    let steps: Vec<_> = store
        .get_required(&placed.order_id)
        .await
        .expect("get")
        .history
        .iter()
        .map(|h| h.status)
        .collect();
    assert_eq!(
        steps,
        [
            OrderStatus::Pending,
            OrderStatus::Active,
            OrderStatus::Failed
        ]
    );
    assert_eq!(status(&store, &placed.order_id).await, OrderStatus::Failed);
    let reason = last_reason(&store, &placed.order_id).await;
    assert!(reason.contains("clob/3007"), "{reason}");
}

#[cfg(feature = "recording")]
#[tokio::test]
async fn short_term_txs_are_not_confirmed() {
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(1).returning(|_| Ok("P".into()));
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(1).returning(|_, _| Ok("C".into()));
    gw.expect_tx_result().times(0);
    let c = client(gw, store.clone());
    let placed = c
        .place_order(
            built_order(&oid(2, 0), Some(GoodTil::Block(120))),
            details(),
        )
        .await
        .expect("place");
    c.cancel_order(&placed.order_id).await.expect("cancel");
    assert_eq!(c.unconfirmed(), 0);
    assert_eq!(
        status(&store, &placed.order_id).await,
        OrderStatus::Cancelled
    );
}

/// A cancel the block failed (for a reason other than the order being gone) gives the claim
/// back: the order is live, `active` again, the failure in its history.
#[cfg(feature = "recording")]
#[tokio::test]
async fn stateful_cancel_failed_in_its_block_gives_the_claim_back() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(&store, &oid(3, 64), stateful_gt(), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().times(1).returning(|_, _| Ok("C".into()));
    executes_with(&mut gw, Err(chain_error("clob", 3007)));
    let c = client(gw, store.clone());
    let done = c.cancel_order(&key).await.expect("accepted at CheckTx");
    assert_eq!(done.tx_hash, "C");
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelling);
    let report = c.confirm_outstanding().await;
    assert_eq!(report.failed, 1, "{report:?}");
    let meta = store.get_required(&key).await.expect("get");
    assert_eq!(meta.status, OrderStatus::Active);
    assert_eq!(meta.cancel_tx_hash, None);
    let reason = last_reason(&store, &key).await;
    assert!(reason.contains("cancel failed in block 101"), "{reason}");
}

/// The block found the order gone: clob 3010 (filled or removed since the last block) and
/// 3006 are recorded cancelled — a fill feed may correct it to filled — or expired when the
/// chain's clock says so.
#[cfg(feature = "recording")]
#[tokio::test]
async fn stateful_cancel_of_a_gone_order_settles_it() {
    let store = Arc::new(FlakyStore::default());
    let filled = seed(&store, &oid(4, 64), stateful_gt(), OrderStatus::Active).await;
    let lapsed_gt = GoodTil::BlockTime(CLOCK.block_time + 1);
    let lapsed = seed(&store, &oid(5, 64), lapsed_gt, OrderStatus::Active).await;
    let mut gw = gateway();
    // The cancels see the clock before the block; the confirmation after it, when the
    // second order's good-til has passed.
    let later = ChainClock {
        height: CLOCK.height + 1,
        block_time: CLOCK.block_time + 2,
    };
    let looks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = looks.clone();
    gw.expect_clock().returning(move || {
        Ok(if n.fetch_add(1, Ordering::SeqCst) < 2 {
            CLOCK
        } else {
            later
        })
    });
    gw.expect_cancel()
        .times(2)
        .returning(|id, _| Ok(format!("C{}", id.client_id)));
    gw.expect_tx_result().returning(|hash| {
        let code = if hash == "C4" { 3010 } else { 3006 };
        Ok(Some(TxOutcome {
            height: 101,
            result: Err(chain_error("clob", code)),
        }))
    });
    let c = client(gw, store.clone());
    c.cancel_order(&filled).await.expect("cancel");
    c.cancel_order(&lapsed).await.expect("cancel");
    let report = c.confirm_outstanding().await;
    assert_eq!(report.failed, 2, "{report:?}");
    assert_eq!(status(&store, &filled).await, OrderStatus::Cancelled);
    assert!(last_reason(&store, &filled).await.contains("clob/3010"));
    assert_eq!(status(&store, &lapsed).await, OrderStatus::Expired);
    // The fill feed has the last word.
    c.mark_filled(&filled).await.expect("fill reported");
    assert_eq!(status(&store, &filled).await, OrderStatus::Filled);
}

/// No block result within the window: given up, the claim left to run out (the supervisor
/// then re-drives it).
#[cfg(feature = "recording")]
#[tokio::test]
async fn no_result_within_the_window_is_given_up() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(&store, &oid(6, 64), stateful_gt(), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().returning(|_, _| Ok("C".into()));
    gw.expect_tx_result().returning(|_| Ok(None));
    let settings = ChainSettings {
        confirm: ConfirmSettings {
            within: Duration::from_millis(60),
            poll: Duration::from_millis(5),
            ..ConfirmSettings::default()
        },
        ..settings()
    };
    let c = client_settings(gw, store.clone(), settings);
    c.cancel_order(&key).await.expect("cancel");
    let first = c.confirm_outstanding().await;
    assert_eq!((first.waiting, first.gave_up), (1, 0));
    let total = c.confirm_all(Duration::from_secs(5)).await;
    assert_eq!((total.waiting, total.gave_up), (0, 1), "{total:?}");
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelling);
    // `confirm` on a tx that never shows up answers None within its bound.
    assert_eq!(c.confirm("C", Duration::from_millis(20)).await, None);
}

/// A gateway without tx lookups (written before `tx_result` existed): the CheckTx answer is
/// final, as it was.
#[cfg(feature = "recording")]
#[tokio::test]
async fn a_gateway_without_lookups_keeps_the_checktx_answer() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(&store, &oid(7, 64), stateful_gt(), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().returning(|_, _| Ok("C".into()));
    gw.expect_tx_result().returning(|_| {
        Err(GatewayError::Unsupported {
            operation: "tx_result",
        })
    });
    let c = client(gw, store.clone());
    c.cancel_order(&key).await.expect("cancel");
    c.confirm_outstanding().await;
    let meta = store.get_required(&key).await.expect("get");
    assert_eq!(meta.status, OrderStatus::Cancelled);
    assert_eq!(meta.cancel_tx_hash.as_deref(), Some("C"));
}

/// Confirmation off: the CheckTx answer is final and nothing is looked up.
#[cfg(feature = "recording")]
#[tokio::test]
async fn confirmation_off_settles_at_checktx() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(&store, &oid(8, 64), stateful_gt(), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().returning(|_, _| Ok("C".into()));
    gw.expect_tx_result().times(0);
    let settings = ChainSettings {
        confirm: ConfirmSettings {
            enabled: false,
            ..ConfirmSettings::default()
        },
        ..settings()
    };
    let c = client_settings(gw, store.clone(), settings);
    c.cancel_order(&key).await.expect("cancel");
    assert_eq!(c.unconfirmed(), 0);
    assert_eq!(status(&store, &key).await, OrderStatus::Cancelled);
}

/// `confirm(hash)` waits for that tx's block and records it.
#[cfg(feature = "recording")]
#[tokio::test]
async fn confirm_waits_for_one_tx() {
    let store = Arc::new(FlakyStore::default());
    let key = seed(&store, &oid(9, 64), stateful_gt(), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel().returning(|_, _| Ok("C".into()));
    let looks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = looks.clone();
    gw.expect_tx_result().returning(move |_| {
        // In the mempool for two looks, then in block 102.
        Ok(
            (n.fetch_add(1, Ordering::SeqCst) >= 2).then_some(TxOutcome {
                height: 102,
                result: Ok(()),
            }),
        )
    });
    let settings = ChainSettings {
        confirm: ConfirmSettings {
            poll: Duration::from_millis(2),
            ..ConfirmSettings::default()
        },
        ..settings()
    };
    let c = client_settings(gw, store.clone(), settings);
    let done = c.cancel_order(&key).await.expect("cancel");
    let outcome = c
        .confirm(&done.tx_hash, Duration::from_secs(5))
        .await
        .expect("in a block");
    assert_eq!((outcome.height, outcome.result), (102, Ok(())));
    assert_eq!(c.unconfirmed(), 0);
    let meta = store.get_required(&key).await.expect("get");
    assert_eq!(meta.status, OrderStatus::Cancelled);
    assert_eq!(meta.cancel_tx_hash.as_deref(), Some("C"));
}

/// The supervisor's first step confirms, and counts it.
#[cfg(feature = "recording")]
#[tokio::test]
async fn the_supervisor_confirms() {
    let store = Arc::new(FlakyStore::default());
    let ok = seed(&store, &oid(10, 64), stateful_gt(), OrderStatus::Active).await;
    let refused = seed(&store, &oid(11, 64), stateful_gt(), OrderStatus::Active).await;
    let mut gw = gateway();
    gw.expect_clock().returning(|| Ok(CLOCK));
    gw.expect_cancel()
        .returning(|id, _| Ok(format!("C{}", id.client_id)));
    gw.expect_tx_result().returning(|hash| {
        Ok(Some(TxOutcome {
            height: 101,
            result: if hash == "C10" {
                Ok(())
            } else {
                Err(chain_error("clob", 3007))
            },
        }))
    });
    let c = client(gw, store.clone());
    c.cancel_order(&ok).await.expect("cancel");
    c.cancel_order(&refused).await.expect("cancel");
    let report = Supervisor::run_once(&c, &SupervisorConfig::default()).await;
    assert_eq!(
        (report.confirmed, report.confirm_failed),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(status(&store, &ok).await, OrderStatus::Cancelled);
    assert_eq!(status(&store, &refused).await, OrderStatus::Active);
}

/// What the chain's ValidateBasic refuses is refused before the record, with its code.
#[cfg(feature = "recording")]
#[tokio::test]
async fn orders_the_chain_would_refuse_are_not_recorded() {
    use dydx_proto::dydxprotocol::clob::order::{ConditionType, TimeInForce};
    let store = Arc::new(FlakyStore::default());
    let mut gw = gateway();
    gw.expect_place().times(0);
    let c = client(gw, store.clone());
    let gt = stateful_gt();
    let conditional = |o: &mut Order| {
        o.condition_type = ConditionType::StopLoss as i32;
        o.conditional_order_trigger_subticks = 90_000;
    };
    let cases: Vec<(Order, u32)> = vec![
        (built_order(&oid(20, 32), Some(gt)), 6000),
        (
            {
                let mut o = built_order(&oid(21, 32), Some(gt));
                o.condition_type = ConditionType::StopLoss as i32;
                o
            },
            6001,
        ),
        (
            {
                let mut o = built_order(&oid(22, 0), Some(GoodTil::Block(120)));
                o.condition_type = ConditionType::TakeProfit as i32;
                o
            },
            6000,
        ),
        (
            {
                let mut o = built_order(&oid(23, 0), Some(GoodTil::Block(120)));
                o.time_in_force = TimeInForce::FillOrKill as i32;
                o
            },
            48,
        ),
        (
            {
                let mut o = built_order(&oid(24, 0), Some(GoodTil::Block(120)));
                o.reduce_only = true;
                o
            },
            9003,
        ),
        (
            {
                let mut o = built_order(&oid(25, 64), Some(gt));
                o.time_in_force = TimeInForce::Ioc as i32;
                o
            },
            3002,
        ),
        (
            {
                let mut o = built_order(&oid(26, 64), Some(gt));
                conditional(&mut o);
                o
            },
            6000,
        ),
    ];
    for (order, code) in cases {
        match c.place_order(order, details()).await {
            Err(PlaceError::Invalid { order_id, error }) => {
                assert_eq!((error.codespace.as_str(), error.code), ("clob", code));
                assert!(store.get(&order_id).await.expect("get").is_none());
            }
            other => panic!("code {code}: {other:?}"),
        }
    }
    assert!(store.inner.is_empty(), "nothing recorded");
}
