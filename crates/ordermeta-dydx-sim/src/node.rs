//! Starting, controlling and stopping a simulator.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use cosmos_sdk_proto::cosmos::auth::v1beta1::query_server::QueryServer;
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::service_server::ServiceServer as TmServer;
use cosmos_sdk_proto::cosmos::tx::v1beta1::service_server::ServiceServer as TxServer;
use dydx_proto::dydxprotocol::clob::OrderId;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::chain::{Chain, SharedChain};
use crate::config::{BlockProduction, SimConfig};
use crate::error::{ChainError, SimError};
use crate::grpc::GrpcNode;
use crate::http::HttpServer;
use crate::types::{AccountInfo, Fill, OrderState, ReceivedMsg, TxResult};

/// Entry point: starts simulators.
#[derive(Debug)]
pub struct SimNode;

impl SimNode {
    /// Binds `config.listen`, starts serving gRPC, the indexer and admin API (unless
    /// `config.indexer` is `None`) and (in [`BlockProduction::Interval`] mode) producing
    /// blocks. Must be called inside a tokio runtime.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let chain = SharedChain::new(Chain::new(&config)?);
        // The indexer first: it must see every event from the first tx on.
        let http = match &config.indexer {
            Some(indexer) => Some(HttpServer::start(&chain, indexer).await?),
            None => None,
        };
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

        let node = GrpcNode {
            chain: chain.clone(),
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
                let chain = chain.clone();
                Some(tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(interval);
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    // The first tick completes immediately; skip it so block 2 comes after one interval.
                    ticker.tick().await;
                    loop {
                        ticker.tick().await;
                        chain.lock().produce_block();
                    }
                }))
            }
        };
        tracing::info!(%addr, chain_id = %config.chain_id, "ordermeta-dydx-sim listening");
        Ok(SimHandle {
            chain,
            addr,
            http,
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
    chain: SharedChain,
    addr: SocketAddr,
    http: Option<HttpServer>,
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

    /// The indexer's REST base URL, `http://127.0.0.1:PORT` (for
    /// `dydx::indexer::RestConfig::endpoint`); `None` without an indexer.
    pub fn indexer_url(&self) -> Option<String> {
        self.http.as_ref().map(|h| format!("http://{}", h.addr))
    }

    /// The indexer's websocket URL, `ws://127.0.0.1:PORT/v4/ws` (for
    /// `dydx::indexer::SockConfig::endpoint`); `None` without an indexer.
    pub fn indexer_ws_url(&self) -> Option<String> {
        self.http.as_ref().map(|h| format!("ws://{}/v4/ws", h.addr))
    }

    /// The admin API's base URL, `http://127.0.0.1:PORT/sim` (see [`admin`](crate::admin));
    /// `None` without an indexer.
    pub fn admin_url(&self) -> Option<String> {
        self.http.as_ref().map(|h| format!("http://{}/sim", h.addr))
    }

    /// Kills every open indexer websocket mid-stream, without a close frame, as a network
    /// failure would: the `dydx` client reconnects after its `SockConfig::timeout`,
    /// resubscribes and gets a new `subscribed` snapshot on the same feed (or, if the
    /// reconnect is refused, its feeds end: `Feed::recv` returns `None`). Returns how many
    /// sockets were open.
    pub fn drop_indexer_sockets(&self) -> usize {
        self.http.as_ref().map_or(0, |h| h.indexer.drop_sockets())
    }

    /// Holds back everything the indexer websocket would send (updates are queued in order,
    /// new connections are accepted and subscriptions answered, all delayed) until
    /// [`SimHandle::resume_indexer_ws`]: a gap in which the chain moves on. Nothing is lost
    /// unless the sockets are dropped meanwhile.
    pub fn pause_indexer_ws(&self) {
        if let Some(h) = &self.http {
            h.indexer.set_paused(true);
        }
    }

    /// Ends [`SimHandle::pause_indexer_ws`]: the held messages go out, in order.
    pub fn resume_indexer_ws(&self) {
        if let Some(h) = &self.http {
            h.indexer.set_paused(false);
        }
    }

    /// Refuses new indexer websocket connections (HTTP 503) while `false`: with
    /// [`SimHandle::drop_indexer_sockets`], the `dydx` client's reconnect fails and its feeds
    /// end. REST keeps answering.
    pub fn set_indexer_ws_accepting(&self, accepting: bool) {
        if let Some(h) = &self.http {
            h.indexer.set_accepting(accepting);
        }
    }

    /// How many indexer websocket connections are open.
    pub fn indexer_ws_connections(&self) -> usize {
        self.http.as_ref().map_or(0, |h| h.indexer.connections())
    }

    /// How many `v4_subaccounts` subscriptions the open indexer websockets hold: a test can
    /// wait for a (re)subscription to be registered before it makes the chain move.
    pub fn indexer_ws_subscriptions(&self) -> usize {
        self.http.as_ref().map_or(0, |h| h.indexer.subscriptions())
    }

    /// The chain id signatures must commit to.
    pub fn chain_id(&self) -> String {
        self.chain.lock().chain_id.clone()
    }

    /// Height of the latest block.
    pub fn height(&self) -> u32 {
        self.chain.lock().height
    }

    /// Time of the latest block.
    pub fn block_time(&self) -> DateTime<Utc> {
        self.chain.lock().block_time
    }

    /// Produces `n` blocks at once and returns the new height. The first executes the stateful
    /// txs waiting in the mempool (places rest on the book, cancels remove their order, unless
    /// execution fails); each block expires orders and cancels whose good-til it reaches.
    pub fn advance_blocks(&self, n: u32) -> u32 {
        let mut chain = self.chain.lock();
        for _ in 0..n {
            chain.produce_block();
        }
        chain.height
    }

    /// Sets the time of the next produced block (later blocks continue from it by
    /// `block_time_step`). Errors if `time` is before the latest block time.
    pub fn set_block_time(&self, time: DateTime<Utc>) -> Result<(), SimError> {
        self.chain.lock().set_next_block_time(time)
    }

    /// The simulator's state of an order, by its full `OrderId`; `None` if never placed. A
    /// stateful order accepted by CheckTx shows as [`OrderStatus::PlacePending`](crate::OrderStatus::PlacePending)
    /// until the next block executes it; one with an accepted cancel as
    /// [`OrderStatus::CancelPending`](crate::OrderStatus::CancelPending).
    pub fn order(&self, id: &OrderId) -> Option<OrderState> {
        self.chain.lock().order(id)
    }

    /// All orders ever accepted (pending, live and removed), in a stable order.
    pub fn orders(&self) -> Vec<OrderState> {
        self.chain.lock().orders()
    }

    /// The live orders only.
    pub fn open_orders(&self) -> Vec<OrderState> {
        let mut orders = self.orders();
        orders.retain(|o| o.status.is_live());
        orders
    }

    /// The GTB of the recorded short-term cancel (or pre-cancel) for this id, until it expires.
    pub fn short_term_cancel(&self, id: &OrderId) -> Option<u32> {
        self.chain.lock().short_term_cancel(id)
    }

    /// Fills a live order fully or partially, as a match would. A stateful order fully filled
    /// this way counts as removed by the next block's operations, so a cancel of it waiting in
    /// the mempool fails there with clob/3010. A stateful order still `PlacePending` cannot
    /// fill. The indexer reports the fill (the order's total and status, a fill record) with
    /// the next block, as the chain's `OrderFillEvent` of that block.
    pub fn fill(&self, id: &OrderId, fill: Fill) -> Result<OrderState, SimError> {
        self.chain.lock().fill(id, fill)
    }

    /// Removes a live order without a cancel, as the chain does after e.g. a failed
    /// collateral check; a later cancel sees it gone (a stateful cancel waiting in the mempool
    /// fails at the next block with clob/3010). The indexer hears of it at once
    /// (`BEST_EFFORT_CANCELED`, reason `UNDERCOLLATERALIZED`) and, for a stateful order, of the
    /// committed removal with the next block (`CANCELED`).
    pub fn remove_order(&self, id: &OrderId) -> Result<OrderState, SimError> {
        self.chain.lock().remove_order(id)
    }

    /// Makes the next `MsgPlaceOrder` that passes all other checks fail at CheckTx with
    /// `error` (e.g. `ChainError::new("clob", 3007, "")` for a collateralization failure).
    pub fn reject_next_placement(&self, error: ChainError) {
        self.chain.lock().set_reject_next_placement(error);
    }

    /// Makes the next stateful tx executed in a block fail there with `error`, after CheckTx
    /// accepted it (e.g. `ChainError::new("clob", 3007, "")`: a stateful place whose
    /// collateral check fails at execution). Its sequence is still consumed, as on chain;
    /// a place leaves no order, a cancel leaves its order live. The result is what
    /// [`SimHandle::tx_result`] and `GetTx` report.
    pub fn fail_next_block_execution(&self, error: ChainError) {
        self.chain.lock().fail_next_block_execution(error);
    }

    /// Like [`SimHandle::fail_next_block_execution`], for the next stateful place or cancel
    /// of this `OrderId` executed in a block (whatever else the block executes first).
    pub fn fail_block_execution_of(&self, order_id: &OrderId, error: ChainError) {
        self.chain.lock().fail_block_execution_of(order_id, error);
    }

    /// The result of a tx that a block included (what `GetTx` serves), by hash
    /// (case-insensitive). `None` while it waits in the mempool, and always for rejected and
    /// short-term txs, which no block includes.
    pub fn tx_result(&self, tx_hash: &str) -> Option<TxResult> {
        self.chain
            .lock()
            .included_tx(tx_hash)
            .map(|tx| tx.result.clone())
    }

    /// Hashes of the stateful txs accepted by CheckTx and waiting for the next block, in the
    /// order the block will execute them.
    pub fn pending_txs(&self) -> Vec<String> {
        self.chain.lock().pending_txs()
    }

    /// The account as the node knows it: `sequence` from committed state (what the account
    /// query serves), `check_tx_sequence` from the CheckTx copy.
    pub fn account(&self, address: &str) -> Option<AccountInfo> {
        self.chain.lock().account(address)
    }

    /// Creates an account (as if it received funds) and returns its account number; an
    /// existing account keeps its number.
    pub fn add_account(&self, address: &str) -> Result<u64, SimError> {
        self.chain.lock().add_account(address)
    }

    /// Every message received through `BroadcastTx`, in order, with the CheckTx result returned
    /// and (stateful ones, once a block included them) the execution result.
    pub fn messages(&self) -> Vec<ReceivedMsg> {
        self.chain.lock().messages()
    }

    /// Empties the message log.
    pub fn clear_messages(&self) {
        self.chain.lock().clear_messages();
    }

    /// Stops serving and waits until the servers have stopped.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        self.stop_tasks();
        if let Some(http) = self.http.take() {
            http.shutdown().await?;
        }
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
        if let Some(http) = &mut self.http {
            http.stop();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}
