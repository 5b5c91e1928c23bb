//! Opening a store from a URL, so that the backend is a configuration value, not code.

use std::sync::Arc;

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
/// with its crate's options type instead.
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
    match scheme.as_deref() {
        None | Some("sqlite") => {
            no_ordermeta_params(url, "an SQLite")?;
            open_sqlite(url).await
        }
        Some("memory") => {
            no_ordermeta_params(url, "a memory")?;
            Ok(Arc::new(MemoryStore::new()))
        }
        Some("postgres" | "postgresql") => {
            let (url, schema) = take_param(url, "schema", "namespace")?;
            open_postgres(&url, schema).await
        }
        Some("redis" | "rediss" | "redis+cluster" | "rediss+cluster") => {
            let (url, namespace) = take_param(url, "namespace", "schema")?;
            open_redis(&url, namespace).await
        }
        Some(other) => Err(OpenError::UnknownScheme {
            scheme: other.to_owned(),
        }),
    }
}

/// The lowercased scheme of `url`, or `None` for a plain path (no `:` before any `/`).
fn scheme_of(url: &str) -> Option<String> {
    let colon = url.find(':')?;
    let scheme = &url[..colon];
    let is_scheme = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    is_scheme.then(|| scheme.to_ascii_lowercase())
}

/// Splits `url` into the URL without ordermeta's parameter `name` and that parameter's value.
/// `other` is the parameter of the other store, refused here so that a typo does not pass.
fn take_param(url: &str, name: &str, other: &str) -> Result<(String, Option<String>), OpenError> {
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
                return Err(OpenError::InvalidUrl {
                    reason: format!("`{name}` needs exactly one non-empty value"),
                });
            }
            value = Some(v.to_owned());
        } else if key == other {
            return Err(OpenError::InvalidUrl {
                reason: format!(
                    "`{other}` is not a parameter of this store; did you mean `{name}`?"
                ),
            });
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

/// Refuses `schema=` / `namespace=` on stores that have neither.
fn no_ordermeta_params(url: &str, store: &str) -> Result<(), OpenError> {
    for name in ["schema", "namespace"] {
        let (_, value) = take_param(url, name, "")?;
        if value.is_some() {
            return Err(OpenError::InvalidUrl {
                reason: format!("`{name}` is not a parameter of {store} store"),
            });
        }
    }
    Ok(())
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str) -> Result<Arc<dyn MetadataStore>, OpenError> {
    Ok(Arc::new(crate::sqlite::SqliteStore::connect(url).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(url: &str) -> Result<Arc<dyn MetadataStore>, OpenError> {
    Err(OpenError::FeatureDisabled {
        scheme: scheme_of(url).unwrap_or_else(|| "(file path)".to_owned()),
        feature: "sqlite",
    })
}

#[cfg(feature = "postgres")]
async fn open_postgres(
    url: &str,
    schema: Option<String>,
) -> Result<Arc<dyn MetadataStore>, OpenError> {
    let mut options = crate::postgres::PgStore::options();
    if let Some(schema) = schema {
        options = options.schema(schema);
    }
    Ok(Arc::new(options.connect(url).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(
    url: &str,
    _schema: Option<String>,
) -> Result<Arc<dyn MetadataStore>, OpenError> {
    Err(OpenError::FeatureDisabled {
        scheme: scheme_of(url).unwrap_or_default(),
        feature: "postgres",
    })
}

#[cfg(feature = "redis")]
async fn open_redis(
    url: &str,
    namespace: Option<String>,
) -> Result<Arc<dyn MetadataStore>, OpenError> {
    let mut builder = crate::redis::RedisStore::builder(url);
    if let Some(namespace) = namespace {
        builder = builder.namespace(namespace);
    }
    Ok(Arc::new(builder.connect().await?))
}

#[cfg(not(feature = "redis"))]
async fn open_redis(
    url: &str,
    _namespace: Option<String>,
) -> Result<Arc<dyn MetadataStore>, OpenError> {
    Err(OpenError::FeatureDisabled {
        scheme: scheme_of(url).unwrap_or_default(),
        feature: "redis",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "namespace",
        )
        .expect("valid");
        assert_eq!(
            url,
            "postgres://u:p@h/db?sslmode=require&application_name=x#f"
        );
        assert_eq!(v.as_deref(), Some("bot_1"));
        let (url, v) = take_param("redis://h:6379/0", "namespace", "schema").expect("valid");
        assert_eq!((url.as_str(), v), ("redis://h:6379/0", None));
        let (url, _) = take_param("redis://h?namespace=a", "namespace", "schema").expect("ok");
        assert_eq!(url, "redis://h");
    }

    #[test]
    fn malformed_parameters_are_refused() {
        for (url, name, other) in [
            ("postgres://h/db?schema=", "schema", "namespace"),
            ("postgres://h/db?schema=a&schema=b", "schema", "namespace"),
            ("postgres://h/db?namespace=a", "schema", "namespace"),
            ("redis://h?schema=a", "namespace", "schema"),
        ] {
            assert!(
                matches!(
                    take_param(url, name, other),
                    Err(OpenError::InvalidUrl { .. })
                ),
                "{url}"
            );
        }
        assert!(matches!(
            no_ordermeta_params("sqlite:a.db?namespace=x", "an SQLite"),
            Err(OpenError::InvalidUrl { .. })
        ));
    }

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
