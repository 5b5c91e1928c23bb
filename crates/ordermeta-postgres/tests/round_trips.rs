//! Round trips per call, counted on the wire: a proxy between the store and the shared server
//! parses what the client sends and counts `Sync` and simple `Query` messages (each one
//! round trip; a sqlx ping is a lone `Sync`).
//!
//! A warm `record` or transition costs one round trip before it answers (its one statement,
//! autocommit: no BEGIN/COMMIT, no lease or setting statement) plus sqlx's check of the
//! connection as it goes back to the pool, after the answer. A connection used moments ago
//! is not pinged before use; one idle past `ping_after_idle` is.

mod common;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ordermeta_core::conformance::short_term;
use ordermeta_core::{MetadataStore, MetadataStoreExt, OrderStatus};
use ordermeta_postgres::sqlx::postgres::{PgConnectOptions, PgSslMode};
use ordermeta_postgres::{PgStore, PgStoreOptions};
use ordermeta_testkit::{database_url, poll_until, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Round trips the clients of a [`counting_proxy`] started.
#[derive(Clone, Default)]
struct RoundTrips(Arc<AtomicU64>);

impl RoundTrips {
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A loopback proxy to `upstream` counting the round trips its clients start.
async fn counting_proxy(upstream: SocketAddr) -> (SocketAddr, RoundTrips) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let trips = RoundTrips::default();
    let counter = trips.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut parser = Frontend::default();
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    counter
                        .0
                        .fetch_add(parser.feed(&buf[..n]), Ordering::SeqCst);
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
        }
    });
    (addr, trips)
}

/// The client's side of the PostgreSQL protocol, split into messages: untyped ones (SSL or
/// GSS request, startup) until the startup message, then a type byte and a length each.
#[derive(Default)]
struct Frontend {
    pending: Vec<u8>,
    started: bool,
}

impl Frontend {
    /// Takes more bytes; returns the round trips (`Sync`, `Query`) they completed.
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        self.pending.extend_from_slice(bytes);
        let mut trips = 0;
        loop {
            let head = usize::from(self.started);
            let Some(len) = self.pending.get(head..head + 4) else {
                return trips;
            };
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if self.pending.len() < head + len {
                return trips;
            }
            let message: Vec<u8> = self.pending.drain(..head + len).collect();
            if self.started {
                trips += u64::from(matches!(message[0], b'S' | b'Q'));
            } else if message.get(4..8) == Some(&[0, 3, 0, 0]) {
                // Protocol 3.0 startup; SSL/GSS requests (answered with one byte) come before.
                self.started = true;
            }
        }
    }
}

/// A store through a counting proxy (TLS off, so the proxy can read the protocol), on a
/// fresh schema, with one connection and group commit off: every call is one the test makes.
async fn store_behind_proxy(opts: PgStoreOptions) -> (PgStore, RoundTrips) {
    let direct = PgConnectOptions::from_str(&database_url()).expect("DATABASE_URL");
    let upstream: SocketAddr = tokio::net::lookup_host((direct.get_host(), direct.get_port()))
        .await
        .expect("resolve the server")
        .next()
        .expect("an address");
    let (proxy, trips) = counting_proxy(upstream).await;
    let store = opts
        .schema(unique_name("trips"))
        .max_connections(1)
        .group_commit(false)
        .connect_with(
            direct
                .host(&proxy.ip().to_string())
                .port(proxy.port())
                .ssl_mode(PgSslMode::Disable),
        )
        .await
        .expect("connect through the proxy");
    (store, trips)
}

/// Until the call's connection is back in the pool (sqlx's check on release done).
async fn idle(store: &PgStore) {
    poll_until("the connection is back", Duration::from_secs(30), || {
        let n = store.pool().num_idle();
        async move { n == 1 }
    })
    .await;
}

/// Runs `call` and returns the round trips it cost, its connection's release included.
async fn trips_of<F: Future>(store: &PgStore, trips: &RoundTrips, call: F) -> u64 {
    idle(store).await;
    let before = trips.get();
    call.await;
    idle(store).await;
    trips.get() - before
}

/// Warm statements on a connection used moments ago: one round trip each, plus the release
/// check. A record is one `INSERT`, a claim one `UPDATE`, in autocommit.
#[tokio::test]
async fn a_warm_write_is_one_round_trip_without_a_ping() {
    let (store, trips) = store_behind_proxy(PgStoreOptions::new()).await;
    // Prepares the statements on the connection (a first use costs a Parse round trip).
    store
        .record(&short_term("warm-up", OrderStatus::Active, 10))
        .await
        .expect("record");
    store.claim_for_cancel("warm-up").await.expect("claim");
    store.get("warm-up").await.expect("get");

    let pending = short_term("pending", OrderStatus::Pending, 10);
    let n = trips_of(&store, &trips, async {
        store.record(&pending).await.expect("record")
    })
    .await;
    assert_eq!(n, 2, "record: the INSERT, then sqlx's check on release");

    let activate = ordermeta_core::TransitionRequest::new(
        "pending",
        &[OrderStatus::Pending],
        OrderStatus::Active,
    );
    let n = trips_of(&store, &trips, async {
        store.transition(&activate).await.expect("activate")
    })
    .await;
    assert_eq!(n, 2, "transition: the UPDATE, then the release check");
    let n = trips_of(&store, &trips, async {
        store.claim_for_cancel("pending").await.expect("claim")
    })
    .await;
    assert_eq!(n, 2, "claim: the UPDATE, then the release check");
    common::drop_store(store).await;
}

/// Past `ping_after_idle` the connection is pinged before use (one round trip more); with
/// `Duration::ZERO`, before every use.
#[tokio::test]
async fn a_connection_idle_past_the_threshold_is_pinged() {
    let (store, trips) =
        store_behind_proxy(PgStoreOptions::new().ping_after_idle(Duration::from_millis(500))).await;
    store.get("x").await.expect("warm up");
    idle(&store).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let n = trips_of(&store, &trips, async { store.get("x").await.expect("get") }).await;
    assert_eq!(n, 3, "ping, SELECT, release check");
    common::drop_store(store).await;

    let (store, trips) =
        store_behind_proxy(PgStoreOptions::new().ping_after_idle(Duration::ZERO)).await;
    store.get("x").await.expect("warm up");
    let n = trips_of(&store, &trips, async { store.get("x").await.expect("get") }).await;
    assert_eq!(n, 3, "always pinged: ping, SELECT, release check");
    common::drop_store(store).await;

    let (store, trips) = store_behind_proxy(PgStoreOptions::new().test_before_acquire(false)).await;
    store.get("x").await.expect("warm up");
    idle(&store).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let n = trips_of(&store, &trips, async { store.get("x").await.expect("get") }).await;
    assert_eq!(n, 2, "never pinged: SELECT, release check");
    common::drop_store(store).await;
}
