//! The partitioning measurement recorded in the crate docs. Run by hand, never in CI:
//!
//! ```text
//! cargo run --release -p ordermeta-postgres --example partitioning -- 1000000 postgres://…
//! cargo run --release -p ordermeta-postgres --example partitioning -- 10000000 postgres://…
//! ```
//!
//! It fills two schemas with `rows` records (12 months of `placed_at`, 1 % open orders, the
//! rest terminal) with `generate_series`, one with the store's table as migrated, one with the
//! same table partitioned by month on `placed_at`, and times the store's own operations on
//! both (the store runs unchanged on the partitioned table: same name, same columns). It
//! drops both schemas at the end. Use a private server: it writes gigabytes.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use ordermeta_core::conformance::short_term;
use ordermeta_core::{ExpireRequest, MetadataStore, MetadataStoreExt, OrderId, OrderStatus};
use ordermeta_postgres::{PgStore, PgStoreOptions, sqlx};

const MIGRATION: &str = include_str!("../migrations/0001_create_dydx_order_metadata.sql");
const OWNER: &str = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn";
const CHUNK: i64 = 500_000;

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Plain,
    Monthly,
}

/// Orders of the last month are still open (every 100th, from this one on); older ones are
/// all terminal, as in a real book where short-term orders live seconds.
fn open_start(rows: i64) -> i64 {
    (rows * 11 / 12) / 100 * 100 + 100
}

fn order_id(i: i64) -> String {
    format!("o{i:09}")
}

async fn sql(store: &PgStore, text: &str) -> anyhow::Result<()> {
    sqlx::raw_sql(text).execute(store.pool()).await?;
    Ok(())
}

async fn setup(url: &str, layout: Layout, rows: i64) -> anyhow::Result<(PgStore, Duration)> {
    let schema = match layout {
        Layout::Plain => "om_partbench_plain",
        Layout::Monthly => "om_partbench_monthly",
    };
    let admin = sqlx::PgPool::connect(url).await?;
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await?;
    if layout == Layout::Monthly {
        // The migrated table, partitioned: the primary key must include the partition key.
        let ddl = MIGRATION
            .replace(
                "order_id            TEXT COLLATE \"C\" PRIMARY KEY,",
                "order_id            TEXT COLLATE \"C\" NOT NULL,",
            )
            .replace(
                "history             JSONB       NOT NULL\n);",
                "history             JSONB       NOT NULL,\n    PRIMARY KEY (order_id, placed_at)\n) PARTITION BY RANGE (placed_at);",
            );
        assert!(ddl.contains("PARTITION BY"), "migration text changed");
        let mut tx = admin.begin().await?;
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}; {ddl}; \
             DO $$ BEGIN FOR m IN 0..23 LOOP EXECUTE format( \
               'CREATE TABLE dydx_order_metadata_m%s PARTITION OF dydx_order_metadata \
                FOR VALUES FROM (%L) TO (%L)', m, \
               timestamptz '2025-01-01 00:00+00' + make_interval(months => m), \
               timestamptz '2025-01-01 00:00+00' + make_interval(months => m + 1)); \
             END LOOP; END $$; \
             CREATE TABLE dydx_order_metadata_default PARTITION OF dydx_order_metadata DEFAULT; \
             CREATE TABLE ordermeta_migrations (version BIGINT PRIMARY KEY, \
               description TEXT NOT NULL, checksum BYTEA NOT NULL, \
               applied_at TIMESTAMPTZ NOT NULL DEFAULT now());"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {schema}.ordermeta_migrations (version, description, checksum) \
             VALUES (1, 'create dydx_order_metadata', sha256(convert_to($1, 'UTF8')))"
        ))
        .bind(MIGRATION)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    admin.close().await;
    let store = PgStoreOptions::new()
        .schema(schema)
        .max_connections(2)
        .connect(url)
        .await?;

    let dydx_id = OrderId {
        owner: OWNER.into(),
        subaccount_number: 0,
        client_id: 7,
        order_flags: 0,
        clob_pair_id: 0,
    }
    .to_base64();
    let insert = format!(
        "INSERT INTO {t} (order_id, dydx_order_id, good_until_block, good_til_block_time, \
           client_id, subaccount_number, owner, order_flags, clob_pair_id, symbol, side, \
           quantity, price, order_type, placed_at, updated_at, cancelled_at, tx_hash, \
           cancel_tx_hash, status, version, history) \
         SELECT 'o' || lpad(i::text, 9, '0'), $1, i, NULL, 7, 0, $2, 0, 0, 'BTC-USD', 'buy', \
           '0.01', '65000', 'limit', p, p + interval '1 minute', NULL, 'A1B2C3D4', NULL, st, 1, \
           jsonb_build_array(jsonb_build_object('status', st, 'at', \
             to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
             'reason', 'recorded')) \
         FROM (SELECT i, \
                 timestamptz '2025-01-01 00:00+00' + (i::float8 / $3) * interval '365 days' AS p, \
                 CASE WHEN i % 100 = 0 AND i >= $6 THEN 'active' WHEN i % 3 = 0 THEN 'filled' \
                      WHEN i % 3 = 1 THEN 'cancelled' ELSE 'expired' END AS st \
               FROM generate_series($4::int8, $5::int8) AS i) g",
        t = store.table()
    );
    let started = Instant::now();
    let mut from = 1;
    while from <= rows {
        let to = (from + CHUNK - 1).min(rows);
        sqlx::query(&insert)
            .bind(&dydx_id)
            .bind(OWNER)
            .bind(rows as f64)
            .bind(from)
            .bind(to)
            .bind(open_start(rows))
            .execute(store.pool())
            .await?;
        from = to + 1;
    }
    sql(&store, &format!("VACUUM ANALYZE {}", store.table())).await?;
    Ok((store, started.elapsed()))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn measure(url: &str, layout: Layout, rows: i64) -> anyhow::Result<Vec<(String, String)>> {
    let (store, load) = setup(url, layout, rows).await?;
    let mut out = vec![(
        "load (generate_series + VACUUM ANALYZE)".to_owned(),
        format!("{:.0} s", load.as_secs_f64()),
    )];
    let size: String = sqlx::query_scalar(&format!(
        "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = '{}' AND c.relkind IN ('r', 'p')",
        store.schema()
    ))
    .fetch_one(store.pool())
    .await?;
    out.push(("size (heap + indexes)".into(), size));

    // get: random existing ids.
    let n = 2_000;
    let started = Instant::now();
    for k in 0..n {
        let i = (k * 7_919_993 + 13) % rows + 1;
        store
            .get(&order_id(i))
            .await?
            .ok_or_else(|| anyhow::anyhow!("missing {i}"))?;
    }
    out.push(("get (mean)".into(), ms(started.elapsed() / n as u32)));

    // record: new orders.
    let started = Instant::now();
    for k in 0..n {
        store
            .record(&short_term(&format!("new-{k}"), OrderStatus::Active, 5))
            .await?;
    }
    out.push(("record (mean)".into(), ms(started.elapsed() / n as u32)));

    // claim: open orders of the last month.
    let open = (rows - open_start(rows)) / 100;
    let claims = 500;
    let started = Instant::now();
    for k in 0..claims {
        let i = open_start(rows) + ((k * 104_729) % open) * 100;
        store.claim_for_cancel(&order_id(i)).await?;
    }
    out.push(("claim (mean)".into(), ms(started.elapsed() / claims as u32)));

    // expire: open orders have good_until_block = i; this height expires up to 1,000 of them
    // (plus the records above, good-til block 5).
    let height = u32::try_from(open_start(rows) + 99_900)?;
    let at = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let started = Instant::now();
    let expired = store
        .expire(&ExpireRequest::new(Some(height), None).at(at))
        .await?;
    out.push((format!("expire ({expired} expire)"), ms(started.elapsed())));
    let started = Instant::now();
    let none = store
        .expire(&ExpireRequest::new(Some(height), None).at(at))
        .await?;
    out.push((
        format!("expire sweep ({none} expire)"),
        ms(started.elapsed()),
    ));

    // purge the first month (~1/12 of the rows, all terminal after the expire above), each
    // layout its best way: the store's batched purge on the plain table; on the partitioned
    // one, check that the month's partition holds only purgeable rows, then detach and drop
    // it. (The store's purge on the partitioned table hash-joins every partition per batch:
    // 6 s for 84,000 rows at 1M, so it is not a contender.)
    let feb = Utc
        .with_ymd_and_hms(2025, 2, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    match layout {
        Layout::Plain => {
            let started = Instant::now();
            let purged = store.purge(feb).await?;
            out.push((
                format!("purge one month ({purged} rows, batches of 5,000)"),
                ms(started.elapsed()),
            ));
        }
        Layout::Monthly => {
            let started = Instant::now();
            let blocked: bool = sqlx::query_scalar(&format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.dydx_order_metadata_m0 \
                 WHERE status NOT IN ('cancelled', 'expired', 'filled', 'failed') \
                 OR updated_at >= $1)",
                s = store.schema()
            ))
            .bind(feb + chrono::Duration::days(1))
            .fetch_one(store.pool())
            .await?;
            anyhow::ensure!(!blocked, "month 0 holds rows purge must keep");
            sql(
                &store,
                &format!(
                    "ALTER TABLE {t} DETACH PARTITION {s}.dydx_order_metadata_m0; \
                     DROP TABLE {s}.dydx_order_metadata_m0",
                    t = store.table(),
                    s = store.schema()
                ),
            )
            .await?;
            out.push((
                "purge one month (check + detach + drop partition)".into(),
                ms(started.elapsed()),
            ));
        }
    }
    let started = Instant::now();
    let purged = store.purge(feb + chrono::Duration::days(1)).await?;
    out.push((
        format!("purge one day ({purged} rows)"),
        ms(started.elapsed()),
    ));
    let started = Instant::now();
    let purged = store.purge(feb + chrono::Duration::days(1)).await?;
    out.push((
        format!("purge, nothing due ({purged} rows)"),
        ms(started.elapsed()),
    ));
    if std::env::var_os("PARTBENCH_KEEP").is_none() {
        sql(&store, &format!("DROP SCHEMA {} CASCADE", store.schema())).await?;
    }
    store.close().await;
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: i64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let url = args
        .next()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let plain = measure(&url, Layout::Plain, rows).await?;
    let monthly = measure(&url, Layout::Monthly, rows).await?;
    println!("| {rows} rows | plain table | monthly partitions |\n|---|---|---|");
    for (i, (what, p)) in plain.iter().enumerate() {
        let m = monthly.get(i).map(|(_, v)| v.as_str()).unwrap_or("");
        println!("| {what} | {p} | {m} |");
    }
    for (what, m) in monthly.iter().skip(plain.len()) {
        println!("| {what} | — | {m} |");
    }
    Ok(())
}
