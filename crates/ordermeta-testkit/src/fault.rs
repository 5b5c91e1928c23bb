//! A TCP proxy on loopback that injects network faults between ordermeta and a real server
//! (the node simulator, PostgreSQL, Redis): latency, dropped connections, a reply reset
//! part-way, a blackhole for a while. Hang tests freeze a connection with it; the soak
//! (`tests/soak.rs`) injects faults at random through it.
//!
//! Bounded: latency and blackholes are capped ([`MAX_FAULT`]) and every timed fault ends by
//! itself; the proxy stops (closing every connection) when dropped. It counts what it did.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The longest latency or blackhole a proxy accepts: a fault is a hiccup, not an outage that
/// outlives the test.
pub const MAX_FAULT: Duration = Duration::from_secs(30);

/// What a [`FaultProxy`] does with the bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Pass,
    /// Keep every connection open but forward nothing (bytes wait, none are lost): a server
    /// (or network) that stops answering mid-request. Back in `Pass`, what waited flows on.
    Blackhole,
    /// Forward both ways, each chunk delayed by this long (capped at [`MAX_FAULT`]).
    Latency(Duration),
}

/// How many faults a [`FaultProxy`] injected, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Connections accepted.
    pub connections: u64,
    /// Chunks delayed by [`ProxyMode::Latency`].
    pub delayed_chunks: u64,
    /// Connections closed by [`FaultProxy::drop_connections`].
    pub dropped: u64,
    /// Replies cut part-way and reset by [`FaultProxy::reset_next_reply`].
    pub resets: u64,
    /// Blackholes started by [`FaultProxy::blackhole_for`].
    pub blackholes: u64,
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections, {} delayed chunks, {} dropped, {} resets mid-reply, {} blackholes",
            self.connections, self.delayed_chunks, self.dropped, self.resets, self.blackholes
        )
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    delayed_chunks: AtomicU64,
    dropped: AtomicU64,
    resets: AtomicU64,
    blackholes: AtomicU64,
    /// Resets armed and not yet done: the next replies (one per arming) are cut.
    armed_resets: AtomicU64,
    /// Bytes of a reply forwarded before it is cut.
    reset_after: AtomicU64,
}

/// State every connection of one proxy shares.
#[derive(Debug)]
struct Shared {
    mode: watch::Sender<ProxyMode>,
    /// Bumped to close every open connection.
    epoch: watch::Sender<u64>,
    counts: Counters,
}

/// A TCP proxy on loopback in front of a real server: forwards both ways until told to
/// inject a fault ([`set_mode`](Self::set_mode), [`blackhole_for`](Self::blackhole_for),
/// [`drop_connections`](Self::drop_connections), [`reset_next_reply`](Self::reset_next_reply)).
/// Stops (closing every connection) when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    /// Timers ending timed faults; aborted with the proxy.
    timers: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl FaultProxy {
    /// Starts forwarding a free loopback port to `upstream`. Needs a tokio runtime.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            mode: watch::channel(ProxyMode::Pass).0,
            epoch: watch::channel(0).0,
            counts: Counters::default(),
        });
        let accept = shared.clone();
        let task = tokio::spawn(async move {
            // A JoinSet aborts every connection task when this task is aborted (dropped).
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                accept.counts.connections.fetch_add(1, Ordering::Relaxed);
                let shared = accept.clone();
                conns.spawn(connection(client, upstream, shared));
                // Reap finished connections so a long soak does not accumulate them.
                while conns.try_join_next().is_some() {}
            }
        });
        FaultProxy {
            addr,
            shared,
            task,
            timers: std::sync::Mutex::new(tokio::task::JoinSet::new()),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches what the proxy does, for every connection at once, until switched again.
    pub fn set_mode(&self, mode: ProxyMode) {
        let mode = match mode {
            ProxyMode::Latency(d) => ProxyMode::Latency(d.min(MAX_FAULT)),
            m => m,
        };
        self.shared.mode.send_replace(mode);
    }

    /// What the proxy does now.
    pub fn mode(&self) -> ProxyMode {
        *self.shared.mode.borrow()
    }

    /// Forwards nothing for `duration` (capped at [`MAX_FAULT`]), then passes again by itself.
    pub fn blackhole_for(&self, duration: Duration) {
        let duration = duration.min(MAX_FAULT);
        self.shared
            .counts
            .blackholes
            .fetch_add(1, Ordering::Relaxed);
        self.set_mode(ProxyMode::Blackhole);
        let shared = self.shared.clone();
        let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
        while timers.try_join_next().is_some() {}
        timers.spawn(async move {
            tokio::time::sleep(duration).await;
            shared.mode.send_if_modified(|m| {
                let was = *m == ProxyMode::Blackhole;
                if was {
                    *m = ProxyMode::Pass;
                }
                was
            });
        });
    }

    /// Closes every open connection now (new ones are accepted as before): a server restart
    /// or a NAT timeout as the client sees it.
    pub fn drop_connections(&self) {
        self.shared.epoch.send_modify(|e| *e += 1);
    }

    /// Cuts the next reply (server to client) of some connection after `after` bytes and
    /// resets that connection (RST): a server or network dying mid-answer. Each call arms one.
    pub fn reset_next_reply(&self, after: usize) {
        let c = &self.shared.counts;
        c.reset_after
            .store(u64::try_from(after).unwrap_or(u64::MAX), Ordering::Relaxed);
        c.armed_resets.fetch_add(1, Ordering::Relaxed);
    }

    /// Back to plain forwarding: no mode, no armed reset (what a soak calls before checking).
    pub fn heal(&self) {
        self.set_mode(ProxyMode::Pass);
        self.shared.counts.armed_resets.store(0, Ordering::Relaxed);
    }

    /// What it injected so far.
    pub fn counts(&self) -> FaultCounts {
        let c = &self.shared.counts;
        FaultCounts {
            connections: c.connections.load(Ordering::Relaxed),
            delayed_chunks: c.delayed_chunks.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            blackholes: c.blackholes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(mut timers) = self.timers.lock() {
            timers.abort_all();
        }
    }
}

/// How a pump ended.
enum End {
    /// The reading side closed (or an I/O error): close gently.
    Closed,
    /// A reset was injected: reset the client connection.
    Reset,
}

/// One proxied connection: two pumps until either ends, the proxy drops every connection,
/// or a reset is injected.
async fn connection(mut client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let mut epoch = shared.epoch.subscribe();
    epoch.mark_unchanged();
    let end = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        let up = pump(cr, sw, &shared, false);
        let down = pump(sr, cw, &shared, true);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let end = tokio::select! {
                e = &mut up, if !up_done => { up_done = true; e }
                e = &mut down, if !down_done => { down_done = true; e }
                _ = epoch.changed() => {
                    shared.counts.dropped.fetch_add(1, Ordering::Relaxed);
                    End::Reset
                }
            };
            // A reset ends both directions at once; a close waits for the other side.
            if matches!(end, End::Reset) || (up_done && down_done) {
                break end;
            }
        }
    };
    if matches!(end, End::Reset) {
        // SO_LINGER 0: dropping the socket sends an RST, not a FIN.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}

/// Copies `from` to `to`. While the mode is `Blackhole` it holds what it read and reads no
/// more, so nothing is lost and TCP back-pressure reaches the sender; under `Latency` each
/// chunk waits first. Replies (`reply`) may be cut by an armed reset.
async fn pump(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    shared: &Shared,
    reply: bool,
) -> End {
    let mut mode = shared.mode.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = match mode.wait_for(|m| *m != ProxyMode::Blackhole).await {
            Ok(m) => *m,
            Err(_) => break,
        };
        if let ProxyMode::Latency(d) = now {
            shared.counts.delayed_chunks.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(d).await;
        }
        if reply && take_armed(&shared.counts) {
            let after = shared.counts.reset_after.load(Ordering::Relaxed);
            let keep = usize::try_from(after).unwrap_or(usize::MAX).min(n);
            let _ = to.write_all(&buf[..keep]).await;
            shared.counts.resets.fetch_add(1, Ordering::Relaxed);
            return End::Reset;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    End::Closed
}

/// Takes one armed reset, if any.
fn take_armed(c: &Counters) -> bool {
    c.armed_resets
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await?;
        Ok(got)
    }

    #[tokio::test]
    async fn injects_and_counts_every_fault() {
        let proxy = FaultProxy::start(echo().await).await;
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut s, b"hello").await.unwrap(), b"hello");

        proxy.set_mode(ProxyMode::Latency(Duration::from_millis(100)));
        let t = Instant::now();
        assert_eq!(round_trip(&mut s, b"slow").await.unwrap(), b"slow");
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        proxy.set_mode(ProxyMode::Pass);

        // A blackhole holds the bytes, then passes them on by itself.
        proxy.blackhole_for(Duration::from_millis(300));
        let t = Instant::now();
        assert_eq!(round_trip(&mut s, b"held").await.unwrap(), b"held");
        assert!(
            t.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(proxy.mode(), ProxyMode::Pass);

        // A reset mid-reply: 2 bytes arrive, then the connection is reset.
        proxy.reset_next_reply(2);
        s.write_all(b"abcdef").await.unwrap();
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got).await;
        assert_eq!(got, b"ab");
        assert!(r.is_err(), "an RST, not a clean close: {r:?}");

        // Drop: every open connection closes; new ones work.
        let mut s2 = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut s2, b"x").await.unwrap(), b"x");
        proxy.drop_connections();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s2.read_to_end(&mut rest))
            .await
            .expect("closed");
        let mut s3 = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut s3, b"y").await.unwrap(), b"y");

        let c = proxy.counts();
        assert_eq!((c.resets, c.blackholes, c.dropped), (1, 1, 1), "{c}");
        assert_eq!(c.connections, 3, "{c}");
        assert!(c.delayed_chunks >= 2, "{c}");
    }
}
