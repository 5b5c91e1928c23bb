//! The crashing children: processes that place (and cancel) orders through a gateway that
//! stops for ever at one point of an order's life — after `pending` is written, after the
//! broadcast, after the cancel claim, after the cancel broadcast — and are SIGKILLed there.
//! Each leaves what only the recovery paths settle: a `pending` record whose broadcast
//! outcome nobody knows, or a claim nobody will finish (with a short lease, so that it goes
//! stale during the soak).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dydx_proto::dydxprotocol::clob::Order;
use ordermeta::dydx::{
    ChainClock, ChainSettings, DydxGateway, GatewayError, OrderGateway, OrderMetaClient,
    RecordingSwitch, TxOutcome,
};
use ordermeta::{GoodTil, OrderId};
use ordermeta_testkit::child::Child;

use super::{Kind, gateway, open, order, settings};
use crate::common::{details, dydx_proto};

/// Where the children stop, and whether their order is stateful: every point for both kinds
/// of order, in an order that reaches a `pending` and a stale claim of each kind early.
pub const POINTS: [(&str, bool); 8] = [
    ("after_broadcast", true),
    ("after_claim", true),
    ("after_pending", false),
    ("after_cancel_broadcast", false),
    ("after_broadcast", false),
    ("after_claim", false),
    ("after_pending", true),
    ("after_cancel_broadcast", true),
];

/// The claim lease of a crashing child: nobody finishes its claims, so they go stale soon.
pub const CRASH_LEASE: Duration = Duration::from_secs(2);
/// A crashing child's short-term orders are good for this many blocks (19 s at 2 blocks per
/// second): long enough for reconciliation to cancel them live, not merely expire them.
pub const CRASH_GOOD_FOR: u32 = 38;
/// The lane of timestamp nonces of the crashing children (one at a time per account).
const CRASH_LANE: u32 = 2;

/// A gateway that stops for ever (until the process is killed) at one point, after printing
/// `AT:<point>` so that the parent knows where the child is.
#[derive(Debug)]
struct StopAt {
    inner: DydxGateway,
    point: String,
}

impl StopAt {
    async fn stop_here(&self, point: &str) {
        if self.point == point {
            println!("AT:{point}");
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl OrderGateway for StopAt {
    fn signer(&self) -> String {
        self.inner.signer()
    }
    async fn clock(&self) -> Result<ChainClock, GatewayError> {
        self.inner.clock().await
    }
    async fn place(&self, order: Order) -> Result<String, GatewayError> {
        self.stop_here("after_pending").await;
        let hash = self.inner.place(order).await?;
        self.stop_here("after_broadcast").await;
        Ok(hash)
    }
    async fn cancel(&self, order_id: &OrderId, good_til: GoodTil) -> Result<String, GatewayError> {
        self.stop_here("after_claim").await;
        let hash = self.inner.cancel(order_id, good_til).await?;
        self.stop_here("after_cancel_broadcast").await;
        Ok(hash)
    }
    async fn batch_cancel(
        &self,
        subaccount_number: u32,
        batches: Vec<(u32, Vec<u32>)>,
        good_til_block: u32,
    ) -> Result<String, GatewayError> {
        self.inner
            .batch_cancel(subaccount_number, batches, good_til_block)
            .await
    }
    async fn tx_result(&self, tx_hash: &str) -> Result<Option<TxOutcome>, GatewayError> {
        self.inner.tx_result(tx_hash).await
    }
}

/// The child (payload: `crash`, node endpoint, store kind, store URL, schema or namespace,
/// account, first client id, point, `long` or `short`): places orders one after another (and
/// cancels each placed one) until its gateway stops at the point; a fault that fails an order
/// before it gets there only moves it on to the next order.
pub async fn child(p: &[&str]) {
    let [
        _,
        endpoint,
        kind,
        url,
        name,
        account,
        base,
        point,
        kind_of_order,
    ] = p[..]
    else {
        panic!("bad crash payload {p:?}");
    };
    let account: u32 = account.parse().expect("account");
    let base: u32 = base.parse().expect("base");
    let stateful = kind_of_order == "long";
    let store = open(Kind::parse(kind), url, name).await;
    let gateway = Arc::new(StopAt {
        inner: gateway(endpoint, account, CRASH_LANE).await,
        point: point.to_owned(),
    });
    let client = OrderMetaClient::new(
        gateway.clone(),
        store,
        RecordingSwitch::new(true),
        ChainSettings {
            claim_lease: CRASH_LEASE,
            ..settings()
        },
    );
    for i in 0..10_000 {
        let Ok(clock) = gateway.clock().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let o = order(account, base + i, clock, stateful, CRASH_GOOD_FOR);
        if let Ok(placed) = client.place_order(o, details()).await {
            let _ = client.cancel_order(&placed.order_id).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the child never reached {point}");
}

/// The parent's side: until shortly before `until`, starts a crashing child at the next of
/// [`POINTS`], SIGKILLs it when it gets there, and waits a second. Returns the kills per
/// `point/short|long`.
pub async fn drive(
    kind: Kind,
    endpoint: &str,
    url: &str,
    name: &str,
    account: u32,
    child_env: &str,
    until: Instant,
) -> BTreeMap<String, u64> {
    let mut kills = BTreeMap::new();
    let mut k = 0u32;
    while Instant::now() + Duration::from_secs(5) < until {
        let (point, stateful) = POINTS[k as usize % POINTS.len()];
        let order_kind = if stateful { "long" } else { "short" };
        let payload = format!(
            "crash\n{endpoint}\n{}\n{url}\n{name}\n{account}\n{}\n{point}\n{order_kind}",
            kind.label(),
            2_000_000 + k * 1_000
        );
        let mut c = Child::spawn("soak", child_env, &payload);
        let (c, line) = tokio::task::spawn_blocking(move || {
            let line = c.wait_for_line("AT:", Duration::from_secs(60));
            (c, line)
        })
        .await
        .expect("crash child waiter");
        assert_eq!(line, format!("AT:{point}"));
        c.kill9();
        *kills.entry(format!("{point}/{order_kind}")).or_default() += 1;
        k += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    kills
}
