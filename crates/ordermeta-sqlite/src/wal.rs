//! Sharing the file with other processes during bulk work: checkpoints off the write path,
//! and the pause between two batches.
//!
//! SQLite copies the WAL back into the database (a *checkpoint*) inside the commit that finds
//! the WAL past `wal_autocheckpoint` pages — whichever connection, and whichever process, that
//! commit belongs to — and that commit's caller waits for the copy and its two `fsync`s.
//! During a bulk expire of 1,000,000 orders, another process's one-row `record` that came
//! after a batch copied that batch's pages and waited for them: 390 ms in one run, over a
//! second on a loaded machine (measured by `tests/bulk.rs`; the same writer with automatic
//! checkpoints off waited 56 ms at most). So a store that opens its own file checkpoints
//! where no caller waits, on a connection of its own ([`Checkpointer`]):
//!
//! - every [`CHECKPOINT_INTERVAL`] in the background, and right after each batch of bulk
//!   work (`expire`, `purge`), outside the write lock, it copies the WAL in `PASSIVE` mode: it
//!   waits for no reader or writer, and none waits for it;
//! - the WAL only shrinks back when a write starts with every page copied, which a writer in
//!   another process that commits every few milliseconds keeps from happening; once the WAL
//!   passes [`RESTART_AT_PAGES`], the checkpoint also tries `RESTART` — without waiting: if a
//!   writer or a reader is in the way, it gives up until the next time. It holds the write
//!   lock only to copy the few pages written since the `PASSIVE` copy and sync them;
//! - the automatic checkpoint stays as a safety net at [`AUTOCHECKPOINT_PAGES`] (40 MiB of
//!   WAL instead of SQLite's 4 MiB): the checkpoints above keep the WAL far below it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqliteConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::task::JoinHandle;

/// How often the background task checkpoints the WAL. A checkpoint with nothing to copy costs
/// a lock and a header read; one with pages to copy syncs them.
pub(crate) const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// `PRAGMA wal_autocheckpoint` of the store's connections (pages of 4 KiB): a commit
/// checkpoints the WAL itself only past 40 MiB, which happens only if the checkpoints of the
/// [`Checkpointer`] fell far behind.
pub(crate) const AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// A WAL of at least this many pages (8 MiB) that a `PASSIVE` checkpoint copied entirely is
/// restarted from its beginning (`RESTART`, without waiting).
pub(crate) const RESTART_AT_PAGES: i64 = 2_000;

/// Copies the WAL back into the database on `conn` without waiting for anyone (`PASSIVE`),
/// then, on a connection without a busy timeout (`restart`), restarts a large WAL that it
/// copied entirely. Within `deadline`; best effort: a reader still on old pages, or another
/// checkpoint in progress, only leaves the rest to the next one.
async fn checkpoint_on(
    conn: &mut SqliteConnection,
    deadline: Duration,
    restart: bool,
    why: &'static str,
) {
    let run = async {
        let (busy, wal_pages, copied) =
            sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut *conn)
                .await?;
        tracing::trace!(why, busy, wal_pages, copied, "ordermeta-sqlite: checkpoint");
        if restart && busy == 0 && wal_pages >= RESTART_AT_PAGES && copied == wal_pages {
            let (busy, wal_pages, copied) =
                sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)")
                    .fetch_one(&mut *conn)
                    .await?;
            tracing::trace!(
                why,
                busy,
                wal_pages,
                copied,
                "ordermeta-sqlite: WAL restart"
            );
        }
        Ok::<_, sqlx::Error>(())
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(why, error = %e, "ordermeta-sqlite: checkpoint failed"),
        Err(_) => tracing::debug!(why, ?deadline, "ordermeta-sqlite: checkpoint timed out"),
    }
}

/// After a batch of bulk work, on the batch's own connection: the `PASSIVE` copy only (that
/// connection waits on busy_timeout, so it never tries `RESTART`). For stores without a
/// [`Checkpointer`] (a pool of the application's, an in-memory database).
pub(crate) async fn passive(conn: &mut SqliteConnection, deadline: Duration) {
    checkpoint_on(conn, deadline, false, "bulk").await;
}

/// The checkpoints of a store that opened its file: one connection of its own, with no busy
/// timeout (nothing it does ever waits for a lock), and a background task on the current tokio
/// runtime, stopped when the last clone of the store is dropped or the store is closed.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    pool: SqlitePool,
    deadline: Duration,
    task: JoinHandle<()>,
}

impl Checkpointer {
    /// Opens the checkpoint connection with `opts` and starts checkpointing every
    /// [`CHECKPOINT_INTERVAL`], each checkpoint within `deadline`.
    pub(crate) async fn start(
        opts: SqliteConnectOptions,
        pool: SqlitePoolOptions,
        deadline: Duration,
    ) -> Result<Arc<Self>, sqlx::Error> {
        // Connected like the store's other connections (a pragma of `opts` may have to wait),
        // then without a busy timeout: nothing this connection does waits for a lock.
        let pool = pool
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA busy_timeout = 0")
                        .execute(conn)
                        .await
                        .map(drop)
                })
            })
            .connect_with(opts)
            .await?;
        let background = pool.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if background.is_closed() {
                    return;
                }
                checkpoint_pool(&background, deadline, "background").await;
            }
        });
        Ok(Arc::new(Checkpointer {
            pool,
            deadline,
            task,
        }))
    }

    /// Checkpoints now (after a batch of bulk work); waits for a background checkpoint in
    /// progress to finish first.
    pub(crate) async fn checkpoint(&self, why: &'static str) {
        checkpoint_pool(&self.pool, self.deadline, why).await;
    }

    /// Stops the background task and closes the connection.
    pub(crate) async fn close(&self) {
        self.task.abort();
        self.pool.close().await;
    }
}

/// One checkpoint on the checkpoint connection of `pool`, within `deadline` (the wait for the
/// connection included).
async fn checkpoint_pool(pool: &SqlitePool, deadline: Duration, why: &'static str) {
    let start = tokio::time::Instant::now();
    let Ok(Ok(mut conn)) = tokio::time::timeout(deadline, pool.acquire()).await else {
        return;
    };
    let left = deadline.saturating_sub(start.elapsed());
    checkpoint_on(&mut conn, left, true, why).await;
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The pause after a full batch of bulk work that held (or waited for) SQLite's write lock
/// for `held`.
///
/// Another process waits for the write lock by polling: SQLite's busy handler sleeps 1, 2, 5,
/// 10, 15, 20, 25, 25, 25, 50, 50, then 100 ms between its tries. Batches back to back, or a
/// pause shorter than the sleep of a process that is waiting, can starve it. A process that
/// began to wait during the batch has waited `held` at most, so its sleeps are still at most
/// 25 ms (under 103 ms of waiting), 50 ms (under 178 ms) or 100 ms: a pause of that sleep,
/// with room for a late wake-up, lets it in after one batch at most — and short batches need
/// only short pauses, so that a large expire does not take minutes.
pub(crate) fn bulk_pause(held: Duration) -> Duration {
    let longest_sleep = match held.as_millis() {
        0..103 => 25,
        103..178 => 50,
        _ => 100,
    };
    Duration::from_millis(longest_sleep + 15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteJournalMode;

    /// The WAL's size in pages, as a `PASSIVE` checkpoint on `pool` reports it.
    async fn wal_pages(pool: &SqlitePool) -> i64 {
        let (_, pages, _) = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await
            .expect("checkpoint");
        pages
    }

    #[tokio::test]
    async fn the_checkpoint_connection_never_waits_and_lets_the_wal_start_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = SqliteConnectOptions::new()
            .filename(dir.path().join("wal.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .pragma("wal_autocheckpoint", "0");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .expect("writer");
        let checkpointer =
            Checkpointer::start(opts, SqlitePoolOptions::new(), Duration::from_secs(5))
                .await
                .expect("checkpointer");
        let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&checkpointer.pool)
            .await
            .expect("busy_timeout");
        assert_eq!(timeout, 0, "the checkpoint connection waits for no lock");

        // Well past RESTART_AT_PAGES of WAL, written with automatic checkpoints off: only the
        // checkpointer copies it back.
        sqlx::query("CREATE TABLE t (v BLOB)")
            .execute(&writer)
            .await
            .expect("create");
        for _ in 0..30 {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) \
                 INSERT INTO t SELECT randomblob(4000) FROM n",
            )
            .execute(&writer)
            .await
            .expect("insert");
        }
        assert!(wal_pages(&writer).await >= RESTART_AT_PAGES);
        checkpointer.checkpoint("test").await;
        // The next write starts the WAL over from its beginning.
        sqlx::query("INSERT INTO t VALUES (x'00')")
            .execute(&writer)
            .await
            .expect("insert after");
        let pages = wal_pages(&writer).await;
        assert!(pages < 10, "the WAL was restarted: {pages} pages");
        checkpointer.close().await;
        writer.close().await;
    }

    #[test]
    fn the_pause_outlasts_the_sleep_of_a_process_that_waited_during_the_batch() {
        assert_eq!(
            bulk_pause(Duration::from_millis(5)),
            Duration::from_millis(40)
        );
        assert_eq!(
            bulk_pause(Duration::from_millis(102)),
            Duration::from_millis(40)
        );
        assert_eq!(
            bulk_pause(Duration::from_millis(103)),
            Duration::from_millis(65)
        );
        assert_eq!(
            bulk_pause(Duration::from_millis(178)),
            Duration::from_millis(115)
        );
        assert_eq!(
            bulk_pause(Duration::from_secs(5)),
            Duration::from_millis(115)
        );
    }
}
