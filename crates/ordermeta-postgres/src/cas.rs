//! A transition's compare-and-set as values to bind: to the single statement (one row) or,
//! as one array per column, to the group commit's batch statement.

use chrono::{DateTime, Utc};
use ordermeta_core::{LeaseCondition, OrderStatus, TransitionRequest};
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;

use crate::sql::Sql;

/// The values of one transition's compare-and-set, owned so that a batch writer can hold them.
#[derive(Debug, Clone)]
pub(crate) struct Cas {
    pub(crate) id: String,
    pub(crate) from: Vec<&'static str>,
    to: &'static str,
    at: DateTime<Utc>,
    cancelled_at: Option<DateTime<Utc>>,
    tx_hash: Option<String>,
    cancel_tx_hash: Option<String>,
    /// The history entry appended, a one-element JSON array.
    entry: String,
    lease_token: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    indexer_id: Option<String>,
    filled_quantity: Option<String>,
    cancel_confirmed_at: Option<DateTime<Utc>>,
    require: Option<LeaseCondition>,
}

impl Cas {
    /// The compare-and-set of a checked request.
    pub(crate) fn new(req: &TransitionRequest) -> Self {
        let entry = req.history_entry();
        let at = entry.at;
        // `check` allows a lease only when entering cancelling: anything else clears it.
        let lease = req.lease.as_ref();
        Cas {
            id: req.order_id.clone(),
            from: req.from.iter().map(|s| s.as_str()).collect(),
            to: req.to.as_str(),
            at,
            cancelled_at: (req.to == OrderStatus::Cancelled).then_some(at),
            tx_hash: req.tx_hash.clone(),
            cancel_tx_hash: req.cancel_tx_hash.clone(),
            entry: format!("[{}]", entry.to_json()),
            lease_token: lease.map(|l| l.token.clone()),
            lease_until: lease.map(|l| l.until),
            indexer_id: req.patch.indexer_id.clone(),
            filled_quantity: req.patch.filled_quantity.clone(),
            cancel_confirmed_at: req.patch.cancel_confirmed_at,
            require: req.require.clone(),
        }
    }

    /// The single statement for this request's lease condition, its parameters bound.
    pub(crate) fn bind_single<'q>(&'q self, sql: &'q Sql) -> Query<'q, Postgres, PgArguments> {
        let statement = match &self.require {
            None => &sql.transition,
            Some(LeaseCondition::Expired) => &sql.transition_expired,
            Some(LeaseCondition::HeldBy(_)) => &sql.transition_held,
        };
        let q = sqlx::query(statement)
            .bind(&self.id)
            .bind(&self.from)
            .bind(self.to)
            .bind(self.at)
            .bind(self.cancelled_at)
            .bind(&self.tx_hash)
            .bind(&self.cancel_tx_hash)
            .bind(&self.entry)
            .bind(&self.lease_token)
            .bind(self.lease_until)
            .bind(&self.indexer_id)
            .bind(&self.filled_quantity)
            .bind(self.cancel_confirmed_at);
        match &self.require {
            Some(LeaseCondition::HeldBy(token)) => q.bind(token),
            _ => q,
        }
    }
}

/// Many compare-and-sets as one array per column, for `transition_batch`.
#[derive(Default)]
pub(crate) struct CasColumns<'a> {
    seq: Vec<i32>,
    id: Vec<&'a str>,
    from: Vec<String>,
    to: Vec<&'static str>,
    at: Vec<DateTime<Utc>>,
    cancelled_at: Vec<Option<DateTime<Utc>>>,
    tx_hash: Vec<Option<&'a str>>,
    cancel_tx_hash: Vec<Option<&'a str>>,
    entry: Vec<&'a str>,
    lease_token: Vec<Option<&'a str>>,
    lease_until: Vec<Option<DateTime<Utc>>>,
    indexer_id: Vec<Option<&'a str>>,
    filled_quantity: Vec<Option<&'a str>>,
    cancel_confirmed_at: Vec<Option<DateTime<Utc>>>,
    require: Vec<i32>,
    token: Vec<Option<&'a str>>,
}

impl<'a> CasColumns<'a> {
    /// Adds `cas` as the batch's row `seq` (what `RETURNING v_seq` gives back).
    pub(crate) fn push(&mut self, seq: i32, cas: &'a Cas) {
        self.seq.push(seq);
        self.id.push(&cas.id);
        // Statuses never contain a comma: the SQL splits the list with string_to_array.
        self.from.push(cas.from.join(","));
        self.to.push(cas.to);
        self.at.push(cas.at);
        self.cancelled_at.push(cas.cancelled_at);
        self.tx_hash.push(cas.tx_hash.as_deref());
        self.cancel_tx_hash.push(cas.cancel_tx_hash.as_deref());
        self.entry.push(&cas.entry);
        self.lease_token.push(cas.lease_token.as_deref());
        self.lease_until.push(cas.lease_until);
        self.indexer_id.push(cas.indexer_id.as_deref());
        self.filled_quantity.push(cas.filled_quantity.as_deref());
        self.cancel_confirmed_at.push(cas.cancel_confirmed_at);
        let (require, token) = match &cas.require {
            None => (0, None),
            Some(LeaseCondition::Expired) => (1, None),
            Some(LeaseCondition::HeldBy(t)) => (2, Some(t.as_str())),
        };
        self.require.push(require);
        self.token.push(token);
    }

    /// `transition_batch` with the 16 arrays bound.
    pub(crate) fn bind(&'a self, sql: &'a Sql) -> Query<'a, Postgres, PgArguments> {
        sqlx::query(&sql.transition_batch)
            .bind(&self.seq)
            .bind(&self.id)
            .bind(&self.from)
            .bind(&self.to)
            .bind(&self.at)
            .bind(&self.cancelled_at)
            .bind(&self.tx_hash)
            .bind(&self.cancel_tx_hash)
            .bind(&self.entry)
            .bind(&self.lease_token)
            .bind(&self.lease_until)
            .bind(&self.indexer_id)
            .bind(&self.filled_quantity)
            .bind(&self.cancel_confirmed_at)
            .bind(&self.require)
            .bind(&self.token)
    }
}
