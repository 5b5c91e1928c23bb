//! Loopback ports, a listener that accepts and never answers (a hung server), and a TCP
//! [`FaultProxy`] that injects latency, drops, resets and blackholes.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::task::JoinHandle;

/// A free loopback port (bound, then released for a server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A TCP listener on loopback that accepts every connection, reads and discards what it is
/// sent, and never writes a byte: a server that hangs after the TCP handshake. Stops (and
/// closes every connection) when dropped.
#[derive(Debug)]
pub struct SilentListener {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl SilentListener {
    /// Starts listening on a free loopback port. Needs a tokio runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            // A JoinSet aborts every connection task when this task is aborted (dropped).
            let mut held = tokio::task::JoinSet::new();
            while let Ok((mut sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                // Keep reading so the peer's writes never block, answer nothing.
                held.spawn(async move {
                    let mut sink = tokio::io::sink();
                    let _ = tokio::io::copy(&mut sock, &mut sink).await;
                    // Hold the socket open after the peer stops writing.
                    std::future::pending::<()>().await;
                });
            }
        });
        SilentListener {
            addr,
            accepted,
            task,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many connections it accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub use crate::fault::{FaultCounts, FaultProxy, ProxyMode};
