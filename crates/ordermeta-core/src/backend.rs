//! Helpers for store authors: what every backend crate needs and core can offer without
//! knowing any database (URL scheme and query-parameter handling).
//!
//! It also carries the stored form of an order's history ([`history_to_json`],
//! [`history_from_json`]), which every backend keeps as JSON text.
//!
//! Each backend parses its own URL (`…StoreOptions::from_url`) with these helpers and lists
//! its schemes in a `URL_SCHEMES` constant; the facade's `ordermeta::open` only dispatches on
//! the scheme.

pub use crate::model::{history_from_json, history_to_json};

use std::future::Future;
use std::time::Duration;

use crate::error::StoreError;
use crate::model::{Lease, OrderMetadata, truncate_micros};
use crate::store::TransitionRequest;
use crate::update::UpdateRequest;
use chrono::{DateTime, Utc};

/// Default deadline of one store operation: a few seconds, never unbounded. Each backend's
/// options can change it.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a store operation under a deadline; past it, the operation is dropped (its
/// connection with it) and the answer is [`StoreError::Timeout`].
pub async fn with_deadline<T, F>(
    operation: &'static str,
    after: Duration,
    fut: F,
) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Timeout { operation, after }),
    }
}

/// The two deadlines every call of a store works under.
/// Used by the SQL stores: every trait method runs under [`run`](Self::run), every write
/// under [`write`](Self::write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// Bounds every call, from waiting for a connection or lock to the last row.
    pub operation: Duration,
    /// Bounds the read-back after a write missed `operation`.
    pub read_back: Duration,
}

impl Deadlines {
    /// `fut` under the operation deadline.
    pub async fn run<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        with_deadline(operation, self.operation, fut).await
    }

    /// A write under the operation deadline. When the deadline passes, `read_back` (under its
    /// own deadline) says whether the write happened: `Some` is the write's answer, `None`
    /// (not there, or not yet) leaves the `Timeout`, and so does a read-back that fails.
    pub async fn write<T, R, RF>(
        &self,
        operation: &'static str,
        order_id: &str,
        write: impl Future<Output = Result<T, StoreError>>,
        read_back: R,
    ) -> Result<T, StoreError>
    where
        R: FnOnce() -> RF,
        RF: Future<Output = Result<Option<T>, StoreError>>,
    {
        let timeout = match self.run(operation, write).await {
            Err(e @ StoreError::Timeout { .. }) => e,
            other => return other,
        };
        match with_deadline(operation, self.read_back, read_back()).await {
            Ok(Some(done)) => {
                tracing::info!(
                    operation,
                    order_id,
                    "a store write past its deadline had applied (read back)"
                );
                Ok(done)
            }
            Ok(None) => {
                tracing::warn!(
                    operation,
                    order_id,
                    "a store write missed its deadline and has not applied (so far)"
                );
                Err(timeout)
            }
            Err(e) => {
                tracing::warn!(
                    operation,
                    order_id,
                    error = %e,
                    "a store write missed its deadline and could not be read back"
                );
                Err(timeout)
            }
        }
    }
}

/// The lease a stored row holds, from its two columns (or fields): both set is a lease,
/// both absent is none, one without the other is [`StoreError::InvalidMetadata`].
pub fn lease_from_parts(
    token: Option<String>,
    until: Option<DateTime<Utc>>,
) -> Result<Option<Lease>, StoreError> {
    match (token, until) {
        (Some(token), Some(until)) => Ok(Some(Lease { token, until })),
        (None, None) => Ok(None),
        (token, until) => Err(StoreError::invalid(
            None,
            format!(
                "lease_token ({token:?}) and lease_until ({until:?}) must be both set or both \
                 absent"
            ),
        )),
    }
}

/// Whether `stored` (read back after a `record` whose outcome is unknown) is the record that
/// was written: then the write happened.
pub fn record_applied(written: &OrderMetadata, stored: &OrderMetadata) -> bool {
    written == stored
}

/// Whether `stored` (read back after a `transition` whose outcome is unknown) shows that
/// transition applied: the status is `req.to` and the newest history entry is the one the
/// request appends (same status, instant to the microsecond, reason).
pub fn transition_applied(req: &TransitionRequest, stored: &OrderMetadata) -> bool {
    stored.status == req.to && stored.history.last() == Some(&req.history_entry())
}

/// Whether `stored` (read back after an `update` whose outcome is unknown) shows that update
/// applied: every field the patch sets holds the patch's value, `updated_at` is the request's
/// instant and, for a request on a version, the version is the one after it.
pub fn update_applied(req: &UpdateRequest, stored: &OrderMetadata) -> bool {
    let mut patched = stored.clone();
    req.patch.apply(&mut patched);
    patched == *stored
        && stored.updated_at == truncate_micros(req.at)
        && req
            .version
            .is_none_or(|v| stored.version == v.saturating_add(1))
}

/// The columns (SQL) or hash fields (Redis) every backend stores an order in, in this
/// order: one list, so that error messages and raw-data tests name them alike.
pub const STORED_FIELDS: [&str; 28] = [
    "order_id",
    "dydx_order_id",
    "good_until_block",
    "good_til_block_time",
    "client_id",
    "subaccount_number",
    "owner",
    "order_flags",
    "clob_pair_id",
    "symbol",
    "side",
    "quantity",
    "price",
    "order_type",
    "placed_at",
    "updated_at",
    "cancelled_at",
    "tx_hash",
    "cancel_tx_hash",
    "status",
    "version",
    "history",
    "lease_token",
    "lease_until",
    "label",
    "indexer_id",
    "filled_quantity",
    "cancel_confirmed_at",
];

/// A store URL that a backend cannot use. The URL itself is never repeated: it may hold a
/// password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid store URL: {reason}")]
pub struct UrlError {
    /// What is wrong.
    pub reason: String,
}

impl UrlError {
    /// A `UrlError` saying `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        UrlError {
            reason: reason.into(),
        }
    }
}

/// The lowercased scheme of `url`, or `None` for a plain path (no `:` before any `/`).
pub fn scheme_of(url: &str) -> Option<String> {
    let colon = url.find(':')?;
    let scheme = &url[..colon];
    let is_scheme = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    is_scheme.then(|| scheme.to_ascii_lowercase())
}

/// Refuses a URL whose scheme is not one of `schemes` (a backend's `URL_SCHEMES`); `store`
/// names the backend in the error ("PostgreSQL"). A URL without a scheme is refused too:
/// only SQLite takes plain paths, and it checks for them before calling this.
pub fn check_scheme(url: &str, schemes: &[&str], store: &str) -> Result<(), UrlError> {
    match scheme_of(url) {
        Some(scheme) if schemes.contains(&scheme.as_str()) => Ok(()),
        Some(scheme) => Err(UrlError::new(format!(
            "`{scheme}:` is not a {store} URL scheme (expected {})",
            schemes.join(":, ") + ":"
        ))),
        None => Err(UrlError::new(format!(
            "a {store} URL starts with one of {}",
            schemes.join(":, ") + ":"
        ))),
    }
}

/// The query parameters ordermeta itself reads from store URLs (each backend takes its own,
/// and refuses the others so that a typo does not pass silently).
pub const ORDERMETA_PARAMS: &[&str] = &["schema", "namespace"];

/// Splits `url` into the URL without ordermeta's parameter `name` and that parameter's value
/// (unencoded, used as written). Any other ordermeta parameter ([`ORDERMETA_PARAMS`]) is
/// refused, naming `name` as what was probably meant; everything else is left for the driver.
pub fn take_param(url: &str, name: &str) -> Result<(String, Option<String>), UrlError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let mut value = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, v) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            if v.is_empty() || value.is_some() {
                return Err(UrlError::new(format!(
                    "`{name}` needs exactly one non-empty value"
                )));
            }
            value = Some(v.to_owned());
        } else if ORDERMETA_PARAMS.contains(&key) {
            return Err(UrlError::new(format!(
                "`{key}` is not a parameter of this store; did you mean `{name}`?"
            )));
        } else {
            kept.push(pair);
        }
    }
    let mut rebuilt = base.to_owned();
    if !kept.is_empty() {
        rebuilt.push('?');
        rebuilt.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        rebuilt.push('#');
        rebuilt.push_str(f);
    }
    Ok((rebuilt, value))
}

/// Refuses every ordermeta parameter ([`ORDERMETA_PARAMS`]) on a store that has none;
/// `store` names it in the error ("an SQLite").
pub fn no_params(url: &str, store: &str) -> Result<(), UrlError> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    for pair in query.split('&') {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if ORDERMETA_PARAMS.contains(&key) {
            return Err(UrlError::new(format!(
                "`{key}` is not a parameter of {store} store"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_is_seen_applied_only_with_its_fields_time_and_version() {
        use crate::model::{GoodTil, NewOrder, OrderType, Side, now};
        use crate::order_id::OrderId;
        use crate::status::OrderStatus;
        let order = NewOrder {
            order_id: "u".into(),
            dydx_order_id: OrderId {
                owner: "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn".into(),
                subaccount_number: 0,
                client_id: 1,
                order_flags: 0,
                clob_pair_id: 0,
            },
            good_til: GoodTil::Block(10),
            symbol: "BTC-USD".into(),
            side: Side::Buy,
            quantity: "1".into(),
            price: None,
            order_type: OrderType::Market,
        };
        let t0 = now();
        let mut m = OrderMetadata::new(order, OrderStatus::Active, t0);
        let at = t0 + chrono::Duration::seconds(1);
        let req = UpdateRequest::new("u")
            .if_version(1)
            .at(at)
            .filled_quantity("0.5");
        assert!(!update_applied(&req, &m), "not applied yet");
        req.apply(&mut m);
        assert!(update_applied(&req, &m));
        let mut later = m.clone();
        later.version += 1;
        assert!(!update_applied(&req, &later), "another write since");
        let mut other = m.clone();
        other.filled_quantity = Some("0.6".to_owned());
        assert!(!update_applied(&req, &other), "another quantity");
        let any_version = UpdateRequest {
            version: None,
            ..req
        };
        assert!(update_applied(&any_version, &later));
    }

    #[test]
    fn schemes() {
        assert_eq!(scheme_of("orders.db"), None);
        assert_eq!(scheme_of("/var/lib/bot/orders.db"), None);
        assert_eq!(scheme_of("./a:b/orders.db"), None);
        assert_eq!(scheme_of("sqlite:orders.db").as_deref(), Some("sqlite"));
        assert_eq!(scheme_of("Postgres://h/db").as_deref(), Some("postgres"));
        assert_eq!(
            scheme_of("rediss+cluster://h:1,h:2").as_deref(),
            Some("rediss+cluster")
        );
    }

    #[test]
    fn our_parameter_is_taken_out_and_the_rest_kept() {
        let (url, v) = take_param(
            "postgres://u:p@h/db?sslmode=require&schema=bot_1&application_name=x#f",
            "schema",
        )
        .expect("valid");
        assert_eq!(
            url,
            "postgres://u:p@h/db?sslmode=require&application_name=x#f"
        );
        assert_eq!(v.as_deref(), Some("bot_1"));
        let (url, v) = take_param("redis://h:6379/0", "namespace").expect("valid");
        assert_eq!((url.as_str(), v), ("redis://h:6379/0", None));
        let (url, _) = take_param("redis://h?namespace=a", "namespace").expect("ok");
        assert_eq!(url, "redis://h");
    }

    #[test]
    fn malformed_parameters_are_refused() {
        for (url, name) in [
            ("postgres://h/db?schema=", "schema"),
            ("postgres://h/db?schema=a&schema=b", "schema"),
            ("postgres://h/db?namespace=a", "schema"),
            ("redis://h?schema=a", "namespace"),
        ] {
            assert!(take_param(url, name).is_err(), "{url}");
        }
        assert!(no_params("sqlite:a.db?namespace=x", "an SQLite").is_err());
        assert!(no_params("sqlite:a.db?mode=rw", "an SQLite").is_ok());
    }

    #[test]
    fn foreign_schemes_are_refused_without_repeating_the_url() {
        let schemes = &["postgres", "postgresql"];
        assert!(check_scheme("PostgreSQL://h/db", schemes, "PostgreSQL").is_ok());
        for url in ["redis://u:s3cret@h", "orders.db"] {
            let err = check_scheme(url, schemes, "PostgreSQL").expect_err(url);
            assert!(err.reason.contains("postgres:, postgresql:"), "{err}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }
}
