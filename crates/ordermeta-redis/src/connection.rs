//! The connection a store uses, to one server or to a cluster, and how a URL becomes one.

use std::time::Duration;

use ordermeta_core::StoreError;
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::backend;

/// Reconnect attempts after one connection failure (then the next command tries again).
const RECONNECT_RETRIES: usize = 3;

/// The connection a [`RedisStore`](crate::RedisStore) uses: one server, or a cluster. Cheap to
/// clone; implements redis-rs' async `ConnectionLike`, so any command can be sent on it.
#[derive(Clone)]
#[non_exhaustive]
pub enum RedisConnection {
    /// One server, through a reconnecting multiplexed connection.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisConnection::Single(c) => f.debug_tuple("Single").field(c).finish(),
            RedisConnection::Cluster(_) => f.write_str("Cluster"),
        }
    }
}

impl redis::aio::ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// What to connect to: one server's URL, or a cluster's node URLs.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl Target {
    /// The target a store URL names: a `…+cluster://` URL is split into its nodes.
    pub(crate) fn from_url(url: &str) -> Self {
        match cluster_nodes(url) {
            Some(nodes) => Target::Cluster(nodes),
            None => Target::Single(url.to_owned()),
        }
    }
}

/// Splits `redis+cluster://user:pw@h1:p1,h2:p2/rest` into one `redis://user:pw@hN:pN/rest`
/// per node; `None` when `url` is not a cluster URL.
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.strip_suffix("+cluster")?;
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    Some(
        hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("{scheme}://{userinfo}{h}{path}"))
            .collect(),
    )
}

/// How to connect: the timeouts and TLS settings of
/// [`RedisStoreOptions`](crate::RedisStoreOptions).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectSettings<'a> {
    pub(crate) response_timeout: Option<Duration>,
    pub(crate) connection_timeout: Duration,
    pub(crate) tls_root_cert: Option<&'a [u8]>,
}

/// Connects to `target` (the scripts are not loaded yet).
pub(crate) async fn connect(
    target: &Target,
    settings: ConnectSettings<'_>,
) -> Result<RedisConnection, StoreError> {
    let urls = match target {
        Target::Single(u) => std::slice::from_ref(u),
        Target::Cluster(n) => n.as_slice(),
    };
    if urls.iter().any(|u| u.starts_with("rediss")) {
        // redis-rs builds its rustls config from the process-wide default provider; with
        // several compiled in (or none chosen), pick ring. Failing means one is set already.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let certs = settings.tls_root_cert.map(|pem| redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    });
    let conn = match target {
        Target::Single(url) => {
            let client = match certs {
                Some(c) => redis::Client::build_with_tls(url.as_str(), c),
                None => redis::Client::open(url.as_str()),
            }
            .map_err(backend)?;
            // Few, short reconnect attempts per failure: while the server is down, callers
            // get a Backend error within about a second instead of waiting out a long
            // backoff; every later command starts a new attempt.
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(settings.response_timeout)
                .set_connection_timeout(Some(settings.connection_timeout))
                .set_number_of_retries(RECONNECT_RETRIES)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            RedisConnection::Single(
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(backend)?,
            )
        }
        Target::Cluster(nodes) => {
            let mut b = redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
                .connection_timeout(settings.connection_timeout);
            if let Some(t) = settings.response_timeout {
                b = b.response_timeout(t);
            }
            if let Some(c) = certs {
                b = b.certs(c);
            }
            let client = b.build().map_err(backend)?;
            RedisConnection::Cluster(client.get_async_connection().await.map_err(backend)?)
        }
    };
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_split_into_nodes() {
        assert_eq!(cluster_nodes("redis://h:1"), None);
        assert_eq!(
            cluster_nodes("rediss+cluster://u:p@a:1,b:2/?x=1").expect("cluster"),
            vec!["rediss://u:p@a:1/?x=1", "rediss://u:p@b:2/?x=1"]
        );
        assert_eq!(
            cluster_nodes("redis+cluster://a:1,b:2").expect("cluster"),
            vec!["redis://a:1", "redis://b:2"]
        );
    }
}
