//! [`RedisStoreOptions`]: how a [`RedisStore`] is configured and connected.

use std::time::Duration;

use ordermeta_core::StoreError;
use ordermeta_core::backend::{DEFAULT_OPERATION_TIMEOUT, UrlError, take_param, with_deadline};

use crate::connection::{self, ConnectSettings, Target};
use crate::error::backend;
use crate::keys::KeyLayout;
use crate::known::KnownRecords;
use crate::ops::Shared;
use crate::scripts;
use crate::store::RedisStore;

/// The URL schemes of this store: one server (`redis`, `rediss` with TLS) or a cluster
/// (`redis+cluster`, `rediss+cluster`, given by a comma-separated node list).
pub const URL_SCHEMES: &[&str] = &["redis", "rediss", "redis+cluster", "rediss+cluster"];

/// The namespace a store uses unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "ordermeta";
/// How long a store waits for one reply before treating it as lost (a write then reads the
/// order back). A whole call is bounded by the operation timeout
/// ([`RedisStoreOptions::operation_timeout`]), whichever ends first.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many orders a store remembers by default (see [`RedisStoreOptions::known_records`]).
pub const DEFAULT_KNOWN_RECORDS: usize = 4096;
/// How long a store waits for a connection to be established.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// Configures and connects a [`RedisStore`]; get one from [`RedisStore::options`].
///
/// ```no_run
/// use ordermeta_redis::RedisStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ordermeta_core::StoreError> {
/// let store = RedisStore::options()
///     .namespace("bot-1")
///     .terminal_retention(Some(std::time::Duration::from_secs(30 * 24 * 3600)))
///     .connect("redis://127.0.0.1:6379")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStoreOptions {
    namespace: String,
    terminal_retention: Option<Duration>,
    response_timeout: Option<Duration>,
    connection_timeout: Duration,
    operation_timeout: Duration,
    tls_root_cert: Option<Vec<u8>>,
    known_records: usize,
}

impl std::fmt::Debug for RedisStoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Certificates are not interesting.
        f.debug_struct("RedisStoreOptions")
            .field("namespace", &self.namespace)
            .field("terminal_retention", &self.terminal_retention)
            .field("response_timeout", &self.response_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("known_records", &self.known_records)
            .finish_non_exhaustive()
    }
}

impl Default for RedisStoreOptions {
    fn default() -> Self {
        RedisStoreOptions {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            terminal_retention: None,
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            tls_root_cert: None,
            known_records: DEFAULT_KNOWN_RECORDS,
        }
    }
}

impl RedisStoreOptions {
    /// The defaults: namespace [`DEFAULT_NAMESPACE`], no retention, the default timeouts
    /// (operation: [`DEFAULT_OPERATION_TIMEOUT`]), the system's TLS roots.
    pub fn new() -> Self {
        Self::default()
    }

    /// The options a store URL carries, and the URL left for redis-rs: ordermeta's own
    /// `namespace=<name>` query parameter (unencoded) is taken out; `schema=` is refused.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (options, url) =
    ///     ordermeta_redis::RedisStoreOptions::from_url("redis://h:6379/0?namespace=bot-1")?;
    /// assert_eq!(url, "redis://h:6379/0");
    /// let store = options.connect(&url).await?; // in namespace `bot-1`
    /// # Ok(()) }
    /// ```
    pub fn from_url(url: &str) -> Result<(RedisStoreOptions, String), UrlError> {
        let (rest, namespace) = take_param(url, "namespace")?;
        let mut options = Self::new();
        if let Some(namespace) = namespace {
            options = options.namespace(namespace);
        }
        Ok((options, rest))
    }

    /// The namespace (1..=128 bytes, no braces; see [`KeyLayout::new`]). One per bot or
    /// subaccount; on a cluster, namespaces are what spreads over shards.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// A TTL for records in a terminal status (default `None`: kept until
    /// [`purge`](ordermeta_core::MetadataStore::purge)). See the
    /// [crate docs](crate#retention-of-terminal-records).
    pub fn terminal_retention(mut self, ttl: Option<Duration>) -> Self {
        self.terminal_retention = ttl;
        self
    }

    /// How long to wait for one reply before treating it as lost (default
    /// [`DEFAULT_RESPONSE_TIMEOUT`]; `None`: only the
    /// [operation timeout](Self::operation_timeout) bounds it).
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long to wait for a connection (default [`DEFAULT_CONNECTION_TIMEOUT`]).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long one store call may take as a whole, from its first command to its answer,
    /// including the read-back of a write whose reply was lost (default
    /// [`DEFAULT_OPERATION_TIMEOUT`], 5 s). [`connect`](Self::connect) (connection and script
    /// loading) gets the same bound. Past it the call fails with
    /// [`StoreError::Timeout`]: its outcome is unknown. See the
    /// [crate docs](crate#deadlines).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How many orders the store remembers (default [`DEFAULT_KNOWN_RECORDS`]; 0 turns it
    /// off): per order, the record it last wrote or read. A transition or update of a
    /// remembered order is one script call, which writes only if the stored HASH is still
    /// byte for byte that record; otherwise (another process wrote, a field was edited by
    /// hand, a TTL removed it) it costs one more round trip to read the order, and the answer
    /// is the same as without remembering. The oldest entry goes first; each holds one record
    /// and its stored fields (about 1–2 KB). See the [crate docs](crate#transitions).
    pub fn known_records(mut self, n: usize) -> Self {
        self.known_records = n;
        self
    }

    /// A PEM CA certificate (bundle) to trust for `rediss://` instead of the system roots.
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// Connects to `url`, and loads the scripts (on every node of a cluster), within the
    /// [operation timeout](Self::operation_timeout) ([`StoreError::Timeout`] past it).
    ///
    /// `url` is `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS), or
    /// `redis+cluster://[user:password@]host:port,host:port,…` / `rediss+cluster://…` for a
    /// Redis Cluster (any reachable subset of its nodes). Take a `namespace=` parameter out
    /// first with [`RedisStoreOptions::from_url`].
    pub async fn connect(self, url: &str) -> Result<RedisStore, StoreError> {
        self.connect_to(Target::from_url(url)).await
    }

    /// Connects to a Redis Cluster given by node URLs (`redis://…` or `rediss://…`, all with
    /// the same credentials), and loads the scripts on every node.
    pub async fn connect_cluster<I, S>(self, nodes: I) -> Result<RedisStore, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.connect_to(Target::Cluster(nodes.into_iter().map(Into::into).collect()))
            .await
    }

    async fn connect_to(self, target: Target) -> Result<RedisStore, StoreError> {
        let after = self.operation_timeout;
        with_deadline("connect", after, self.connect_unbounded(target)).await
    }

    async fn connect_unbounded(self, target: Target) -> Result<RedisStore, StoreError> {
        // A bad namespace fails before any connection is made.
        let keys = KeyLayout::new(&self.namespace)?;
        let settings = ConnectSettings {
            response_timeout: self.response_timeout,
            connection_timeout: self.connection_timeout,
            tls_root_cert: self.tls_root_cert.as_deref(),
        };
        let conn = connection::connect(&target, settings).await?;
        for s in scripts::all() {
            s.load_async(&mut conn.clone()).await.map_err(backend)?;
        }
        let ttl_ms = self.terminal_retention.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        Ok(RedisStore::new(Shared {
            conn,
            index_keys: keys.index_keys(),
            keys,
            ttl_ms,
            operation_timeout: self.operation_timeout,
            known: KnownRecords::new(self.known_records),
        }))
    }
}

impl RedisStore {
    /// The options builder (same as [`RedisStoreOptions::new`]); end it with
    /// [`connect`](RedisStoreOptions::connect).
    pub fn options() -> RedisStoreOptions {
        RedisStoreOptions::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_parameter_is_taken_out_of_the_url() {
        let (o, url) = RedisStoreOptions::from_url("rediss+cluster://u:p@a:1,b:2/?namespace=n&x=1")
            .expect("valid");
        assert_eq!(url, "rediss+cluster://u:p@a:1,b:2/?x=1");
        assert_eq!(o.namespace.as_str(), "n");
        let (o, url) = RedisStoreOptions::from_url("redis://h").expect("valid");
        assert_eq!(
            (url.as_str(), o.namespace.as_str()),
            ("redis://h", DEFAULT_NAMESPACE)
        );
        assert!(RedisStoreOptions::from_url("redis://h?schema=x").is_err());
        assert!(RedisStoreOptions::from_url("redis://h?namespace=").is_err());
    }
}
