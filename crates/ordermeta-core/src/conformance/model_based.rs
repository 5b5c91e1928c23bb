//! The model-based property test: random operation sequences run against the store under test
//! and against [`MemoryStore`](crate::MemoryStore) (the model), answer by answer.

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::fixtures::{OWNER_A, OWNER_B, TestStore, long_term, short_term, t0};
use crate::error::{ErrorKind, StoreError};
use crate::model::{Lease, OrderMetadata};
use crate::status::OrderStatus;
use crate::store::{
    ExpireRequest, LeaseCondition, ListQuery, MetadataStore, Page, TransitionRequest,
};

/// One operation of the model-based test.
#[derive(Clone, Debug)]
pub enum Op {
    /// [`MetadataStore::record`].
    Record(OrderMetadata),
    /// [`MetadataStore::record_many`].
    RecordMany(Vec<OrderMetadata>),
    /// [`MetadataStore::get`].
    Get(String),
    /// [`MetadataStore::transition`].
    Transition(TransitionRequest),
    /// [`MetadataStore::list`].
    List(ListQuery),
    /// [`MetadataStore::expire`].
    Expire(ExpireRequest),
    /// [`MetadataStore::purge`].
    Purge(DateTime<Utc>),
}

const IDS: [&str; 6] = ["m-a", "m-b", "m-c", "M-d", "m-é", "m-f/1"];

fn arb_status() -> impl Strategy<Value = OrderStatus> {
    proptest::sample::select(OrderStatus::ALL.to_vec())
}

fn arb_time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..200).prop_map(|s| t0() + Duration::seconds(s))
}

const TOKENS: [&str; 2] = ["tok-1", "tok-2"];

/// A lease on the same clock as [`arb_time`], so claims run out during a sequence.
fn arb_lease() -> impl Strategy<Value = Lease> {
    (proptest::sample::select(TOKENS.to_vec()), arb_time())
        .prop_map(|(token, until)| Lease::new(token, until))
}

fn arb_condition() -> impl Strategy<Value = LeaseCondition> {
    prop_oneof![
        Just(LeaseCondition::Expired),
        proptest::sample::select(TOKENS.to_vec()).prop_map(|t| LeaseCondition::HeldBy(t.into())),
    ]
}

fn arb_record() -> impl Strategy<Value = OrderMetadata> {
    (
        proptest::sample::select(IDS.to_vec()),
        arb_status(),
        any::<bool>(),
        0u32..40,
        proptest::sample::select(vec![OWNER_A, OWNER_B]),
        0u32..3,
        proptest::sample::select(vec!["BTC-USD", "ΞTH-USD"]),
        proptest::option::of(Just("1.5".to_owned())),
        arb_time(),
        proptest::option::of(arb_lease()),
    )
        .prop_map(
            |(id, st, stateful, gt, owner, sub, sym, price, at, lease)| {
                let mut m = if stateful {
                    long_term(id, st, gt)
                } else {
                    short_term(id, st, gt)
                };
                m.dydx_order_id.owner = owner.to_owned();
                m.dydx_order_id.subaccount_number = sub;
                m.symbol = sym.to_owned();
                m.price = price;
                m.placed_at = at;
                m.updated_at = at;
                m.history[0].at = at;
                // Only a cancelling record may hold a lease (anything else is InvalidMetadata,
                // which the record ops also exercise now and then).
                m.lease =
                    lease.filter(|_| st == OrderStatus::Cancelling || at.timestamp() % 17 == 0);
                m
            },
        )
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => arb_record().prop_map(Op::Record),
        1 => proptest::collection::vec(arb_record(), 0..4).prop_map(Op::RecordMany),
        2 => proptest::sample::select(IDS.to_vec()).prop_map(|s| Op::Get(s.to_owned())),
        6 => (
            proptest::sample::select(IDS.to_vec()),
            proptest::collection::vec(arb_status(), 1..3),
            arb_status(),
            arb_time(),
            proptest::option::of("[a-z ]{0,8}"),
            proptest::option::of("[A-F0-9]{4}"),
            proptest::option::of("[A-F0-9]{4}"),
            proptest::option::of(arb_lease()),
            proptest::option::of(arb_condition()),
        )
            .prop_map(|(id, from, to, at, reason, tx, ctx, lease, require)| {
                let mut r = TransitionRequest::new(id, &from, to).at(at);
                r.reason = reason;
                r.tx_hash = tx;
                r.cancel_tx_hash = ctx;
                r.lease = lease;
                r.require = require;
                Op::Transition(r)
            }),
        // Claims and re-claims of stale claims, the lease's whole point.
        3 => (
            proptest::sample::select(IDS.to_vec()),
            any::<bool>(),
            arb_lease(),
            arb_time(),
        )
            .prop_map(|(id, stale, lease, at)| {
                let from: &[OrderStatus] = if stale {
                    &[OrderStatus::Active, OrderStatus::Cancelling]
                } else {
                    &[OrderStatus::Active]
                };
                let mut r = TransitionRequest::new(id, from, OrderStatus::Cancelling)
                    .at(at)
                    .lease(lease);
                if stale {
                    r = r.require_expired_lease();
                }
                Op::Transition(r)
            }),
        2 => (
            proptest::collection::vec(arb_status(), 0..3),
            proptest::option::of(proptest::sample::select(vec![OWNER_A, OWNER_B])),
            proptest::option::of(0u32..3),
            proptest::option::of(proptest::sample::select(vec!["BTC-USD", "ΞTH-USD"])),
            proptest::option::of(proptest::sample::select(IDS.to_vec())),
            0u32..5,
        )
            .prop_map(|(statuses, owner, sub, sym, after, limit)| {
                Op::List(ListQuery {
                    statuses,
                    owner: owner.map(str::to_owned),
                    subaccount_number: sub,
                    symbol: sym.map(str::to_owned),
                    after: after.map(str::to_owned),
                    limit,
                })
            }),
        1 => (proptest::option::of(0u32..45), proptest::option::of(0u32..45), arb_time())
            .prop_map(|(h, t, at)| Op::Expire(ExpireRequest::new(h, t).at(at))),
        1 => arb_time().prop_map(Op::Purge),
    ]
}

/// A store's answer reduced to what must match the model: values, or error kind and the
/// current status of a conflict.
#[derive(Debug, PartialEq)]
enum Answer {
    Unit,
    Got(Option<OrderMetadata>),
    Updated(OrderMetadata),
    Listed(Page),
    Count(u64),
    Error(ErrorKind, Option<OrderStatus>),
}

fn answer<T>(r: Result<T, StoreError>, ok: impl FnOnce(T) -> Answer) -> Answer {
    match r {
        Ok(v) => ok(v),
        Err(e) => Answer::Error(e.kind(), e.current_status()),
    }
}

async fn apply_op(store: &dyn MetadataStore, op: &Op) -> Answer {
    match op {
        Op::Record(m) => answer(store.record(m).await, |_| Answer::Unit),
        Op::RecordMany(ms) => answer(store.record_many(ms).await, |_| Answer::Unit),
        Op::Get(id) => answer(store.get(id).await, Answer::Got),
        Op::Transition(r) => answer(store.transition(r).await, Answer::Updated),
        Op::List(q) => answer(store.list(q).await, Answer::Listed),
        Op::Expire(r) => answer(store.expire(r).await, Answer::Count),
        Op::Purge(t) => answer(store.purge(*t).await, Answer::Count),
    }
}

/// Runs `cases` random operation sequences against a fresh store from `setup` and a
/// [`MemoryStore`](crate::MemoryStore) side by side; every answer must be identical, and so
/// must the final contents. Shrinks to a minimal failing sequence.
///
/// Call it from a plain `#[test]` (it runs its own Tokio runtime). `ORDERMETA_MODEL_CASES`
/// overrides `cases`.
pub fn model_based<S, Fut>(setup: S, cases: u32)
where
    S: Fn() -> Fut,
    Fut: Future<Output = TestStore>,
{
    let cases = std::env::var("ORDERMETA_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime for the model-based test");
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(arb_op(), 1..40), |ops| {
        rt.block_on(async {
            let under_test = setup().await;
            let model = crate::MemoryStore::new();
            let mut failure = None;
            under_test
                .run(|store| {
                    let (model, ops, failure) = (&model, &ops, &mut failure);
                    async move {
                        *failure = compare(&*store, model, ops).await.err();
                    }
                })
                .await;
            match failure {
                Some(msg) => Err(TestCaseError::fail(msg)),
                None => Ok(()),
            }
        })
    });
    if let Err(e) = result {
        panic!("store and MemoryStore disagree: {e}");
    }
}

async fn compare(
    store: &dyn MetadataStore,
    model: &dyn MetadataStore,
    ops: &[Op],
) -> Result<(), String> {
    for (i, op) in ops.iter().enumerate() {
        let got = apply_op(store, op).await;
        let want = apply_op(model, op).await;
        if got != want {
            return Err(format!(
                "op #{i} {op:?}: store answered {got:?}, model {want:?}"
            ));
        }
    }
    let q = ListQuery {
        limit: crate::store::MAX_PAGE_SIZE,
        ..ListQuery::default()
    };
    let got = store.list(&q).await.map_err(|e| e.to_string())?;
    let want = model.list(&q).await.map_err(|e| e.to_string())?;
    if got != want {
        return Err(format!(
            "final contents differ: store {got:?}, model {want:?}"
        ));
    }
    let ids: BTreeSet<_> = got.items.iter().map(|m| m.order_id.clone()).collect();
    if ids.len() != got.items.len() {
        return Err("list returned an id twice".to_owned());
    }
    Ok(())
}
