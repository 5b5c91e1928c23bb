//! The end of the soak: every record against the simulator's message log and order book, and
//! the count of each recovery path the soak reached.

use std::collections::{BTreeMap, HashMap, HashSet};

use ordermeta::dydx::SupervisorReport;
use ordermeta::dydx_sim::{MsgKind, OrderStatus as SimStatus, ReceivedMsg};
use ordermeta::postgres::sqlx;
use ordermeta::redis::RedisStore;
use ordermeta::{ListQuery, MetadataStore, OrderMetadata, OrderStatus};

use super::{Kind, Tally};
use crate::common::dydx_proto;

/// A chain order id keyed as core prints an `OrderId`: owner/subaccount/clob_pair/flags/client.
pub fn key(id: &dydx_proto::dydxprotocol::clob::OrderId) -> String {
    let sub = id.subaccount_id.as_ref();
    format!(
        "{}/{}/{}/{}/{}",
        sub.map_or("", |s| s.owner.as_str()),
        sub.map_or(0, |s| s.number),
        id.clob_pair_id,
        id.order_flags,
        id.client_id
    )
}

pub async fn list_all(store: &dyn MetadataStore, owner: &str) -> Vec<OrderMetadata> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&ListQuery {
                owner: Some(owner.to_owned()),
                after: after.clone(),
                limit: 500,
                ..ListQuery::default()
            })
            .await
            .expect("list");
        assert!(
            page.invalid.is_empty(),
            "corrupt records: {:?}",
            page.invalid
        );
        out.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// The open records among `records`.
pub fn open_count(records: &[OrderMetadata]) -> usize {
    records
        .iter()
        .filter(|m| OrderStatus::OPEN.contains(&m.status))
        .count()
}

/// What one store's run reached: the lifecycle's tallies, the crashes, and the recovery
/// paths (the supervisor's totals, in the soak and after it, and the confirmations).
#[derive(Debug, Default)]
pub struct Paths {
    pub here: Tally,
    pub child: Tally,
    /// Stateful txs the lifecycle child confirmed itself.
    pub child_confirmed: u64,
    /// Crashing children SIGKILLed, by `point/short|long`.
    pub kills: BTreeMap<String, u64>,
    /// The supervisor beside the lifecycle, then the recovery rounds after the soak.
    pub supervisor: SupervisorReport,
    /// Stateful txs confirmed by `confirm_all` after the soak.
    pub confirmed_after: u64,
}

impl Paths {
    /// Each path the soak must reach, and how often it did.
    pub fn reached(&self) -> Vec<(&'static str, u64)> {
        let s = &self.supervisor;
        let kills = |p: &str| {
            self.kills
                .iter()
                .filter(|(k, _)| k.starts_with(p))
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        vec![
            (
                "short-term cancelled",
                self.here.cancelled + self.child.cancelled
                    - self.here.stateful_cancelled
                    - self.child.stateful_cancelled,
            ),
            (
                "stateful placed",
                self.here.stateful_placed + self.child.stateful_placed,
            ),
            (
                "stateful cancelled",
                self.here.stateful_cancelled + self.child.stateful_cancelled,
            ),
            (
                "stateful confirmed",
                s.confirmed + self.confirmed_after + self.child_confirmed,
            ),
            ("killed after pending", kills("after_pending")),
            ("killed after broadcast", kills("after_broadcast")),
            ("killed after claim", kills("after_claim")),
            (
                "killed after cancel broadcast",
                kills("after_cancel_broadcast"),
            ),
            ("old pending found", s.pending_found),
            (
                "pending reconciled",
                s.pending_cancelled + s.pending_expired,
            ),
            ("pending reconciled by a cancel", s.pending_cancelled),
            ("stale claims found", s.stale_found),
            ("stale claims re-driven to cancelled", s.stale_cancelled),
            ("expired by the sweep", s.expired),
        ]
    }

    /// One line per path, and the paths never reached.
    pub fn report(&self, label: &str) -> Vec<String> {
        let reached = self.reached();
        let line = reached
            .iter()
            .map(|(what, n)| format!("{what}={n}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("soak[{label}]: paths: {line}");
        println!(
            "soak[{label}]: supervisor also: pending unresolved {}, stale settled expired {}, \
             stale not settled {}, confirm failed {}, confirm gave up {}, step errors {}; \
             kills {:?}",
            self.supervisor.pending_unresolved,
            self.supervisor.stale_expired,
            self.supervisor.stale_failed,
            self.supervisor.confirm_failed,
            self.supervisor.confirm_gave_up,
            self.supervisor.step_errors,
            self.kills
        );
        reached
            .into_iter()
            .filter(|(_, n)| *n == 0)
            .map(|(what, _)| format!("{label}: the soak never reached \"{what}\""))
            .collect()
    }
}

/// The checks, against the simulator's log: returns what failed.
pub fn check(
    label: &str,
    owner: &str,
    records: &[OrderMetadata],
    messages: &[ReceivedMsg],
    on_sim: &HashMap<String, SimStatus>,
) -> Vec<String> {
    type Pid = String;
    let accepted = |m: &&ReceivedMsg| matches!(m.final_result(), Some(Ok(())));
    let mut placed: HashMap<Pid, usize> = HashMap::new();
    let mut cancels: HashMap<Pid, usize> = HashMap::new();
    for m in messages.iter().filter(accepted) {
        match &m.kind {
            MsgKind::PlaceOrder {
                order_id: Some(id), ..
            } if id.subaccount_id.as_ref().is_some_and(|s| s.owner == owner) => {
                *placed.entry(key(id)).or_default() += 1;
            }
            MsgKind::CancelOrder {
                order_id: Some(id), ..
            } if id.subaccount_id.as_ref().is_some_and(|s| s.owner == owner) => {
                *cancels.entry(key(id)).or_default() += 1;
            }
            _ => {}
        }
    }
    let mut fails = Vec::new();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut recorded = HashSet::new();
    let mut cancelled_recorded_expired = 0;
    let mut stateful = 0;
    for r in records {
        let pid: Pid = r.dydx_order_id.to_string();
        let is_stateful = pid.split('/').nth(3).is_some_and(|f| f != "0");
        stateful += usize::from(is_stateful);
        let kind = if is_stateful { "stateful" } else { "short" };
        *by_status.entry(format!("{kind} {}", r.status)).or_default() += 1;
        recorded.insert(pid.clone());
        let n_cancels = cancels.get(&pid).copied().unwrap_or(0);
        let on_chain = placed.contains_key(&pid);
        if n_cancels > 1 {
            fails.push(format!("{}: cancelled {n_cancels} times", r.order_id));
        }
        let sim = on_sim.get(&pid).copied();
        // The record against the order's true state on the node. An order the node cancelled
        // may be recorded expired: its cancel's answer was lost to a fault (or its canceller
        // was killed), and the order ran out before its claim was re-driven (counted, not a
        // failure: the order is gone either way and no second cancel was sent).
        match (r.status, sim) {
            (OrderStatus::Pending | OrderStatus::Cancelling | OrderStatus::Active, _) => {
                fails.push(format!(
                    "{}: still {:?} (node: {sim:?})",
                    r.order_id, r.status
                ));
            }
            (_, Some(s)) if s.is_live() || s == SimStatus::PlacePending => {
                fails.push(format!(
                    "{}: {:?}, yet live on the node ({s:?})",
                    r.order_id, r.status
                ));
            }
            (OrderStatus::Failed, Some(s)) => {
                fails.push(format!(
                    "{}: failed, yet the node accepted it ({s:?})",
                    r.order_id
                ));
            }
            (OrderStatus::Cancelled, Some(s)) if s != SimStatus::Canceled => {
                fails.push(format!(
                    "{}: cancelled, yet the node says {s:?}",
                    r.order_id
                ));
            }
            (OrderStatus::Cancelled, _) if on_chain && n_cancels == 0 => {
                fails.push(format!(
                    "{}: cancelled, yet no cancel reached the node",
                    r.order_id
                ));
            }
            (OrderStatus::Expired, Some(SimStatus::Canceled)) => cancelled_recorded_expired += 1,
            (OrderStatus::Expired, Some(s)) if s != SimStatus::Expired => {
                fails.push(format!("{}: expired, yet the node says {s:?}", r.order_id));
            }
            (OrderStatus::Filled, Some(s)) if s != SimStatus::Filled => {
                fails.push(format!("{}: filled, yet the node says {s:?}", r.order_id));
            }
            _ => {}
        }
    }
    let lost: Vec<_> = placed.keys().filter(|p| !recorded.contains(*p)).collect();
    for p in &lost {
        fails.push(format!("lost: the node accepted {p}, no record"));
    }
    println!(
        "soak[{label}]: checked {} records ({stateful} stateful) {by_status:?} against {} \
         accepted placements and {} accepted cancels ({} orders on the node): {} cancelled \
         twice, {} lost, {cancelled_recorded_expired} cancelled on the node but recorded \
         expired, {} failures",
        records.len(),
        placed.len(),
        cancels.values().sum::<usize>(),
        on_sim.keys().filter(|k| k.starts_with(owner)).count(),
        cancels.values().filter(|n| **n > 1).count(),
        lost.len(),
        fails.len()
    );
    fails
}

pub async fn cleanup(kind: Kind, url: &str, name: &str) {
    match kind {
        Kind::Postgres => {
            if let Ok(pool) = sqlx::PgPool::connect(url).await {
                let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                if let Err(e) = sqlx::query(&sql).execute(&pool).await {
                    eprintln!("cleanup of schema {name} failed: {e}");
                }
                pool.close().await;
            }
        }
        Kind::Redis => {
            if let Ok(s) = RedisStore::options().namespace(name).connect(url).await
                && let Err(e) = s.delete_namespace().await
            {
                eprintln!("cleanup of namespace {name} failed: {e}");
            }
        }
    }
}
