//! One bad row is one order's problem: rows that ordermeta did not write (an operator's
//! UPDATE, a restore, another tool, a perfectly valid PostgreSQL value such as `'infinity'`),
//! each written straight with SQL, give a typed error for that order only, also through the
//! lookups by client id and label and through `update`; every other order stays readable,
//! claimable, expirable and purgeable.

mod common;

use chrono::{Duration as ChronoDuration, Utc};
use ordermeta_core::conformance::short_term;
use ordermeta_core::{
    ClientIdKey, ErrorKind, ExpireRequest, Lease, ListQuery, MetadataStore, MetadataStoreExt,
    OrderMetadata, OrderStatus, StoreError, UpdateRequest,
};
use ordermeta_postgres::{PgStore, PgStoreOptions, sqlx};

use common::{drop_store, fresh_store};

/// What the store must answer for a corrupt row.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reads {
    /// `get` is `InvalidMetadata` naming it and `list` reports it in `invalid`.
    Invalid,
    /// The row decodes (e.g. a version at its maximum), but cannot change.
    Stuck,
    /// An odd but representable value (a time in 4713 BC): read as stored.
    Valid,
}

struct Case {
    id: &'static str,
    /// Applied to the recorded (active, good-til-block 100, own client id, label `lbl-<id>`)
    /// row `id`; `{t}` is the table. Cases named `bad-label-…` overwrite the label itself.
    sql: &'static str,
    reads: Reads,
    /// Whether an `update` of the filled quantity must be refused with `InvalidMetadata`
    /// (otherwise an update that rewrites the broken column may repair the row; it must never
    /// be `Backend`). It runs before the claim.
    update_refused: bool,
    /// Likewise for a claim.
    claim_refused: bool,
}

const CASES: &[Case] = &[
    Case {
        id: "bad-base64",
        sql: "UPDATE {t} SET dydx_order_id = '!!not base64!!' WHERE order_id = 'bad-base64'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-status",
        sql: "UPDATE {t} SET status = 'bogus' WHERE order_id = 'bad-status'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-height",
        sql: "UPDATE {t} SET good_until_block = -5 WHERE order_id = 'bad-height'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-version-max",
        sql: "UPDATE {t} SET version = 9223372036854775807 WHERE order_id = 'bad-version-max'",
        reads: Reads::Stuck,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-half-lease",
        sql: "UPDATE {t} SET lease_token = 'someone' WHERE order_id = 'bad-half-lease'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: false,
    },
    Case {
        id: "bad-lease-active",
        sql: "UPDATE {t} SET lease_token = 'someone', lease_until = now() + interval '1 hour' WHERE order_id = 'bad-lease-active'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-history",
        sql: "UPDATE {t} SET history = '{\"not\": \"a history\"}' WHERE order_id = 'bad-history'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-history-scalar",
        sql: "UPDATE {t} SET history = '\"text\"' WHERE order_id = 'bad-history-scalar'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-placed-inf",
        sql: "UPDATE {t} SET placed_at = 'infinity' WHERE order_id = 'bad-placed-inf'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-updated-neginf",
        sql: "UPDATE {t} SET updated_at = '-infinity' WHERE order_id = 'bad-updated-neginf'",
        reads: Reads::Invalid,
        // The update writes updated_at: the row is whole again.
        update_refused: false,
        claim_refused: false,
    },
    Case {
        id: "bad-cancelled-inf",
        sql: "UPDATE {t} SET cancelled_at = 'infinity' WHERE order_id = 'bad-cancelled-inf'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-placed-far",
        sql: "UPDATE {t} SET placed_at = '290000-01-01 00:00:00+00' WHERE order_id = 'bad-placed-far'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "odd-placed-bc",
        sql: "UPDATE {t} SET placed_at = '4713-01-01 00:00:00+00 BC' WHERE order_id = 'odd-placed-bc'",
        reads: Reads::Valid,
        update_refused: false,
        claim_refused: false,
    },
    Case {
        id: "bad-lease-inf",
        sql: "UPDATE {t} SET status = 'cancelling', lease_token = 'someone', lease_until = 'infinity' WHERE order_id = 'bad-lease-inf'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-lease-neginf",
        sql: "UPDATE {t} SET status = 'cancelling', lease_token = 'someone', lease_until = '-infinity' WHERE order_id = 'bad-lease-neginf'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: false,
    },
    Case {
        id: "bad-label-empty",
        sql: "UPDATE {t} SET label = '' WHERE order_id = 'bad-label-empty'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-label-control",
        sql: "UPDATE {t} SET label = E'a\\nb' WHERE order_id = 'bad-label-control'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-label-long",
        sql: "UPDATE {t} SET label = repeat('x', 129) WHERE order_id = 'bad-label-long'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-indexer-id",
        sql: "UPDATE {t} SET indexer_id = 'has space' WHERE order_id = 'bad-indexer-id'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-filled",
        sql: "UPDATE {t} SET filled_quantity = '1e3' WHERE order_id = 'bad-filled'",
        reads: Reads::Invalid,
        // The update writes a valid quantity over it: the row is whole again.
        update_refused: false,
        claim_refused: false,
    },
    Case {
        id: "bad-cancel-confirmed-inf",
        sql: "UPDATE {t} SET cancel_confirmed_at = 'infinity' WHERE order_id = 'bad-cancel-confirmed-inf'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
    Case {
        id: "bad-cancel-confirmed-far",
        sql: "UPDATE {t} SET cancel_confirmed_at = '290000-01-01 00:00:00+00' WHERE order_id = 'bad-cancel-confirmed-far'",
        reads: Reads::Invalid,
        update_refused: true,
        claim_refused: true,
    },
];

const GOOD: [&str; 4] = ["a-good", "m-good", "t-good", "z-good"];

/// The record of row `i`: its own client id (so that `find_by_client_id` finds exactly it)
/// and its own label.
fn record(id: &str, i: u32) -> OrderMetadata {
    let mut m = short_term(id, OrderStatus::Active, 100).with_label(format!("lbl-{id}"));
    m.dydx_order_id.client_id = 1_000 + i;
    m
}

async fn exec(store: &PgStore, sql: &str) {
    let sql = sql.replace("{t}", &store.table());
    sqlx::raw_sql(&sql)
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
    let store = fresh_store("corrupt", PgStoreOptions::new()).await;
    let records: Vec<OrderMetadata> = GOOD
        .iter()
        .copied()
        .chain(CASES.iter().map(|c| c.id))
        .zip(0..)
        .map(|(id, i)| record(id, i))
        .collect();
    store.record_many(&records).await.expect("record");
    let key_of = |id: &str| {
        let m = records.iter().find(|m| m.order_id == id).expect("recorded");
        ClientIdKey::of(m)
    };
    for c in CASES {
        exec(&store, c.sql).await;
    }

    // list: every good order listed, every corrupt one reported,
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
                Reads::Stuck | Reads::Valid => (1, 0),
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
            listed.len() + invalid.len(),
            GOOD.len() + CASES.len(),
            "limit {limit}"
        );
    }

    // The lookups find the good records.
    for g in GOOD {
        let found = store.find_by_client_id(&key_of(g)).await.expect("find");
        assert_eq!(found.map(|m| m.order_id).as_deref(), Some(g));
        let found = store
            .find_by_label(&format!("lbl-{g}"))
            .await
            .expect("find");
        assert_eq!(found.map(|m| m.order_id).as_deref(), Some(g));
    }

    // get, the lookups, update and claim: a typed error naming that order, never a Backend
    // error or a panic.
    let now = Utc::now();
    for c in CASES {
        let got = store.get(c.id).await;
        let by_key = store.find_by_client_id(&key_of(c.id)).await;
        let by_label = store.find_by_label(&format!("lbl-{}", c.id)).await;
        match c.reads {
            Reads::Invalid => {
                assert_invalid_for(&got, c.id, "get");
                assert_invalid_for(&by_key, c.id, "find_by_client_id");
                if c.id.starts_with("bad-label") {
                    assert!(matches!(by_label, Ok(None)), "{}: {by_label:?}", c.id);
                } else {
                    assert_invalid_for(&by_label, c.id, "find_by_label");
                }
            }
            Reads::Stuck | Reads::Valid => {
                assert!(matches!(got, Ok(Some(_))), "get {}: {got:?}", c.id);
                assert!(matches!(by_key, Ok(Some(_))), "{}: {by_key:?}", c.id);
                assert!(matches!(by_label, Ok(Some(_))), "{}: {by_label:?}", c.id);
            }
        }
        let updated = store
            .update(&UpdateRequest::new(c.id).filled_quantity("0.0005"))
            .await;
        if c.update_refused {
            assert_invalid_for(&updated, c.id, "update");
        } else if c.reads == Reads::Valid {
            assert!(updated.is_ok(), "update {}: {updated:?}", c.id);
        } else if let Err(e) = &updated {
            assert_eq!(
                e.kind(),
                ErrorKind::InvalidMetadata,
                "update {}: {e:?}",
                c.id
            );
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
    drop_store(store).await;
}
