//! The bare-sqlx side of the SQLite benches (`sqlite`, `lifecycle`): a record's columns
//! encoded as the store writes them, the store's INSERT and transition run by sqlx alone,
//! and every column of a returned row read as a raw value.

use ordermeta::OrderMetadata;
use ordermeta::sqlite::sqlx::{self, Row as _, sqlite::SqliteRow};
use ordermeta::to_micros;

/// A record's columns as the SQLite store writes them (timestamps in µs).
pub type Encoded = super::Encoded<i64>;

/// `m` encoded as the SQLite store writes it.
pub fn encode(m: &OrderMetadata) -> Encoded {
    super::Encoded::of(m, to_micros)
}

pub async fn bare_insert<'c, E>(sql: &str, e: &Encoded, exec: E)
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    sqlx::query(sql)
        .bind(e.id.as_str())
        .bind(e.b64.as_str())
        .bind(e.gtb)
        .bind(e.gtbt)
        .bind(e.client_id)
        .bind(e.sub)
        .bind(e.owner.as_str())
        .bind(e.flags)
        .bind(e.clob)
        .bind(e.symbol.as_str())
        .bind(e.side)
        .bind(e.qty.as_str())
        .bind(e.price.as_deref())
        .bind(e.order_type)
        .bind(e.placed_at)
        .bind(e.updated_at)
        .bind(None::<i64>)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(e.status)
        .bind(e.version)
        .bind(e.history.as_str())
        .bind(None::<&str>)
        .bind(None::<i64>)
        // label, indexer id, filled quantity, cancel confirmation
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<i64>)
        .execute(exec)
        .await
        .expect("bare insert");
}

/// Every column read as a raw value (what a bare repository gets from the driver).
pub type Raw = (
    String,
    String,
    Option<i64>,
    Option<i64>,
    [i64; 4],
    String,
    [String; 4],
    Option<String>,
    [i64; 2],
    Option<i64>,
    [Option<String>; 2],
    String,
    i64,
    String,
    (Option<String>, Option<i64>),
    ([Option<String>; 3], Option<i64>),
);

pub fn read_raw(r: &SqliteRow) -> Raw {
    let s = |i: usize| r.try_get::<String, _>(i).expect("text column");
    let n = |i: usize| r.try_get::<i64, _>(i).expect("integer column");
    (
        s(0),
        s(1),
        r.try_get(2).expect("gtb"),
        r.try_get(3).expect("gtbt"),
        [n(4), n(5), n(7), n(8)],
        s(6),
        [s(9), s(10), s(11), s(13)],
        r.try_get(12).expect("price"),
        [n(14), n(15)],
        r.try_get(16).expect("cancelled_at"),
        [r.try_get(17).expect("tx"), r.try_get(18).expect("ctx")],
        s(19),
        n(20),
        s(21),
        (
            r.try_get(22).expect("lease_token"),
            r.try_get(23).expect("lease_until"),
        ),
        (
            [
                r.try_get(24).expect("label"),
                r.try_get(25).expect("indexer_id"),
                r.try_get(26).expect("filled_quantity"),
            ],
            r.try_get(27).expect("cancel_confirmed_at"),
        ),
    )
}

/// One compare-and-set of the store's transition statement (`bench_sql::transition(1)`):
/// from one status to another, with the fields it sets on the way.
#[derive(Clone, Copy, Debug)]
pub struct BareTransition<'a> {
    pub id: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    /// `updated_at`, µs.
    pub at: i64,
    /// The history entry appended (JSON).
    pub entry: &'a str,
    pub cancelled_at: Option<i64>,
    pub tx_hash: Option<&'a str>,
    pub cancel_tx_hash: Option<&'a str>,
    /// The claim's token and until (µs).
    pub lease: Option<(&'a str, i64)>,
}

/// Runs `t` with bare sqlx and reads the returned row raw; panics if the CAS did not hold
/// (a bench that lost its own order's CAS measures nothing).
pub async fn bare_transition<'c, E>(sql: &str, t: BareTransition<'_>, exec: E) -> Raw
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let row = sqlx::query(sql)
        .bind(t.to)
        .bind(t.at)
        .bind(t.cancelled_at)
        .bind(t.tx_hash)
        .bind(t.cancel_tx_hash)
        .bind(t.lease.map(|l| l.0))
        .bind(t.lease.map(|l| l.1))
        // An empty patch.
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(None::<i64>)
        .bind(t.entry)
        .bind(t.id)
        .bind(t.from)
        .fetch_optional(exec)
        .await
        .expect("bare transition")
        .expect("bare transition matched");
    read_raw(&row)
}

/// The schema the store creates (its migrations, in order), for the bare database.
pub const SCHEMA: [&str; 3] = [
    include_str!("../../crates/ordermeta-sqlite/migrations/0001_create_dydx_order_metadata.sql"),
    include_str!("../../crates/ordermeta-sqlite/migrations/0002_claim_leases.sql"),
    include_str!("../../crates/ordermeta-sqlite/migrations/0003_lookup_and_chain_fields.sql"),
];
