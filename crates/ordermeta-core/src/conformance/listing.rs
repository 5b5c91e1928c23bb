//! `list`: keyset paging and filters.

use super::fixtures::{OWNER_A, OWNER_B, short_term};
use crate::status::OrderStatus;
use crate::store::{ListQuery, MetadataStore, MetadataStoreExt};

/// Keyset paging visits every matching record exactly once, in byte order.
pub async fn paging(store: &dyn MetadataStore) {
    let statuses = [
        OrderStatus::Active,
        OrderStatus::Pending,
        OrderStatus::Filled,
    ];
    let mut all = Vec::new();
    for i in 0..25u32 {
        // Out-of-order ids and a mixed-case one exercise byte ordering.
        let id = format!(
            "{}page-{:03}",
            if i % 5 == 0 { "P" } else { "p" },
            (i * 7) % 25
        );
        all.push(short_term(&id, statuses[(i % 3) as usize], i));
    }
    store.record_many(&all).await.expect("record_many");
    let mut ids: Vec<String> = all.iter().map(|m| m.order_id.clone()).collect();
    ids.sort();

    for limit in [1u32, 7, 25, 26, 1000] {
        let mut seen = Vec::new();
        let mut q = ListQuery {
            limit,
            ..ListQuery::default()
        };
        let mut pages = 0;
        loop {
            let page = store.list(&q).await.expect("list");
            pages += 1;
            assert!(page.items.len() <= limit as usize);
            assert!(page.invalid.is_empty());
            seen.extend(page.items.iter().map(|m| m.order_id.clone()));
            match page.next {
                Some(next) => {
                    assert_eq!(
                        Some(&next),
                        seen.last(),
                        "cursor is the last id of the page"
                    );
                    q.after = Some(next);
                }
                None => break,
            }
            assert!(pages <= 30, "paging does not terminate");
        }
        assert_eq!(seen, ids, "limit {limit}");
        assert_eq!(
            pages,
            ids.len().div_ceil(limit as usize).max(1),
            "limit {limit}"
        );
    }
    // Limit 0 is clamped to 1.
    let page = store
        .list(&ListQuery {
            limit: 0,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    // A cursor that is not an id still works (strictly greater).
    let page = store
        .list(&ListQuery::default().after("p"))
        .await
        .expect("list");
    assert!(page.items.iter().all(|m| m.order_id.as_str() > "p"));
    assert_eq!(
        page.items.len(),
        ids.iter().filter(|i| i.as_str() > "p").count()
    );
    // Filtered paging.
    let q = ListQuery {
        statuses: vec![OrderStatus::Active],
        limit: 3,
        ..ListQuery::default()
    };
    let got = store.list_all(&q).await.expect("list_all");
    let want: Vec<_> = ids
        .iter()
        .filter(|i| {
            all.iter()
                .any(|m| &&m.order_id == i && m.status == OrderStatus::Active)
        })
        .cloned()
        .collect();
    assert_eq!(
        got.items
            .iter()
            .map(|m| m.order_id.clone())
            .collect::<Vec<_>>(),
        want
    );
}

/// Filters by status set, owner, subaccount and symbol, alone and combined.
pub async fn list_filters(store: &dyn MetadataStore) {
    let mut recs = Vec::new();
    for i in 0..12u32 {
        let mut m = short_term(&format!("f-{i:02}"), OrderStatus::ALL[(i % 7) as usize], i);
        if i % 2 == 1 {
            m.dydx_order_id.owner = OWNER_B.to_owned();
        }
        m.dydx_order_id.subaccount_number = i % 3;
        m.symbol = if i % 4 == 0 { "ΞTH-USD" } else { "BTC-USD" }.to_owned();
        recs.push(m);
    }
    store.record_many(&recs).await.expect("record_many");
    let queries = [
        ListQuery {
            statuses: vec![OrderStatus::Active, OrderStatus::Pending],
            ..ListQuery::default()
        },
        ListQuery {
            owner: Some(OWNER_B.to_owned()),
            ..ListQuery::default()
        },
        ListQuery {
            subaccount_number: Some(2),
            ..ListQuery::default()
        },
        ListQuery {
            symbol: Some("ΞTH-USD".to_owned()),
            ..ListQuery::default()
        },
        ListQuery {
            owner: Some(OWNER_A.to_owned()),
            subaccount_number: Some(0),
            symbol: Some("ΞTH-USD".to_owned()),
            ..ListQuery::default()
        },
        ListQuery {
            owner: Some("dydx1nobody".to_owned()),
            ..ListQuery::default()
        },
    ];
    for q in queries {
        let got = store.list(&q).await.expect("list");
        let want: Vec<_> = recs.iter().filter(|m| q.matches(m)).cloned().collect();
        assert_eq!(got.items, want, "{q:?}");
        assert_eq!(got.next, None);
    }
}
