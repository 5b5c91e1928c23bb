//! [`CancelRetry`]: the bounded backoff with which cancels are re-sent after a transport
//! failure. Placement is never retried: a re-sent placement of an order whose first
//! broadcast landed would be a second order (or a refusal that hides the first).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::metrics::count_cancel_retry;
use crate::gateway::GatewayError;

/// How a cancel (single or batch) is re-sent when the gateway fails in transport
/// ([`GatewayError::is_transport`]: unreachable node, missed deadline).
///
/// A cancel is idempotent on chain: a re-sent short-term cancel answers clob 9 ("cancel
/// already exists"), a re-sent stateful one clob 32 (duplicate) or 3006 (already gone), and
/// each of those settles the record. A refusal by the chain is never retried.
///
/// The default — 4 attempts in all, exponential delays from 200 ms to 2 s with jitter, no new
/// attempt after 10 s — keeps a cancel well inside the default claim lease
/// ([`DEFAULT_LEASE`](ordermeta_core::DEFAULT_LEASE), 30 s) with the default call deadline
/// ([`DEFAULT_CALL_TIMEOUT`](crate::DEFAULT_CALL_TIMEOUT), 5 s): at worst about 10 s + one
/// deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelRetry {
    /// Attempts in all, the first included; `1` never retries.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled at each retry (with jitter).
    pub min_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// No new attempt starts once this much time has passed since the first one began.
    pub budget: Duration,
}

impl Default for CancelRetry {
    fn default() -> Self {
        CancelRetry {
            max_attempts: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            budget: Duration::from_secs(10),
        }
    }
}

impl CancelRetry {
    /// One attempt, no retry.
    pub fn never() -> Self {
        CancelRetry {
            max_attempts: 1,
            ..CancelRetry::default()
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        let retries = usize::try_from(self.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_max_times(retries)
            .with_jitter()
    }

    /// Runs `send` (a cancel broadcast, labelled `what` in metrics and logs), re-running it
    /// on transport errors within this policy's attempts and budget.
    pub(super) async fn run<T, F, Fut>(
        &self,
        what: &'static str,
        send: F,
    ) -> Result<T, GatewayError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GatewayError>>,
    {
        // tokio's clock, so that tests with paused time see the budget run out.
        let start = tokio::time::Instant::now();
        let budget = self.budget;
        send.retry(self.backoff())
            .when(GatewayError::is_transport)
            // Within the budget: no attempt may start after it has run out.
            .adjust(move |_: &GatewayError, delay: Option<Duration>| {
                delay.filter(|d| start.elapsed() + *d < budget)
            })
            .notify(|e: &GatewayError, delay: Duration| {
                count_cancel_retry(what);
                tracing::warn!(operation = what, error = %e, ?delay, "cancel failed in transport; re-sending");
            })
            .await
    }
}
