//! The shared servers and unique names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The shared PostgreSQL: `DATABASE_URL`, else the local default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The shared Redis: `REDIS_URL`, else the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Fails the test: the shared PostgreSQL at `url` is not usable (`error`). Says how to provide
/// one: tests never skip.
pub fn postgres_missing(url: &str, error: impl std::fmt::Display) -> ! {
    panic!(
        "PostgreSQL at {url} is required ({error}): start it with ./scripts/test.sh or point \
         DATABASE_URL at a server (tests never skip)"
    )
}

/// Fails the test: the shared Redis at `url` is not usable (`error`). Says how to provide one:
/// tests never skip.
pub fn redis_missing(url: &str, error: impl std::fmt::Display) -> ! {
    panic!(
        "Redis at {url} is required ({error}): start it with ./scripts/test.sh or point \
         REDIS_URL at a server (tests never skip)"
    )
}

/// A name no other test, test thread or test process uses: `omt_<prefix>_<pid>_<n>_<nanos>`.
/// Lowercase ASCII, digits and `_` only when `prefix` is, so it is a valid unquoted SQL
/// identifier, Redis namespace and file name; at most 46 bytes plus the prefix (PostgreSQL
/// identifiers end at 63 bytes, Redis namespaces at 128).
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "omt_{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_differ_and_are_identifiers() {
        let name = super::unique_name("a");
        assert_ne!(name, super::unique_name("a"));
        assert!(name.len() <= 46 + 1, "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name}"
        );
    }
}
