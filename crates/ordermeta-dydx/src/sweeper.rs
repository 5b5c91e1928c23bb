//! [`ExpirySweeper`]: the background task that marks expired orders (the seed's "automatic
//! cleanup").

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::OrderMetaClient;

/// A running sweeper; [`stop`](Self::stop) it, or drop it to stop it at its next tick.
#[derive(Debug)]
pub struct ExpirySweeper {
    stop: watch::Sender<bool>,
    task: JoinHandle<u64>,
}

impl ExpirySweeper {
    /// Spawns a task that, every `interval`, reads the chain's height and block time and marks
    /// every open order whose good-til passed as expired. Failures are logged and retried at
    /// the next tick; the task never panics the runtime.
    pub fn spawn(client: Arc<OrderMetaClient>, interval: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut total = 0u64;
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => break,
                }
                match client.sweep_expired().await {
                    Ok(n) => {
                        total += n;
                        if n > 0 {
                            tracing::info!(expired = n, "expiry sweep");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "expiry sweep failed; retrying next tick"),
                }
            }
            total
        });
        ExpirySweeper { stop, task }
    }

    /// Stops the task and returns how many orders it marked expired in all.
    pub async fn stop(self) -> u64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}
