//! The original design's `ExchangeActor`, as a tokio actor: it owns an `OrderMetaClient` and
//! serves place and cancel requests arriving over a channel, answering each on a oneshot.
//! Any number of strategy tasks share one actor handle.
//!
//! Run: `cargo run --example exchange_actor --features dydx,dydx-sim`

use std::sync::Arc;

use ordermeta::dydx::{
    CancelError, Cancelled, ChainSettings, ClientId, DydxGateway, Height, Order, OrderBuilder,
    OrderDetails, OrderMetaClient, OrderSide, PlaceError, Placed, RecordingSwitch, Wallet,
};
use ordermeta::dydx_sim::fixtures::{MNEMONIC, market, node_config};
use ordermeta::dydx_sim::{SimConfig, SimNode};
use ordermeta::sqlite::SqliteStore;
use ordermeta::{OrderType, Side};
use tokio::sync::{mpsc, oneshot};

/// What the actor is asked to do.
enum Command {
    Place {
        order: Box<Order>,
        details: OrderDetails,
        reply: oneshot::Sender<Result<Placed, PlaceError>>,
    },
    Cancel {
        order_id: String,
        reply: oneshot::Sender<Result<Cancelled, CancelError>>,
    },
}

/// A cheap, cloneable handle to the actor.
#[derive(Clone)]
struct ExchangeActor {
    tx: mpsc::Sender<Command>,
}

impl ExchangeActor {
    /// Spawns the actor. Each request runs as its own task so a slow node does not block
    /// the queue; ordering and exclusivity per order come from the store's compare-and-set.
    fn spawn(client: Arc<OrderMetaClient>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Command>(256);
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                let client = client.clone();
                tokio::spawn(async move {
                    match cmd {
                        Command::Place {
                            order,
                            details,
                            reply,
                        } => {
                            let _ = reply.send(client.place_order(*order, details).await);
                        }
                        Command::Cancel { order_id, reply } => {
                            let _ = reply.send(client.cancel_order(&order_id).await);
                        }
                    }
                });
            }
        });
        ExchangeActor { tx }
    }

    /// The seed's `place_order_dydx`.
    async fn place_order_dydx(
        &self,
        order: Order,
        details: OrderDetails,
    ) -> Result<Placed, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Place {
                order: Box::new(order),
                details,
                reply,
            })
            .await
            .map_err(|_| "actor stopped".to_owned())?;
        rx.await
            .map_err(|_| "actor dropped the request".to_owned())?
            .map_err(|e| e.to_string())
    }

    /// The seed's `cancel_order_dydx`.
    async fn cancel_order_dydx(&self, order_id: &str) -> Result<Cancelled, CancelError> {
        let (reply, rx) = oneshot::channel();
        let lost = || CancelError::NetworkError {
            order_id: order_id.to_owned(),
            source: "exchange actor stopped".into(),
        };
        self.tx
            .send(Command::Cancel {
                order_id: order_id.to_owned(),
                reply,
            })
            .await
            .map_err(|_| lost())?;
        rx.await.map_err(|_| lost())?
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = SimNode::start(SimConfig::default().with_mnemonic(MNEMONIC, 1)).await?;
    let wallet = Wallet::from_mnemonic(MNEMONIC)?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(dir.path().join("actor.db")).await?);
    let gateway = DydxGateway::connect(node_config(sim.endpoint()), &wallet, 0).await?;
    let client = Arc::new(OrderMetaClient::new(
        Arc::new(gateway),
        store,
        RecordingSwitch::new(true),
        ChainSettings::default(),
    ));
    let actor = ExchangeActor::spawn(client);

    let market = market();
    let sub = wallet.account_offline(0)?.subaccount(0)?;
    // Three strategy tasks place through the actor concurrently.
    let mut tasks = Vec::new();
    for i in 0..3u32 {
        let actor = actor.clone();
        let (_, order) = OrderBuilder::new(market.clone(), sub.clone())
            .limit(OrderSide::Buy, 40_000 + i, 1)
            .until(Height(sim.height() + 20))
            .build(ClientId(300 + i))?;
        let details = OrderDetails {
            symbol: "BTC-USD".into(),
            side: Side::Buy,
            quantity: "1".into(),
            price: Some((40_000 + i).to_string()),
            order_type: OrderType::Limit,
        };
        tasks.push(tokio::spawn(async move {
            actor.place_order_dydx(order, details).await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let placed = t.await??;
        println!("placed    {}", placed.order_id);
        ids.push(placed.order_id);
    }
    for id in &ids {
        let done = actor.cancel_order_dydx(id).await?;
        println!("cancelled {}  tx {}", done.order_id, done.tx_hash);
    }
    // A second cancel of the same id is refused with a typed error.
    if let Err(e) = actor.cancel_order_dydx(&ids[0]).await {
        println!("again:    {e}");
    }
    sim.shutdown().await?;
    Ok(())
}
