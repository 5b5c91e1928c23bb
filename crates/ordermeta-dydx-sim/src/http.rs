//! The simulator's HTTP server: the indexer (REST and websocket) and the admin API on one
//! loopback port, beside the gRPC node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::chain::SharedChain;
use crate::config::IndexerConfig;
use crate::error::SimError;
use crate::indexer::{Indexer, rest};

/// How long a shutdown waits for open HTTP requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running HTTP server.
#[derive(Debug)]
pub(crate) struct HttpServer {
    pub addr: SocketAddr,
    pub indexer: Arc<Indexer>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), SimError>>>,
}

impl HttpServer {
    /// Binds `config.listen`, builds the indexer from the chain as it is now and makes it the
    /// chain's event sink, then serves.
    pub(crate) async fn start(
        chain: &SharedChain,
        config: &IndexerConfig,
    ) -> Result<Self, SimError> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let indexer = {
            let locked = chain.lock();
            let indexer = Arc::new(Indexer::new(
                &config.markets,
                locked.height,
                locked.block_time,
                locked.addresses(),
            ));
            // Under the chain lock: no event can slip between the seed and the sink.
            chain.set_sink(indexer.clone());
            indexer
        };
        let app = rest::router(indexer.clone()).merge(crate::admin::router(chain.clone()));
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = shutdown_rx.await;
                })
                .await
                .map_err(|e| SimError::Transport(format!("indexer HTTP server: {e}")))
        });
        tracing::info!(%addr, "ordermeta-dydx-sim indexer listening");
        Ok(Self {
            addr,
            indexer,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        })
    }

    /// Asks the server to stop; websockets are closed at once.
    pub(crate) fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.indexer.drop_sockets();
    }

    /// Stops and waits (at most [`SHUTDOWN_GRACE`]) for the server to end.
    pub(crate) async fn shutdown(mut self) -> Result<(), SimError> {
        self.stop();
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, task).await {
            Ok(joined) => joined.map_err(|e| SimError::Transport(format!("indexer task: {e}")))?,
            Err(_) => Err(SimError::Transport(
                "indexer HTTP server did not stop in time".into(),
            )),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
