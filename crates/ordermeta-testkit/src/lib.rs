//! # ordermeta-testkit
//!
//! Test support shared by every ordermeta crate (a dev-dependency only, never published):
//!
//! - [`env`]: the shared servers' URLs (`DATABASE_URL`, `REDIS_URL`) and [`unique_name`]s so
//!   that tests running in parallel, and their child processes, never share a schema,
//!   namespace or file;
//! - [`net`]: free loopback ports and a [`SilentListener`](net::SilentListener) that accepts
//!   connections and never answers (hang tests), and a [`FaultProxy`](net::FaultProxy) that
//!   injects latency, drops, resets mid-reply and blackholes (hang tests, the soak);
//! - [`pg`] and [`redis`]: private PostgreSQL and Redis servers (and a Redis Cluster) on free
//!   loopback ports, for tests that stop, pause, kill or restart a server — never the shared ones;
//! - [`child`]: re-running the current test binary as a child OS process (multi-process races,
//!   SIGKILL crash tests);
//! - [`count`]: counting winners of races;
//! - [`poll_until`]: waiting for a condition with a generous deadline;
//! - [`fails_within`]: a call that must fail by a deadline (hang tests);
//! - [`waits`]: timing a writer in another process during bulk work (the bulk tests).
//!
//! Tests never skip: a missing server is a failure with a message saying how to start it.
#![deny(missing_docs)]
#![allow(clippy::unwrap_used)] // test support: a failed setup is a failed test

pub mod child;
pub mod count;
pub mod env;
mod fault;
pub mod net;
pub mod pg;
pub mod redis;
pub mod waits;

pub use env::{database_url, redis_url, unique_name};

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it returns true; panics naming `what` after `limit`.
pub async fn poll_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `call`, which must fail within `limit` (a hang test: every call ends by its deadline);
/// returns the error and the time it took. Prints the measurement; fails the test when the
/// call succeeds or takes `limit` or longer.
pub async fn fails_within<T, E>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> (E, Duration)
where
    T: Debug,
    E: Debug + Display,
{
    let started = Instant::now();
    let r = call.await;
    let took = started.elapsed();
    eprintln!("{what}: {took:?} -> {r:?}");
    let e = r.expect_err(what);
    assert!(took < limit, "{what} took {took:?} (limit {limit:?}): {e}");
    (e, took)
}
