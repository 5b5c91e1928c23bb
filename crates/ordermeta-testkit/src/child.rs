//! Re-running the current test binary as a child OS process.
//!
//! A test that needs a second process calls [`Child::spawn`] with its own name, an
//! environment key and a payload; the child runs the same test function, which first asks
//! [`payload`] whether it is the child and, if so, does the child's part and returns. The
//! child reports with lines such as `WINS=3` ([`Output::value`]) or `AT:after_claim`
//! ([`Child::wait_for_line`]), and can be SIGKILLed at any point ([`Child::kill9`]). Children
//! that race each other wait at a [`Gate`] so that they all start at once.
//!
//! libtest prints `test <name> ... ` without a newline before a test's first output when it
//! runs one test at a time; the harness strips it, so a child's first line reads as printed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The payload handed to this process when it runs as a child for `env_key`.
pub fn payload(env_key: &str) -> Option<String> {
    std::env::var(env_key).ok()
}

/// A running child process: the current test binary, running one test.
#[derive(Debug)]
pub struct Child {
    name: String,
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// What a finished child printed.
#[derive(Debug)]
pub struct Output {
    /// Every stdout line.
    pub stdout: Vec<String>,
    /// All of stderr.
    pub stderr: String,
}

impl Output {
    /// The value of the last `KEY=value` line on stdout.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.stdout
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    }

    /// The values of every `KEY=value` line on stdout, in order.
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.stdout
            .iter()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .collect()
    }

    /// The value of `KEY=value`, parsed; panics (naming the child's output) when absent.
    pub fn parsed<T: std::str::FromStr>(&self, key: &str) -> T {
        self.value(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("child printed no valid {key}=…: {:?}", self.stdout))
    }
}

impl Child {
    /// Runs `cargo test`'s binary again on exactly `test_name`, with `env_key=payload` in
    /// its environment (and `extra_env`).
    pub fn spawn(test_name: &str, env_key: &str, payload: &str) -> Self {
        Self::spawn_with(test_name, env_key, payload, &[])
    }

    /// [`spawn`](Self::spawn) with more environment variables.
    pub fn spawn_with(
        test_name: &str,
        env_key: &str,
        payload: &str,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", test_name, "--nocapture", "--test-threads=1"]);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Self::start(cmd, test_name, env_key, payload)
    }

    /// [`spawn`](Self::spawn) as the OS user `user`, through `runuser` (so the caller must be
    /// root), with the temporary directory as working directory. `None` where `runuser` is not
    /// installed.
    pub fn spawn_as(user: &str, test_name: &str, env_key: &str, payload: &str) -> Option<Self> {
        let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut cmd = Command::new(runuser);
        cmd.args(["-u", user, "--"])
            .arg(exe)
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env("TMPDIR", std::env::temp_dir())
            .current_dir(std::env::temp_dir());
        Some(Self::start(cmd, test_name, env_key, payload))
    }

    /// Starts `cmd` (the test binary on `test_name`) with `env_key=payload`, its output piped.
    fn start(mut cmd: Command, test_name: &str, env_key: &str, payload: &str) -> Self {
        cmd.env(env_key, payload)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the child test process");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        let libtest_prefix = format!("test {test_name} ... ");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let line = match line.strip_prefix(&libtest_prefix) {
                    Some(rest) => rest.to_owned(),
                    None => line,
                };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
            text
        });
        Child {
            name: format!("{test_name} [{payload}]"),
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the child prints a stdout line starting with `prefix`; returns it.
    /// Panics after `limit`, or if the child exits first.
    pub fn wait_for_line(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.starts_with(prefix);
                    self.seen.push(line.clone());
                    if hit {
                        return line;
                    }
                }
                Err(e) => {
                    // Exited (or stuck): show what it said on stderr, the likeliest clue.
                    if matches!(e, mpsc::RecvTimeoutError::Timeout) {
                        let _ = self.child.kill();
                    }
                    let _ = self.child.wait();
                    let stderr = self
                        .stderr
                        .take()
                        .and_then(|h| h.join().ok())
                        .unwrap_or_default();
                    panic!(
                        "child {} printed no line starting with {prefix:?} ({e:?}); stdout so far: {:?}\nstderr: {stderr}",
                        self.name, self.seen
                    )
                }
            }
        }
    }

    /// SIGKILLs the child (no cleanup, no destructors: a crash) and reaps it.
    pub fn kill9(mut self) {
        // std's kill() is SIGKILL on Unix.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the child to exit (at most `limit`, then it is killed and the test fails);
    /// it must exit successfully. Returns what it printed.
    pub fn wait_success(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("child {} still running after {limit:?}", self.name);
                }
                Err(e) => panic!("waiting for child {}: {e}", self.name),
            }
        };
        let mut stdout = std::mem::take(&mut self.seen);
        stdout.extend(self.lines.iter());
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        assert!(
            status.success(),
            "child {} failed ({status}):\nstdout: {stdout:#?}\nstderr: {stderr}",
            self.name
        );
        Output { stdout, stderr }
    }

    /// [`wait_success`](Self::wait_success) without blocking a tokio worker thread.
    pub async fn wait_success_async(self, limit: Duration) -> Output {
        tokio::task::spawn_blocking(move || self.wait_success(limit))
            .await
            .expect("child waiter")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A child left running by a failed test must not outlive it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The start line of a race between processes: each child gets ready (opens its store, …),
/// prints `READY` (the parent waits for that line with [`Child::wait_for_line`]) and waits at
/// the gate; the parent opens it once every child is ready, and they all start at once.
///
/// A file in a temporary directory of its own, so any process can wait for it; hand
/// [`path`](Self::path) to the children.
#[derive(Debug)]
pub struct Gate {
    dir: tempfile::TempDir,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ordermeta-gate-")
            .tempdir()
            .expect("tempdir for a gate");
        Gate { dir }
    }

    /// Where the children wait ([`Gate::wait`]).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("open")
    }

    /// Opens the gate: every waiting child starts.
    pub fn open(&self) {
        std::fs::write(self.path(), b"").expect("open the gate");
    }

    /// In a child: blocks until the gate at `path` is open; fails the test after `limit`.
    pub fn wait(path: &Path, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "the gate {} was not opened within {limit:?}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// [`wait`](Self::wait) without blocking a tokio worker thread.
    pub async fn wait_async(path: &Path, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !path.exists() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the gate {} was not opened within {limit:?}",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD_ENV: &str = "ORDERMETA_TESTKIT_CHILD";
    const LIMIT: Duration = Duration::from_secs(60);

    /// This test runs itself as a child: the child's lines arrive without libtest's prefix,
    /// and it starts only when the gate opens.
    #[test]
    fn child_reports_and_waits_at_the_gate() {
        if let Some(gate) = payload(CHILD_ENV) {
            println!("READY");
            Gate::wait(Path::new(&gate), LIMIT);
            println!("WON=a");
            println!("WON=b");
            println!("WINS=2");
            return;
        }
        let gate = Gate::new();
        let path = gate.path();
        let mut child = Child::spawn(
            "child::tests::child_reports_and_waits_at_the_gate",
            CHILD_ENV,
            &path.display().to_string(),
        );
        assert_eq!(child.wait_for_line("READY", LIMIT), "READY");
        gate.open();
        let out = child.wait_success(LIMIT);
        assert_eq!(out.values("WON"), ["a", "b"]);
        assert_eq!(out.parsed::<u32>("WINS"), 2);
        assert_eq!(out.value("NONE"), None);
    }
}
