//! Starting, controlling and stopping a simulator.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use cosmos_sdk_proto::cosmos::auth::v1beta1::query_server::QueryServer;
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::service_server::ServiceServer as TmServer;
use cosmos_sdk_proto::cosmos::tx::v1beta1::service_server::ServiceServer as TxServer;
use dydx_proto::dydxprotocol::clob::OrderId;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::config::{BlockProduction, SimConfig};
use crate::error::{ChainError, SimError};
use crate::server::{Node, Shared, lock};
use crate::state::Chain;
use crate::types::{AccountInfo, Fill, OrderState, ReceivedMsg};

/// Entry point: starts simulators.
#[derive(Debug)]
pub struct SimNode;

impl SimNode {
    /// Binds `config.listen`, starts serving gRPC and (in [`BlockProduction::Interval`] mode)
    /// producing blocks. Must be called inside a tokio runtime.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let chain = Chain::new(&config)?;
        let shared: Shared = Arc::new(Mutex::new(chain));
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

        let node = Node {
            shared: shared.clone(),
        };
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(QueryServer::new(node.clone()))
            .add_service(TmServer::new(node.clone()))
            .add_service(TxServer::new(node))
            .serve_with_incoming_shutdown(incoming, async {
                // A dropped sender also means shutdown.
                let _ = shutdown_rx.await;
            });
        let server_task =
            tokio::spawn(
                async move { server.await.map_err(|e| SimError::Transport(e.to_string())) },
            );

        let block_task = match config.blocks {
            BlockProduction::Manual => None,
            BlockProduction::Interval(interval) => {
                let shared = shared.clone();
                Some(tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(interval);
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    // The first tick completes immediately; skip it so block 2 comes after one interval.
                    ticker.tick().await;
                    loop {
                        ticker.tick().await;
                        lock(&shared).produce_block();
                    }
                }))
            }
        };
        tracing::info!(%addr, chain_id = %config.chain_id, "ordermeta-dydx-sim listening");
        Ok(SimHandle {
            shared,
            addr,
            shutdown: Some(shutdown_tx),
            server_task: Some(server_task),
            block_task,
        })
    }
}

/// A running simulator. Dropping it stops the server; [`SimHandle::shutdown`] also waits for it.
///
/// Control methods are synchronous and take effect immediately (they never wait for a block).
#[derive(Debug)]
pub struct SimHandle {
    shared: Shared,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server_task: Option<JoinHandle<Result<(), SimError>>>,
    block_task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The URL to give `dydx::node::NodeConfig::endpoint`: `http://127.0.0.1:PORT`. Plain
    /// `http://` makes tonic connect in cleartext even though `NodeClient` configures TLS.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The chain id signatures must commit to.
    pub fn chain_id(&self) -> String {
        lock(&self.shared).chain_id.clone()
    }

    /// Height of the latest block.
    pub fn height(&self) -> u32 {
        lock(&self.shared).height
    }

    /// Time of the latest block.
    pub fn block_time(&self) -> DateTime<Utc> {
        lock(&self.shared).block_time
    }

    /// Produces `n` blocks at once and returns the new height. Each block commits pending
    /// stateful cancels and expires orders and cancels whose good-til it reaches.
    pub fn advance_blocks(&self, n: u32) -> u32 {
        let mut chain = lock(&self.shared);
        for _ in 0..n {
            chain.produce_block();
        }
        chain.height
    }

    /// Sets the time of the next produced block (later blocks continue from it by
    /// `block_time_step`). Errors if `time` is before the latest block time.
    pub fn set_block_time(&self, time: DateTime<Utc>) -> Result<(), SimError> {
        lock(&self.shared).set_next_block_time(time)
    }

    /// The simulator's state of an order, by its full `OrderId`; `None` if never placed.
    pub fn order(&self, id: &OrderId) -> Option<OrderState> {
        lock(&self.shared).order(id)
    }

    /// All orders ever accepted (live and removed), in a stable order.
    pub fn orders(&self) -> Vec<OrderState> {
        lock(&self.shared).orders()
    }

    /// The live orders only.
    pub fn open_orders(&self) -> Vec<OrderState> {
        let mut orders = self.orders();
        orders.retain(|o| o.status.is_live());
        orders
    }

    /// The GTB of the recorded short-term cancel (or pre-cancel) for this id, until it expires.
    pub fn short_term_cancel(&self, id: &OrderId) -> Option<u32> {
        lock(&self.shared).short_term_cancel(id)
    }

    /// Fills a live order fully or partially, as a match would.
    pub fn fill(&self, id: &OrderId, fill: Fill) -> Result<OrderState, SimError> {
        lock(&self.shared).fill(id, fill)
    }

    /// Removes a live order without a cancel, as the chain does after e.g. a failed
    /// collateral check; a later cancel sees it gone.
    pub fn remove_order(&self, id: &OrderId) -> Result<OrderState, SimError> {
        lock(&self.shared).remove_order(id)
    }

    /// Makes the next `MsgPlaceOrder` that passes all other checks fail with `error`
    /// (e.g. `ChainError::new("clob", 3007, "")` for a collateralization failure).
    pub fn reject_next_placement(&self, error: ChainError) {
        lock(&self.shared).set_reject_next_placement(error);
    }

    /// The account as the node knows it.
    pub fn account(&self, address: &str) -> Option<AccountInfo> {
        lock(&self.shared).account(address)
    }

    /// Creates an account (as if it received funds) and returns its account number; an
    /// existing account keeps its number.
    pub fn add_account(&self, address: &str) -> Result<u64, SimError> {
        lock(&self.shared).add_account(address)
    }

    /// Every message received through `BroadcastTx`, in order, with the result returned.
    pub fn messages(&self) -> Vec<ReceivedMsg> {
        lock(&self.shared).messages()
    }

    /// Empties the message log.
    pub fn clear_messages(&self) {
        lock(&self.shared).clear_messages();
    }

    /// Stops serving and waits until the server has stopped.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        self.stop_tasks();
        match self.server_task.take() {
            Some(task) => task
                .await
                .map_err(|e| SimError::Transport(format!("server task: {e}")))?,
            None => Ok(()),
        }
    }

    fn stop_tasks(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The receiver is gone only if the server already stopped.
            let _ = tx.send(());
        }
        if let Some(task) = self.block_task.take() {
            task.abort();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}
