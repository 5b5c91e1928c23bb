//! Timing the calls of a writer in another OS process while this one does bulk work (the
//! bulk tests: "no concurrent `record` from another process fails, and its worst wait is
//! under 250 ms").
//!
//! The child calls [`keep_calling`] (or times its own loop with [`Waits::time`]) until the
//! parent opens a stop [`Gate`](crate::child::Gate), then [`Waits::print`]s every call (start
//! time and duration) and every failure; the parent reads them back with
//! [`Waits::from_output`] and reports the worst wait, percentiles and the
//! slowest calls against its own timeline (both sides use the wall clock, in µs since the
//! Unix epoch, so the slow calls can be matched with what the bulk work was doing).

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::child::Output;

/// One call: when it started (µs since the Unix epoch) and how long it took (µs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// Start, in µs since the Unix epoch.
    pub at_us: u64,
    /// Duration, in µs.
    pub took_us: u64,
}

impl Call {
    /// The duration.
    pub fn took(&self) -> Duration {
        Duration::from_micros(self.took_us)
    }
}

/// Every call a writer made, and its failures.
#[derive(Clone, Debug, Default)]
pub struct Waits {
    /// Every call, failed ones included, in order.
    pub calls: Vec<Call>,
    /// The error of every failed call.
    pub failures: Vec<String>,
}

/// The wall clock in µs since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// In a child: calls `call(i)` for i = 0, 1, … with `pause` between calls, timing each, until
/// the file `stop` exists (or `limit` has passed: a parent that died must not leave it
/// running).
pub async fn keep_calling<F, Fut>(
    stop: &Path,
    pause: Duration,
    limit: Duration,
    mut call: F,
) -> Waits
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut waits = Waits::default();
    let deadline = Instant::now() + limit;
    let mut i = 0;
    while !stop.exists() && Instant::now() < deadline {
        waits.time(call(i)).await;
        i += 1;
        tokio::time::sleep(pause).await;
    }
    waits
}

impl Waits {
    /// Runs `call`, recording when it started, how long it took and its failure.
    pub async fn time(&mut self, call: impl Future<Output = Result<(), String>>) {
        let at_us = now_us();
        let start = Instant::now();
        let result = call.await;
        let took_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.calls.push(Call { at_us, took_us });
        if let Err(e) = result {
            self.failures.push(e);
        }
    }

    /// In the child: prints every call as `<name>_CALLS=<at>:<took> …` (one line) and every
    /// failure as `<name>_FAILURE=<error>`, for [`from_output`](Self::from_output).
    pub fn print(&self, name: &str) {
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|c| format!("{}:{}", c.at_us, c.took_us))
            .collect();
        println!("{name}_CALLS={}", calls.join(" "));
        for f in &self.failures {
            println!("{name}_FAILURE={}", f.replace('\n', " "));
        }
    }

    /// In the parent: what the child printed with [`print`](Self::print) under `name`. Panics
    /// (naming the output) when the child printed no such calls line or a malformed one.
    pub fn from_output(out: &Output, name: &str) -> Self {
        let key = format!("{name}_CALLS");
        let line = out
            .value(&key)
            .unwrap_or_else(|| panic!("the child printed no {key}=…: {:?}", out.stdout));
        let calls = line
            .split_whitespace()
            .map(|c| {
                let (at, took) = c
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad call {c:?}"));
                Call {
                    at_us: at.parse().unwrap_or_else(|_| panic!("bad call {c:?}")),
                    took_us: took.parse().unwrap_or_else(|_| panic!("bad call {c:?}")),
                }
            })
            .collect();
        let failures = out
            .values(&format!("{name}_FAILURE"))
            .into_iter()
            .map(str::to_owned)
            .collect();
        Waits { calls, failures }
    }

    /// The longest call (zero without calls).
    pub fn worst(&self) -> Duration {
        self.calls.iter().map(Call::took).max().unwrap_or_default()
    }

    /// The `p`-th percentile of the call durations (`p` in 0..=100, nearest rank).
    pub fn percentile(&self, p: f64) -> Duration {
        let mut took: Vec<u64> = self.calls.iter().map(|c| c.took_us).collect();
        if took.is_empty() {
            return Duration::ZERO;
        }
        took.sort_unstable();
        let rank = ((p / 100.0) * took.len() as f64).ceil() as usize;
        Duration::from_micros(took[rank.clamp(1, took.len()) - 1])
    }

    /// Calls that took longer than `limit`.
    pub fn over(&self, limit: Duration) -> usize {
        self.calls.iter().filter(|c| c.took() > limit).count()
    }

    /// Calls that started at or after `from_us` and before `to_us` (µs since the epoch).
    pub fn between(&self, from_us: u64, to_us: u64) -> Waits {
        Waits {
            calls: self
                .calls
                .iter()
                .copied()
                .filter(|c| c.at_us >= from_us && c.at_us < to_us)
                .collect(),
            failures: Vec::new(),
        }
    }

    /// The `n` slowest calls, slowest first.
    pub fn slowest(&self, n: usize) -> Vec<Call> {
        let mut calls = self.calls.clone();
        calls.sort_unstable_by_key(|c| std::cmp::Reverse(c.took_us));
        calls.truncate(n);
        calls
    }

    /// One line: calls, failures, worst, p99, p50, calls over 250 ms.
    pub fn summary(&self) -> String {
        format!(
            "{} calls, {} failures, worst {:?}, p99 {:?}, p50 {:?}, {} over 250 ms",
            self.calls.len(),
            self.failures.len(),
            self.worst(),
            self.percentile(99.0),
            self.percentile(50.0),
            self.over(Duration::from_millis(250))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(took_ms: &[u64]) -> Waits {
        Waits {
            calls: took_ms
                .iter()
                .enumerate()
                .map(|(i, t)| Call {
                    at_us: i as u64 * 1_000,
                    took_us: t * 1_000,
                })
                .collect(),
            failures: Vec::new(),
        }
    }

    #[test]
    fn percentiles_worst_and_windows() {
        let w = waits(&(1..=100).collect::<Vec<_>>());
        assert_eq!(w.worst(), Duration::from_millis(100));
        assert_eq!(w.percentile(99.0), Duration::from_millis(99));
        assert_eq!(w.percentile(50.0), Duration::from_millis(50));
        assert_eq!(w.percentile(0.0), Duration::from_millis(1));
        assert_eq!(w.over(Duration::from_millis(90)), 10);
        assert_eq!(w.between(10_000, 20_000).calls.len(), 10);
        assert_eq!(w.slowest(2)[0].took(), Duration::from_millis(100));
        assert_eq!(Waits::default().percentile(99.0), Duration::ZERO);
    }

    #[test]
    fn printed_calls_read_back() {
        let w = waits(&[3, 1, 400]);
        let line = w
            .calls
            .iter()
            .map(|c| format!("{}:{}", c.at_us, c.took_us))
            .collect::<Vec<_>>()
            .join(" ");
        let out = Output {
            stdout: vec![
                format!("RECORD_CALLS={line}"),
                "RECORD_FAILURE=database is locked".into(),
                "CLAIM_CALLS=".into(),
            ],
            stderr: String::new(),
        };
        let back = Waits::from_output(&out, "RECORD");
        assert!(Waits::from_output(&out, "CLAIM").calls.is_empty());
        assert_eq!(back.calls, w.calls);
        assert_eq!(back.failures, ["database is locked"]);
        assert_eq!(back.over(Duration::from_millis(250)), 1);
    }
}
