//! One bad row is one order's problem: rows that ordermeta did not write (an operator's
//! UPDATE, a restore, another tool), each written straight with SQL, give a typed error for
//! that order only; every other order stays readable, claimable, expirable and purgeable.
//! (The table is STRICT: a value of the wrong type cannot be stored, so the cases are values
//! of the right type that mean nothing.)

use chrono::{Duration as ChronoDuration, Utc};
use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    ErrorKind, ExpireRequest, Lease, ListQuery, MetadataStore, MetadataStoreExt, OrderStatus,
    StoreError,
};
use ordermeta_sqlite::{SqliteStore, sqlx};

/// What the store must answer for a corrupt row.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reads {
    /// `get` is `InvalidMetadata` naming it and `list` reports it in `invalid`.
    Invalid,
    /// The row decodes (e.g. a version at its maximum), but cannot change.
    Stuck,
}

struct Case {
    id: &'static str,
    /// Applied to the recorded (active, good-til-block 100) row `id`.
    sql: &'static str,
    reads: Reads,
    /// Whether a claim must be refused with `InvalidMetadata` (otherwise a claim that
    /// rewrites the broken columns may repair the row; it must never be `Backend`).
    claim_refused: bool,
}

const CASES: &[Case] = &[
    Case {
        id: "bad-base64",
        sql: "UPDATE dydx_order_metadata SET dydx_order_id = '!!not base64!!' WHERE order_id = 'bad-base64'",
        reads: Reads::Invalid,
        claim_refused: true,
    },
    Case {
        id: "bad-status",
        sql: "UPDATE dydx_order_metadata SET status = 'bogus' WHERE order_id = 'bad-status'",
        reads: Reads::Invalid,
        claim_refused: true,
    },
    Case {
        id: "bad-height",
        sql: "UPDATE dydx_order_metadata SET good_until_block = -5 WHERE order_id = 'bad-height'",
        reads: Reads::Invalid,
        claim_refused: true,
    },
    Case {
        id: "bad-version-max",
        sql: "UPDATE dydx_order_metadata SET version = 9223372036854775807 \
              WHERE order_id = 'bad-version-max'",
        reads: Reads::Stuck,
        claim_refused: true,
    },
    Case {
        id: "bad-half-lease",
        sql: "UPDATE dydx_order_metadata SET lease_token = 'someone' \
              WHERE order_id = 'bad-half-lease'",
        reads: Reads::Invalid,
        claim_refused: false,
    },
    Case {
        id: "bad-lease-active",
        sql: "UPDATE dydx_order_metadata SET lease_token = 'someone', \
              lease_until = 4102444800000000 WHERE order_id = 'bad-lease-active'",
        reads: Reads::Invalid,
        claim_refused: true,
    },
    Case {
        id: "bad-lease-range",
        sql: "UPDATE dydx_order_metadata SET status = 'cancelling', lease_token = 'someone', \
              lease_until = -9223372036854775808 WHERE order_id = 'bad-lease-range'",
        reads: Reads::Invalid,
        claim_refused: false,
    },
    Case {
        id: "bad-history",
        sql: "UPDATE dydx_order_metadata SET history = '{not json' WHERE order_id = 'bad-history'",
        reads: Reads::Invalid,
        claim_refused: true,
    },
    Case {
        id: "bad-placed-at",
        sql: "UPDATE dydx_order_metadata SET placed_at = 9223372036854775807 \
              WHERE order_id = 'bad-placed-at'",
        reads: Reads::Invalid,
        claim_refused: true,
    },
];

/// The id of the row whose `order_id` is rewritten to bytes that are not UTF-8.
const NON_UTF8: &str = "bad-utf8";
const NON_UTF8_SQL: &str = "UPDATE dydx_order_metadata SET order_id = CAST(X'6261642d757466382dff' AS TEXT) \
     WHERE order_id = 'bad-utf8'";

const GOOD: [&str; 4] = ["a-good", "m-good", "t-good", "z-good"];

async fn exec(store: &SqliteStore, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn assert_invalid_for(r: &Result<impl std::fmt::Debug, StoreError>, id: &str, what: &str) {
    match r {
        Err(StoreError::InvalidMetadata {
            order_id: Some(named),
            ..
        }) if named == id => {}
        other => panic!("{what} of {id}: expected InvalidMetadata naming it, got {other:?}"),
    }
}

#[tokio::test]
async fn each_corrupt_row_is_its_own_orders_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("corrupt.db"))
        .await
        .expect("open");
    for id in GOOD
        .iter()
        .copied()
        .chain(CASES.iter().map(|c| c.id))
        .chain([NON_UTF8])
    {
        store
            .record(&short_term(id, OrderStatus::Active, 100))
            .await
            .expect("record");
    }
    for c in CASES {
        exec(&store, c.sql).await;
    }
    exec(&store, NON_UTF8_SQL).await;
    let lossy = String::from_utf8_lossy(b"bad-utf8-\xff").into_owned();

    // list: every good order listed, every corrupt one reported (by a lossy id if need be),
    // at every page size (a page must never end on a cursor that skips or repeats).
    for limit in [1, 2, 3, 100] {
        let page = store
            .list_all(&ListQuery {
                limit,
                ..ListQuery::default()
            })
            .await
            .unwrap_or_else(|e| panic!("list (limit {limit}): {e}"));
        let listed: Vec<&str> = page.items.iter().map(|m| m.order_id.as_str()).collect();
        let invalid: Vec<&str> = page.invalid.iter().map(|r| r.order_id.as_str()).collect();
        for g in GOOD {
            assert_eq!(
                listed.iter().filter(|l| **l == g).count(),
                1,
                "{g} at {limit}"
            );
        }
        for c in CASES {
            let (in_items, in_invalid) = match c.reads {
                Reads::Invalid => (0, 1),
                Reads::Stuck => (1, 0),
            };
            assert_eq!(
                listed.iter().filter(|l| **l == c.id).count(),
                in_items,
                "{}",
                c.id
            );
            assert_eq!(
                invalid.iter().filter(|l| **l == c.id).count(),
                in_invalid,
                "{}",
                c.id
            );
        }
        assert_eq!(
            invalid.iter().filter(|l| **l == lossy).count(),
            1,
            "{invalid:?}"
        );
        assert_eq!(
            listed.len() + invalid.len(),
            GOOD.len() + CASES.len() + 1,
            "limit {limit}"
        );
    }

    // get and claim: a typed error naming that order, never a Backend error or a panic.
    let now = Utc::now();
    for c in CASES {
        let got = store.get(c.id).await;
        match c.reads {
            Reads::Invalid => assert_invalid_for(&got, c.id, "get"),
            Reads::Stuck => assert!(matches!(got, Ok(Some(_))), "get {}: {got:?}", c.id),
        }
        let lease = Lease::new("canceller", now + ChronoDuration::seconds(30));
        let claimed = store
            .claim(
                c.id,
                &[OrderStatus::Active, OrderStatus::Cancelling],
                lease,
                now,
            )
            .await;
        if c.claim_refused {
            assert_invalid_for(&claimed, c.id, "claim");
        } else if let Err(e) = &claimed {
            assert_eq!(
                e.kind(),
                ErrorKind::InvalidMetadata,
                "claim {}: {e:?}",
                c.id
            );
        }
    }

    // The good orders: claimable, expirable, purgeable.
    store
        .claim_for_cancel("a-good")
        .await
        .expect("claim a-good");
    let n = store
        .expire(&ExpireRequest::new(Some(200), None))
        .await
        .expect("expire goes on past the corrupt rows");
    assert!(n >= GOOD.len() as u64, "expired {n}");
    for g in GOOD {
        assert_eq!(
            store.get_required(g).await.expect("get").status,
            OrderStatus::Expired,
            "{g}"
        );
    }
    // The row whose version cannot be bumped is left as it was (and logged).
    let stuck = store.get_required("bad-version-max").await.expect("get");
    assert_eq!(stuck.status, OrderStatus::Active);
    assert_eq!(stuck.version, i64::MAX as u64);
    // A second sweep still works (the stuck row does not fail every sweep for ever).
    store
        .expire(&ExpireRequest::new(Some(300), None))
        .await
        .expect("second expire");

    store
        .purge(Utc::now() + ChronoDuration::days(1))
        .await
        .expect("purge goes on past the corrupt rows");
    for g in GOOD {
        assert!(store.get(g).await.expect("get").is_none(), "{g} purged");
    }
    store.close().await;
}

/// A store whose every row is corrupt still pages to the end (the cursor advances).
#[tokio::test]
async fn a_page_of_only_non_utf8_ids_still_advances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("utf8.db"))
        .await
        .expect("open");
    for i in 0..5 {
        let id = format!("x{i}");
        store
            .record(&short_term(&id, OrderStatus::Active, 100))
            .await
            .expect("record");
        exec(
            &store,
            &format!(
                "UPDATE dydx_order_metadata SET order_id = CAST(X'{}ff' AS TEXT) \
                 WHERE order_id = '{id}'",
                id.bytes().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        )
        .await;
    }
    let page = store
        .list_all(&ListQuery {
            limit: 2,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert!(page.items.is_empty());
    assert_eq!(page.invalid.len(), 5, "{:?}", page.invalid);
    store.close().await;
}
