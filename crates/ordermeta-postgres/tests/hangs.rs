//! Hung servers: every call ends within its deadline with a typed error, and the store works
//! again once the server does. Real servers and real connections: a TCP listener that never
//! answers, a row locked by another session of the shared server, and a private server whose
//! processes are frozen with SIGSTOP.

mod common;

use std::time::Duration;

use ordermeta_core::conformance::short_term;
use ordermeta_core::{MetadataStore, MetadataStoreExt, OrderStatus, StoreError};
use ordermeta_postgres::sqlx::{self, Connection as _, PgConnection};
use ordermeta_postgres::{PgError, PgStore, PgStoreOptions};
use ordermeta_testkit::net::SilentListener;
use ordermeta_testkit::pg::PrivatePg;
use ordermeta_testkit::{database_url, fails_within, poll_until};

/// The operation deadline the tests configure.
const DEADLINE: Duration = Duration::from_secs(1);
/// What a call may take beyond its deadline on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(4);

/// A server that accepts the TCP connection and never answers: `connect` gives up within
/// its deadline, naming the server, instead of waiting for ever.
#[tokio::test]
async fn connecting_to_a_silent_server_fails_within_the_deadline() {
    let silent = SilentListener::start().await;
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", silent.port());
    let (e, _) = fails_within(
        "connect",
        DEADLINE + MARGIN,
        PgStoreOptions::new()
            .operation_timeout(DEADLINE)
            .connect(&url),
    )
    .await;
    // The first connection gets 4/5 of the deadline: it is reported as a connect error
    // naming the server (nothing could be sent), not as a bare Timeout.
    match common::pg_error(&e) {
        PgError::Connect { target, .. } => {
            assert_eq!(target, &format!("127.0.0.1:{}/postgres", silent.port()));
        }
        other => panic!("expected a connect error: {other:?}"),
    }
    assert!(silent.accepted() >= 1, "the listener saw the connection");

    // The same with the default deadline: 5 s, never unbounded.
    let (e, took) = fails_within(
        "connect with the defaults",
        Duration::from_secs(5) + MARGIN,
        PgStore::connect(&url),
    )
    .await;
    assert!(
        matches!(common::pg_error(&e), PgError::Connect { .. }),
        "{e:?}"
    );
    assert!(
        took >= Duration::from_secs(3),
        "waited its acquire timeout: {took:?}"
    );
}

/// Another session holds the order's row lock (`SELECT … FOR UPDATE` in an open
/// transaction): a claim of that order fails within its deadline — the server's
/// `lock_timeout` cancels the wait, nothing is written — and succeeds once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_row_fails_within_the_deadline_and_recovers() {
    let store = common::fresh_store(
        "hang_lock",
        PgStoreOptions::new().operation_timeout(DEADLINE),
    )
    .await;
    let body = async {
        store
            .record(&short_term("locked", OrderStatus::Active, 100))
            .await
            .expect("record");

        let mut other = PgConnection::connect(&database_url())
            .await
            .expect("second session");
        sqlx::raw_sql("BEGIN")
            .execute(&mut other)
            .await
            .expect("begin");
        sqlx::query(&format!(
            "SELECT order_id FROM {} WHERE order_id = 'locked' FOR UPDATE",
            store.table()
        ))
        .fetch_one(&mut other)
        .await
        .expect("lock the row");

        for attempt in 0..2 {
            let (e, took) = fails_within(
                "claim of a locked row",
                DEADLINE + MARGIN,
                store.claim_for_cancel("locked"),
            )
            .await;
            assert!(
                matches!(common::pg_error(&e), PgError::LockTimeout { .. }),
                "attempt {attempt}: {e:?}"
            );
            // lock_timeout defaults to 3/5 of the operation timeout.
            assert!(took >= Duration::from_millis(500), "{took:?}");
        }
        // Reads do not wait for row locks.
        let m = store.get_required("locked").await.expect("get");
        assert_eq!(
            (m.status, m.version),
            (OrderStatus::Active, 1),
            "nothing written"
        );

        sqlx::raw_sql("ROLLBACK")
            .execute(&mut other)
            .await
            .expect("release");
        let claimed = store
            .claim_for_cancel("locked")
            .await
            .expect("claim after release");
        assert_eq!(
            (claimed.status, claimed.version),
            (OrderStatus::Cancelling, 2)
        );
        other.close().await.expect("close");
    };
    let r = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body)).await;
    common::drop_store(store).await;
    if let Err(panic) = r {
        std::panic::resume_unwind(panic);
    }
}

/// With the server-side timeouts turned off only the operation deadline bounds a lock wait:
/// the claim answers `Timeout` (its read-back shows it not applied), and the statement the
/// server was still holding applies once the lock is released — what "outcome unknown"
/// means, and why a timed-out write is read back, never blindly repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_server_timeouts_the_deadline_still_bounds_a_lock_wait() {
    let opts = PgStoreOptions::new()
        .operation_timeout(DEADLINE)
        .lock_timeout(Duration::ZERO)
        .statement_timeout(Duration::ZERO);
    let store = common::fresh_store("hang_nolock", opts).await;
    let body = async {
        store
            .record(&short_term("held", OrderStatus::Active, 100))
            .await
            .expect("record");
        let mut other = PgConnection::connect(&database_url())
            .await
            .expect("second session");
        sqlx::raw_sql("BEGIN")
            .execute(&mut other)
            .await
            .expect("begin");
        sqlx::query(&format!(
            "SELECT order_id FROM {} WHERE order_id = 'held' FOR UPDATE",
            store.table()
        ))
        .fetch_one(&mut other)
        .await
        .expect("lock the row");

        let (e, took) = fails_within(
            "claim without lock_timeout",
            DEADLINE + Duration::from_secs(1) + MARGIN,
            store.claim_for_cancel("held"),
        )
        .await;
        assert!(
            matches!(e, StoreError::Timeout { operation: "transition", after } if after == DEADLINE),
            "{e:?}"
        );
        assert!(took >= DEADLINE, "{took:?}");

        sqlx::raw_sql("COMMIT")
            .execute(&mut other)
            .await
            .expect("release");
        // The abandoned statement was still waiting in the server: it applies now.
        poll_until(
            "the timed-out claim applies",
            Duration::from_secs(10),
            || async {
                matches!(
                    store.get("held").await,
                    Ok(Some(m)) if m.status == OrderStatus::Cancelling
                )
            },
        )
        .await;
        let again = store.claim_for_cancel("held").await;
        assert_eq!(
            again.err().and_then(|e| e.current_status()),
            Some(OrderStatus::Cancelling),
            "read back, not claimed twice"
        );
        other.close().await.expect("close");
    };
    let r = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body)).await;
    common::drop_store(store).await;
    if let Err(panic) = r {
        std::panic::resume_unwind(panic);
    }
}

/// The processes of a private server, frozen with SIGSTOP (postmaster first, so it forks no
/// new backend) and thawed with SIGCONT on drop, also when the test panics.
struct Frozen(Vec<u32>);

/// The parent pid of `pid`, from `/proc/<pid>/stat` (the command name may hold spaces or
/// parentheses: the fields after the last `)` are plain).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn signal(sig: &str, pid: u32) {
    let st = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill {sig} {pid}");
}

impl Frozen {
    /// Freezes the server `backend_pid` belongs to: its postmaster and every child of it.
    fn server_of(backend_pid: u32) -> Self {
        let postmaster = parent_of(backend_pid).expect("the backend's postmaster");
        signal("-STOP", postmaster);
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
                && parent_of(pid) == Some(postmaster)
            {
                signal("-STOP", pid);
                pids.push(pid);
            }
        }
        assert!(pids.len() > 2, "postmaster and its children: {pids:?}");
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // Children first: the postmaster then finds them running.
        for pid in self.0.iter().rev() {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
    }
}

/// A server that stops answering in the middle of the run (every process SIGSTOPped, the
/// connections stay open): a `record` whose INSERT is already on the wire answers `Timeout`
/// within its deadline plus the read-back's, every other call fails within its deadline too,
/// and after SIGCONT the store works again and the read-back tells what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_times_out_and_the_store_recovers() {
    let pg = PrivatePg::start(None);
    let store = PgStoreOptions::new()
        .schema("frozen")
        .operation_timeout(DEADLINE)
        .read_back_timeout(DEADLINE)
        .max_connections(4)
        // The idle connection is used without a ping, so the INSERT itself meets the frozen
        // server (with the ping, the call would hang, and fail, before sending anything).
        .test_before_acquire(false)
        .connect(&pg.url())
        .await
        .expect("connect to the private server");
    store
        .record(&short_term("before", OrderStatus::Active, 100))
        .await
        .expect("record before");
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("backend pid");
    let backend = u32::try_from(backend).expect("pid");

    let frozen = Frozen::server_of(backend);
    let late = short_term("during", OrderStatus::Active, 100);
    let (e, took) = fails_within(
        "record on a frozen server",
        DEADLINE * 2 + MARGIN,
        store.record(&late),
    )
    .await;
    assert!(
        matches!(e, StoreError::Timeout { operation: "record", after } if after == DEADLINE),
        "{e:?}"
    );
    assert!(took >= DEADLINE, "{took:?}");
    // Calls that cannot get a connection say so (nothing sent) before their deadline;
    // one that does gets a Timeout. Either way, typed and in time.
    for (what, r) in [
        (
            "claim",
            fails_within(
                "claim on a frozen server",
                DEADLINE * 2 + MARGIN,
                store.claim_for_cancel("before"),
            )
            .await
            .0,
        ),
        (
            "get",
            fails_within(
                "get on a frozen server",
                DEADLINE + MARGIN,
                store.get("before"),
            )
            .await
            .0,
        ),
        (
            "health",
            fails_within(
                "health on a frozen server",
                DEADLINE + MARGIN,
                store.health(),
            )
            .await
            .0,
        ),
    ] {
        let typed = matches!(r, StoreError::Timeout { .. })
            || matches!(common::pg_error(&r), PgError::Database { .. });
        assert!(typed, "{what}: {r:?}");
    }

    drop(frozen);
    poll_until(
        "the store answers again",
        Duration::from_secs(30),
        || async { store.health().await.is_ok() },
    )
    .await;
    // The INSERT was on the wire when the server froze: it applied once the server woke
    // up. Reading back tells; recording again would be refused.
    assert_eq!(
        store.get("during").await.expect("read back"),
        Some(late.clone())
    );
    assert_eq!(
        store.record(&late).await.err().map(|e| e.kind()),
        Some(ordermeta_core::ErrorKind::AlreadyExists)
    );
    store
        .record(&short_term("after", OrderStatus::Active, 100))
        .await
        .expect("record after the thaw");
    let claimed = store
        .claim_for_cancel("before")
        .await
        .expect("claim after the thaw");
    assert_eq!(claimed.status, OrderStatus::Cancelling);
    store.close().await;
}
