//! Private Redis servers and a Redis Cluster on free loopback ports, for tests that stop,
//! pause, kill or cluster a server (never the shared one).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::free_port;

/// A private redis-server. It dies with this guard, and also when the test process exits
/// without dropping it (a static): it runs under a shell that kills it when our end of its
/// stdin pipe closes.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its working directory (log, dumps, cluster config).
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

    /// A server on a free port in a temporary directory of its own, which goes with the server
    /// (also when this guard is never dropped).
    pub fn start_private(extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ordermeta-redis-")
            .tempdir()
            .expect("tempdir")
            .keep()
            .join("server");
        Self::start_with(free_port(), &dir, extra, true)
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

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id (from `INFO server`).
    pub fn pid(&self) -> u32 {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "info", "server"])
            .output()
            .expect("redis-cli must be on PATH");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO server names the process id")
    }

    /// Freezes the server with SIGSTOP: connections stay open, nothing is answered.
    /// Returns the pid to give to [`resume`](Self::resume).
    pub fn pause(&self) -> u32 {
        let pid = self.pid();
        signal(pid, "STOP");
        pid
    }

    /// Wakes a server frozen by [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&self, pid: u32) {
        signal(pid, "CONT");
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
    /// Its three master nodes.
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    /// Starts three nodes and joins them into a cluster; waits until every slot is served.
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

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill(1)");
    assert!(st.success(), "kill -{sig} {pid}");
}
