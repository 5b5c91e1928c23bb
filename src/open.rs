//! Opening a store from a URL, so that the backend is a configuration value, not code.
//!
//! This file only dispatches on the scheme: each backend crate lists its schemes
//! (`URL_SCHEMES`) and parses the rest of its URL itself (`…StoreOptions::from_url`), with the
//! helpers of [`ordermeta_core::backend`].

use std::sync::Arc;

use ordermeta_core::backend::{UrlError, no_params, scheme_of};
use ordermeta_core::{MemoryStore, MetadataStore, StoreError};

/// Why [`open`] could not open a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL names no store ordermeta knows.
    #[error(
        "unknown store URL scheme {scheme:?}: use sqlite:<path>, a plain file path, \
         postgres://…, redis://…, rediss://…, redis+cluster://… or memory:"
    )]
    UnknownScheme {
        /// The scheme found (the URL itself is not repeated: it may hold a password).
        scheme: String,
    },
    /// The URL names a store whose Cargo feature this build of ordermeta leaves out.
    #[error(
        "store URL scheme {scheme:?} needs ordermeta's Cargo feature `{feature}`: \
         add it to the ordermeta dependency's `features` and rebuild"
    )]
    FeatureDisabled {
        /// The scheme found.
        scheme: String,
        /// The feature that provides it.
        feature: &'static str,
    },
    /// An ordermeta query parameter (`schema`, `namespace`) is malformed or not for this store.
    #[error("invalid store URL: {reason}")]
    InvalidUrl {
        /// What is wrong.
        reason: String,
    },
    /// The store refused to open: unreachable server, bad credentials, unusable file, failed
    /// migration. See [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<UrlError> for OpenError {
    fn from(e: UrlError) -> Self {
        OpenError::InvalidUrl { reason: e.reason }
    }
}

/// Which Cargo feature provides which schemes. The facade keeps its own copy of each backend's
/// `URL_SCHEMES` because a build that leaves a backend out cannot ask its crate, yet must name
/// the feature to add; `scheme_copies_match_the_backends` keeps the copies in step.
const FEATURE_SCHEMES: [(&str, &[&str]); 3] = [
    ("sqlite", &["sqlite"]),
    ("postgres", &["postgres", "postgresql"]),
    (
        "redis",
        &["redis", "rediss", "redis+cluster", "rediss+cluster"],
    ),
];

/// Opens the store a URL names; what a bot reads from its configuration.
///
/// | URL | store | feature |
/// |---|---|---|
/// | `sqlite:orders.db`, `sqlite:///var/lib/bot/orders.db`, or a plain path `orders.db` | [`SqliteStore`](crate::sqlite::SqliteStore) | `sqlite` (default) |
/// | `postgres://user:pw@host/db` (`postgresql://` too; TLS through `sslmode`) | `PgStore` | `postgres` |
/// | `redis://…`, `rediss://…` (TLS), `redis+cluster://h1:p1,h2:p2` | `RedisStore` | `redis` |
/// | `memory:` | [`MemoryStore`] (nothing survives the process) | always |
///
/// One query parameter of ordermeta's own is taken out of the URL before the driver sees it:
/// `schema=<name>` for PostgreSQL (default `ordermeta`) and `namespace=<name>` for Redis
/// (default `ordermeta`), unencoded. Anything else in the URL is the driver's (sqlx, redis-rs).
/// For every other setting (pool sizes, timeouts, retention, `synchronous`), build the store
/// with its crate's options type instead (`from_url` there reads the same URLs).
///
/// An SQLite file that does not exist is created (as with `mode=rwc`), and reported: a warning
/// naming its absolute path, and the store's [`description`](MetadataStore::description) says
/// *created empty when opened*. `sqlite:orders.db?mode=rw` opens an existing file only; a
/// missing one is an error naming the absolute path it looked for. Relative paths are resolved
/// from the working directory.
///
/// Errors never repeat the URL, which may carry a password.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ordermeta::OpenError> {
/// # let dir = tempfile::tempdir().expect("temp dir");
/// # let path = dir.path().join("orders.db");
/// let url = format!("sqlite:{}", path.display()); // from the bot's configuration
/// let store = ordermeta::open(&url).await?;
/// assert!(store.list(&ordermeta::ListQuery::default()).await?.items.is_empty());
///
/// let err = ordermeta::open("mysql://db/orders").await.err().expect("no such store");
/// assert!(matches!(err, ordermeta::OpenError::UnknownScheme { .. }));
/// # Ok(()) }
/// ```
pub async fn open(url: &str) -> Result<Arc<dyn MetadataStore>, OpenError> {
    let scheme = scheme_of(url);
    // A plain path has no scheme: it is a file, and SQLite is the store for files.
    let key = scheme.as_deref().unwrap_or("sqlite");
    match key {
        "memory" => {
            no_params(url, "a memory")?;
            Ok(Arc::new(MemoryStore::new()))
        }
        #[cfg(feature = "sqlite")]
        s if ordermeta_sqlite::URL_SCHEMES.contains(&s) => open_sqlite(url).await,
        #[cfg(feature = "postgres")]
        s if ordermeta_postgres::URL_SCHEMES.contains(&s) => open_postgres(url).await,
        #[cfg(feature = "redis")]
        s if ordermeta_redis::URL_SCHEMES.contains(&s) => open_redis(url).await,
        s => {
            let shown = if scheme.is_some() { s } else { "(file path)" }.to_owned();
            Err(
                match FEATURE_SCHEMES
                    .iter()
                    .find(|(_, schemes)| schemes.contains(&s))
                {
                    Some(&(feature, _)) => OpenError::FeatureDisabled {
                        scheme: shown,
                        feature,
                    },
                    None => OpenError::UnknownScheme { scheme: shown },
                },
            )
        }
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str) -> Result<Arc<dyn MetadataStore>, OpenError> {
    let (options, url) = crate::sqlite::SqliteStoreOptions::from_url(url)?;
    Ok(Arc::new(options.connect(&url).await?))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<Arc<dyn MetadataStore>, OpenError> {
    let (options, url) = crate::postgres::PgStoreOptions::from_url(url)?;
    Ok(Arc::new(options.connect(&url).await?))
}

#[cfg(feature = "redis")]
async fn open_redis(url: &str) -> Result<Arc<dyn MetadataStore>, OpenError> {
    let (options, url) = crate::redis::RedisStoreOptions::from_url(url)?;
    Ok(Arc::new(options.connect(&url).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_schemes_are_typed_errors() {
        for url in ["mysql://h/db", "http://x", "s3://bucket/key"] {
            match open(url).await {
                Err(OpenError::UnknownScheme { scheme }) => {
                    assert!(url.starts_with(&scheme), "{url} -> {scheme}");
                }
                other => panic!("{url}: {:?}", other.map(|_| "a store")),
            }
        }
    }

    #[tokio::test]
    async fn errors_do_not_repeat_the_password() {
        let err = open("mysql://user:s3cret@h/db")
            .await
            .err()
            .expect("unknown");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[tokio::test]
    async fn memory_needs_nothing() {
        let store = open("memory:").await.expect("memory store");
        assert!(store.health().await.is_ok());
    }

    #[tokio::test]
    async fn ordermeta_parameters_are_refused_where_they_mean_nothing() {
        let mut urls = vec!["memory:?schema=x", "memory:?namespace=x"];
        if cfg!(feature = "sqlite") {
            urls.extend(["sqlite:a.db?namespace=x", "a.db?schema=x"]);
        }
        for url in urls {
            assert!(
                matches!(open(url).await, Err(OpenError::InvalidUrl { .. })),
                "{url}"
            );
        }
    }

    /// The facade's copies of the schemes are the backends' own.
    #[cfg(all(feature = "sqlite", feature = "postgres", feature = "redis"))]
    #[test]
    fn scheme_copies_match_the_backends() {
        assert_eq!(
            FEATURE_SCHEMES.map(|(feature, schemes)| (feature, schemes.to_vec())),
            [
                ("sqlite", ordermeta_sqlite::URL_SCHEMES.to_vec()),
                ("postgres", ordermeta_postgres::URL_SCHEMES.to_vec()),
                ("redis", ordermeta_redis::URL_SCHEMES.to_vec()),
            ]
        );
    }

    /// A build without the backends says which feature a URL needs.
    #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "redis")))]
    #[tokio::test]
    async fn a_backend_left_out_names_its_feature() {
        for (url, wanted) in [
            ("sqlite:orders.db", "sqlite"),
            ("orders.db", "sqlite"),
            ("postgres://h/db", "postgres"),
            ("rediss://h:6380", "redis"),
        ] {
            match open(url).await {
                Err(OpenError::FeatureDisabled { feature, .. }) => assert_eq!(feature, wanted),
                other => panic!("{url}: {:?}", other.map(|_| "a store")),
            }
        }
    }
}
