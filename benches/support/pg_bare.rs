//! The bare-sqlx side of the PostgreSQL benches (`postgres`, `lifecycle`): the store's
//! INSERT and transition statements run by sqlx alone with a record's values encoded as the
//! store writes them, and every column of a returned row read as a plain type.

use chrono::{DateTime, Utc};
use ordermeta::OrderMetadata;
use ordermeta::postgres::sqlx::postgres::{PgPool, PgRow};
use ordermeta::postgres::sqlx::{self, Row};

/// What bare sqlx does with a row: read every column as a plain type.
pub type BareRow = (
    String,
    String,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    String,
    i64,
    i64,
    String,
    String,
    (
        String,
        Option<String>,
        String,
        // Timestamps: the store's statements select them as microseconds.
        i64,
        i64,
        Option<i64>,
        Option<String>,
        Option<String>,
        String,
        i64,
        String,
    ),
    (Option<String>, Option<i64>),
    (Option<String>, Option<String>, Option<String>, Option<i64>),
);

pub fn col<'r, T>(r: &'r PgRow, i: usize) -> T
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    r.try_get(i)
        .unwrap_or_else(|e| panic!("bare decode of column {i}: {e}"))
}

pub fn bare_decode(r: &PgRow) -> BareRow {
    (
        col(r, 0),
        col(r, 1),
        col(r, 2),
        col(r, 3),
        col(r, 4),
        col(r, 5),
        col(r, 6),
        col(r, 7),
        col(r, 8),
        col(r, 9),
        col(r, 10),
        (
            col(r, 11),
            col(r, 12),
            col(r, 13),
            col(r, 14),
            col(r, 15),
            col(r, 16),
            col(r, 17),
            col(r, 18),
            col(r, 19),
            col(r, 20),
            col(r, 21),
        ),
        (col(r, 22), col(r, 23)),
        (col(r, 24), col(r, 25), col(r, 26), col(r, 27)),
    )
}

/// A record's values as the PostgreSQL store binds them (timestamps as they are).
pub type PgEncoded = super::Encoded<DateTime<Utc>>;

/// `m` encoded as the PostgreSQL store binds it.
pub fn pg_encode(m: &OrderMetadata) -> PgEncoded {
    super::Encoded::of(m, |t| t)
}

/// The store's one-row INSERT (`BenchSql::insert_one`) of `e`, by bare sqlx.
pub async fn pg_insert(sql: &str, e: &PgEncoded, pool: &PgPool) {
    sqlx::query(sql)
        .bind(&e.id)
        .bind(&e.b64)
        .bind(e.gtb)
        .bind(e.gtbt)
        .bind(e.client_id)
        .bind(e.sub)
        .bind(&e.owner)
        .bind(e.flags)
        .bind(e.clob)
        .bind(&e.symbol)
        .bind(e.side)
        .bind(&e.qty)
        .bind(e.price.as_deref())
        .bind(e.order_type)
        .bind(e.placed_at)
        .bind(e.updated_at)
        .bind(None::<DateTime<Utc>>)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(e.status)
        .bind(e.version)
        .bind(&e.history)
        .bind(None::<&str>)
        .bind(None::<DateTime<Utc>>)
        // label, indexer id, filled quantity, cancel confirmation
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<DateTime<Utc>>)
        .execute(pool)
        .await
        .expect("bare insert");
}

/// One compare-and-set of the store's transition statement (`BenchSql::transition`).
#[derive(Clone, Copy, Debug)]
pub struct PgTransition<'a> {
    pub id: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub at: DateTime<Utc>,
    /// The history entries appended, a JSON array.
    pub entries: &'a str,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub tx_hash: Option<&'a str>,
    pub cancel_tx_hash: Option<&'a str>,
    pub lease: Option<(&'a str, DateTime<Utc>)>,
}

/// Runs `t` with bare sqlx and reads the returned row; panics if the CAS did not hold.
pub async fn pg_transition(sql: &str, t: PgTransition<'_>, pool: &PgPool) -> BareRow {
    let row = sqlx::query(sql)
        .bind(t.id)
        .bind(vec![t.from])
        .bind(t.to)
        .bind(t.at)
        .bind(t.cancelled_at)
        .bind(t.tx_hash)
        .bind(t.cancel_tx_hash)
        .bind(t.entries)
        .bind(t.lease.map(|l| l.0))
        .bind(t.lease.map(|l| l.1))
        // An empty patch.
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<DateTime<Utc>>)
        .fetch_optional(pool)
        .await
        .expect("bare transition")
        .expect("bare transition matched");
    bare_decode(&row)
}
