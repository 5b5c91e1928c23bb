//! The rules: one report at a time, duplicates, every order of an order's messages, import.

use super::*;
use crate::RolloutScope;
use crate::indexer::apply::{Applied, raised_fill};

#[test]
fn the_indexer_id_is_the_indexers_uuid() {
    // The same identity always gives the same v5 UUID; any field changes it.
    let a = indexer_order_id(&id(1));
    assert_eq!(a, indexer_order_id(&id(1)));
    assert_eq!(a.len(), 36);
    assert_eq!(a.as_bytes()[14], b'5', "version 5: {a}");
    for other in [
        OrderId {
            client_id: 2,
            ..id(1)
        },
        OrderId {
            order_flags: 64,
            ..id(1)
        },
        OrderId {
            clob_pair_id: 1,
            ..id(1)
        },
        OrderId {
            subaccount_number: 1,
            ..id(1)
        },
    ] {
        assert_ne!(indexer_order_id(&other), a);
    }
    assert_eq!(
        indexer_subaccount_id(ME, 0),
        uuid::Uuid::new_v5(&INDEXER_UUID_NAMESPACE, format!("{ME}-0").as_bytes()).to_string()
    );
}

#[test]
fn fills_only_ever_rise() {
    assert_eq!(raised_fill(None, Some("0.5")), Some("0.5".into()));
    assert_eq!(raised_fill(None, Some("0")), None);
    assert_eq!(
        raised_fill(Some("0.5"), Some("0.50")),
        None,
        "equal as decimals"
    );
    assert_eq!(raised_fill(Some("0.5"), Some("0.4")), None);
    assert_eq!(raised_fill(Some("0.5"), Some("0.75")), Some("0.75".into()));
    assert_eq!(
        raised_fill(Some("9"), Some("10")),
        Some("10".into()),
        "not as text"
    );
    assert_eq!(raised_fill(Some("0.5"), Some("garbage")), None);
    assert_eq!(raised_fill(Some("garbage"), Some("1")), Some("1".into()));
    assert_eq!(raised_fill(Some("1"), None), None);
}

#[tokio::test]
async fn each_report_moves_the_record_through_the_state_machine() {
    use IndexerOrderStatus as I;
    use OrderStatus as S;
    let cases: &[(S, I, S)] = &[
        (S::Pending, I::Open, S::Active),
        (S::Pending, I::Untriggered, S::Active),
        (S::Active, I::Open, S::Active),
        (S::Active, I::Filled, S::Filled),
        (S::Cancelling, I::Filled, S::Filled),
        (S::Cancelled, I::Filled, S::Filled),
        (S::Expired, I::Filled, S::Filled),
        (S::Failed, I::Filled, S::Failed),
        (S::Active, I::Canceled, S::Cancelled),
        (S::Pending, I::Canceled, S::Cancelled),
        (S::Cancelling, I::Canceled, S::Cancelled),
        (S::Filled, I::Canceled, S::Filled),
        (S::Expired, I::Canceled, S::Expired),
        (S::Active, I::BestEffortCanceled, S::Cancelled),
        (S::Pending, I::BestEffortCanceled, S::Cancelled),
        (S::Cancelling, I::BestEffortCanceled, S::Cancelling),
        (S::Cancelled, I::Open, S::Cancelled),
        (S::Filled, I::Open, S::Filled),
    ];
    for (n, &(from, said, want)) in cases.iter().enumerate() {
        let store = Arc::new(MemoryStore::new());
        let c = client(store.clone());
        let key = seed(&store, n as u32, from).await;
        c.apply_indexer_order(&report(n as u32, said, "0"), None, true)
            .await
            .expect("apply");
        let m = get(&store, &key).await;
        assert_eq!(m.status, want, "{from} + {said}");
        let confirmed =
            said == I::Canceled && matches!(from, S::Pending | S::Active | S::Cancelling);
        assert_eq!(
            m.cancel_confirmed_at.is_some(),
            confirmed,
            "{from} + {said}"
        );
        if from != S::Failed {
            assert_eq!(
                m.indexer_id,
                Some(indexer_order_id(&id(n as u32))),
                "{from} + {said}"
            );
        }
    }
}

#[tokio::test]
async fn a_placement_in_flight_activates_its_own_record() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    let key = seed_at(&store, 1, OrderStatus::Pending, now()).await;
    let open = report(1, IndexerOrderStatus::BestEffortOpened, "0");
    c.apply_indexer_order(&open, None, true)
        .await
        .expect("apply");
    let m = get(&store, &key).await;
    assert_eq!(m.status, OrderStatus::Pending, "left to the placement");
    assert_eq!(m.indexer_id, Some(indexer_order_id(&id(1))));
    // A fill is a fact the placement cannot know: recorded at once.
    c.apply_indexer_order(&report(1, IndexerOrderStatus::Filled, "1"), None, true)
        .await
        .expect("apply");
    assert_eq!(get(&store, &key).await.status, OrderStatus::Filled);
}

#[tokio::test]
async fn a_cancel_that_lost_the_race_ends_filled() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    let key = seed(&store, 1, OrderStatus::Active).await;
    // Our cancel was accepted by the node (best effort) …
    store
        .transition(
            &TransitionRequest::new(&key, &[OrderStatus::Active], OrderStatus::Cancelled)
                .reason("cancel accepted"),
        )
        .await
        .expect("cancel");
    // … but the order filled first.
    let applied = c
        .apply_indexer_order(&report(1, IndexerOrderStatus::Filled, "1"), None, true)
        .await
        .expect("apply");
    assert_eq!(applied, Applied::Filled);
    let m = get(&store, &key).await;
    assert_eq!(m.status, OrderStatus::Filled);
    assert_eq!(m.filled_quantity.as_deref(), Some("1"));
    assert!(m.cancel_confirmed_at.is_none());
}

#[tokio::test]
async fn expiry_is_told_from_a_cancel() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    // The feed says why.
    let key = seed(&store, 1, OrderStatus::Active).await;
    let mut r = report(1, IndexerOrderStatus::Canceled, "0");
    r.removal_reason = Some("ORDER_REMOVAL_REASON_EXPIRED".into());
    c.apply_indexer_order(&r, None, true).await.expect("apply");
    assert_eq!(get(&store, &key).await.status, OrderStatus::Expired);
    // REST does not: the indexer's clock past the good-til does.
    let key = seed(&store, 2, OrderStatus::Active).await;
    let clock = IndexerClock {
        height: 500,
        time: now(),
    };
    c.apply_indexer_order(
        &report(2, IndexerOrderStatus::Canceled, "0"),
        Some(clock),
        true,
    )
    .await
    .expect("apply");
    assert_eq!(get(&store, &key).await.status, OrderStatus::Expired);
    // Before the good-til it was a cancel.
    let key = seed(&store, 3, OrderStatus::Active).await;
    let clock = IndexerClock {
        height: 499,
        ..clock
    };
    c.apply_indexer_order(
        &report(3, IndexerOrderStatus::Canceled, "0"),
        Some(clock),
        true,
    )
    .await
    .expect("apply");
    assert_eq!(get(&store, &key).await.status, OrderStatus::Cancelled);
}

/// Every order of the messages of one order's life — partial fills, then the fill; or a
/// partial fill, then the cancel — ends in the same record, and a second delivery of the
/// whole sequence changes nothing.
#[tokio::test]
async fn duplicated_and_reordered_messages_change_nothing_wrongly() {
    use IndexerOrderStatus as I;
    // (the reports of one life, the final status, the final filled quantity)
    type Life = (Vec<(I, &'static str)>, OrderStatus, &'static str);
    let lives: [Life; 2] = [
        (
            vec![
                (I::Open, "0"),
                (I::Open, "0.2"),
                (I::Open, "0.6"),
                (I::Filled, "1"),
            ],
            OrderStatus::Filled,
            "1",
        ),
        (
            vec![(I::Open, "0"), (I::Open, "0.3"), (I::Canceled, "0.3")],
            OrderStatus::Cancelled,
            "0.3",
        ),
    ];
    for (life, want, filled) in lives {
        for perm in permutations(life.len()) {
            let store = Arc::new(MemoryStore::new());
            let c = client(store.clone());
            let key = seed(&store, 7, OrderStatus::Active).await;
            for round in 0..2 {
                for &i in &perm {
                    let (status, f) = life[i];
                    c.apply_indexer_order(&report(7, status, f), None, true)
                        .await
                        .expect("apply");
                }
                let m = get(&store, &key).await;
                assert_eq!(m.status, want, "order {perm:?}, round {round}");
                assert_eq!(m.filled_quantity.as_deref(), Some(filled), "order {perm:?}");
            }
            // The second round wrote nothing.
            let before = get(&store, &key).await.version;
            for &i in &perm {
                let (status, f) = life[i];
                let applied = c
                    .apply_indexer_order(&report(7, status, f), None, true)
                    .await
                    .expect("apply");
                assert_eq!(applied, Applied::Unchanged, "order {perm:?}");
            }
            assert_eq!(get(&store, &key).await.version, before);
        }
    }
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn go(prefix: &mut Vec<usize>, n: usize, out: &mut Vec<Vec<usize>>) {
        if prefix.len() == n {
            out.push(prefix.clone());
            return;
        }
        for i in 0..n {
            if !prefix.contains(&i) {
                prefix.push(i);
                go(prefix, n, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(&mut Vec::new(), n, &mut out);
    out
}

#[tokio::test]
async fn open_orders_without_a_record_are_imported_once() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    let r = report(11, IndexerOrderStatus::Open, "0.25");
    assert_eq!(
        c.apply_indexer_order(&r, None, true).await.expect("apply"),
        Applied::Imported
    );
    let key = order_key(&id(11), GTB);
    let m = get(&store, &key).await;
    assert_eq!(m.status, OrderStatus::Active);
    assert_eq!(m.dydx_order_id, id(11));
    assert_eq!(m.good_til, GTB);
    assert_eq!(m.filled_quantity.as_deref(), Some("0.25"));
    assert_eq!(
        m.history[0].reason.as_deref(),
        Some("imported from the indexer (OPEN)")
    );
    assert_eq!(
        c.apply_indexer_order(&r, None, true).await.expect("apply"),
        Applied::Unchanged
    );
    // Not without import, not when ended, not out of the rollout scope, not another owner's.
    let none = [
        (report(12, IndexerOrderStatus::Open, "0"), false),
        (report(13, IndexerOrderStatus::Filled, "1"), true),
    ];
    for (r, import) in none {
        assert_eq!(
            c.apply_indexer_order(&r, None, import)
                .await
                .expect("apply"),
            Applied::Unknown
        );
    }
    let mut theirs = report(14, IndexerOrderStatus::Open, "0");
    theirs.order_id.owner = "dydx1zg69v7ys40x77y352eufp27daufrg4nc6twx7h".into();
    assert_eq!(
        c.apply_indexer_order(&theirs, None, true)
            .await
            .expect("apply"),
        Applied::Unknown
    );
    c.recording().set_scope(RolloutScope::clob_pairs([5]));
    assert_eq!(
        c.apply_indexer_order(&report(15, IndexerOrderStatus::Open, "0"), None, true)
            .await
            .expect("apply"),
        Applied::Unknown
    );
    assert_eq!(
        store
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn a_short_term_order_the_indexer_forgot_was_removed() {
    let store = Arc::new(MemoryStore::new());
    let c = client(store.clone());
    // Seen by the indexer once (its id stored), then gone from it entirely.
    let seen = seed(&store, 1, OrderStatus::Active).await;
    c.apply_indexer_order(&report(1, IndexerOrderStatus::Open, "0"), None, true)
        .await
        .expect("apply");
    let m = get(&store, &seen).await;
    assert_eq!(m.indexer_id, Some(indexer_order_id(&id(1))));
    let clock = IndexerClock {
        height: 100,
        time: now(),
    };
    assert_eq!(
        c.settle_absent(&m, Some(clock)).await.expect("settle"),
        Some(Applied::Cancelled)
    );
    let m = get(&store, &seen).await;
    assert_eq!(m.status, OrderStatus::Cancelled);
    assert!(m.cancel_confirmed_at.is_some(), "absent from the book");
    // Past its good-til: expired.
    let late = seed(&store, 2, OrderStatus::Active).await;
    c.apply_indexer_order(&report(2, IndexerOrderStatus::Open, "0"), None, true)
        .await
        .expect("apply");
    let m = get(&store, &late).await;
    let clock = IndexerClock {
        height: 500,
        ..clock
    };
    assert_eq!(
        c.settle_absent(&m, Some(clock)).await.expect("settle"),
        Some(Applied::Expired)
    );
    // Never seen by the indexer (it may lag): left alone.
    let unseen = seed(&store, 3, OrderStatus::Active).await;
    let m = get(&store, &unseen).await;
    assert_eq!(c.settle_absent(&m, None).await.expect("settle"), None);
    assert_eq!(get(&store, &unseen).await.status, OrderStatus::Active);
    // A stateful order always has a row on the indexer: absence proves nothing.
    let mut stateful = get(&store, &unseen).await;
    stateful.dydx_order_id.order_flags = 64;
    stateful.indexer_id = Some("x".into());
    assert_eq!(
        c.settle_absent(&stateful, None).await.expect("settle"),
        None
    );
}
