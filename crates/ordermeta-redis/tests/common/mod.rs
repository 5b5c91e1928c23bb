//! Test support: namespaces, the shared server, and private servers and clusters on free ports.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ordermeta_core::conformance::TestStore;
use ordermeta_redis::RedisStore;

/// The shared server: `REDIS_URL`, else the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A namespace no other test (or test process) uses.
pub fn unique_namespace(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "test-{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Connects to `url` in a fresh namespace; panics (never skips) when the server is missing.
pub async fn connect_fresh(url: &str, prefix: &str) -> RedisStore {
    RedisStore::builder(url)
        .namespace(unique_namespace(prefix))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is required for this test ({e}); run ./scripts/test.sh or set REDIS_URL"))
}

/// A conformance `TestStore` whose namespace is deleted afterwards.
pub fn test_store(store: RedisStore) -> TestStore {
    let cleanup = store.clone();
    TestStore::with_cleanup(Arc::new(store), async move {
        cleanup
            .delete_namespace()
            .await
            .expect("delete the test namespace");
    })
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A private redis-server. It dies with this guard, and also when the test process exits
/// without dropping it (a static): it runs under a shell that kills it when our end of its
/// stdin pipe closes.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

const WRAPPER: &str = r#"redis-server "$@" </dev/null >/dev/null 2>&1 &
pid=$!
cat >/dev/null
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
if [ -n "$RM_DIR" ]; then rm -rf "$RM_DIR"; rmdir "$(dirname "$RM_DIR")" 2>/dev/null; fi
exit 0"#;

impl RedisServer {
    /// Starts `redis-server --port <port> --dir <dir> <extra…>` and waits until it answers PING.
    pub fn start(port: u16, dir: &Path, extra: &[&str]) -> Self {
        Self::start_with(port, dir, extra, false)
    }

    /// Like [`start`](Self::start); with `remove_dir`, the wrapper deletes `dir` (and its
    /// parent, once empty) after the server is gone, even if this guard is never dropped.
    pub fn start_with(port: u16, dir: &Path, extra: &[&str], remove_dir: bool) -> Self {
        std::fs::create_dir_all(dir).expect("server dir");
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--save".into(),
            String::new(),
            "--logfile".into(),
            dir.join("redis.log").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .args(&args)
            .env(
                "RM_DIR",
                if remove_dir {
                    dir.as_os_str()
                } else {
                    "".as_ref()
                },
            )
            .stdin(Stdio::piped())
            .spawn()
            .expect("redis-server must be on PATH (./scripts/test.sh installs it)");
        let stdin = child.stdin.take();
        let server = RedisServer {
            port,
            dir: dir.to_owned(),
            child,
            stdin,
        };
        // A TLS-only server does not answer a plain PING; its test polls a TLS connect.
        if !extra.contains(&"--tls-port") {
            server.wait_ready();
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = std::net::TcpStream::connect(("127.0.0.1", self.port))
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(1)))?;
                    s.write_all(b"PING\r\n")?;
                    let mut buf = [0u8; 64];
                    let n = std::io::Read::read(&mut s, &mut buf)?;
                    // +PONG, or -NOAUTH when a password is required: either way it serves.
                    Ok(n > 0 && (buf.starts_with(b"+PONG") || buf.starts_with(b"-NOAUTH")))
                })
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start; see {}",
                self.port,
                self.dir.join("redis.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the server (no shutdown, no final save) and waits until it is gone.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A 3-master Redis Cluster on free loopback ports, built with `redis-cli --cluster create`.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    pub fn start() -> Self {
        // Each node's wrapper removes its own directory (and the parent, once empty), so a
        // cluster held in a static, never dropped, leaves nothing behind either.
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let node_dir = dir.join(port.to_string());
            let conf = node_dir.join("nodes.conf").display().to_string();
            nodes.push(RedisServer::start_with(
                port,
                &node_dir,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "5000",
                    "--appendonly",
                    "no",
                ],
                true,
            ));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli must be on PATH (./scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster { nodes };
        cluster.wait_ok();
        cluster
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in &self.nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster never became ok: {info}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// `redis+cluster://127.0.0.1:a,127.0.0.1:b,127.0.0.1:c`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}
