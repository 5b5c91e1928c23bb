//! Every Lua script of the crate (each is owned by its operation in `ops/`), for loading them
//! all at connect.

use redis::Script;

use crate::ops::{cas, expire, lookup, purge, record};

/// The scripts, each hashed once per process; `SCRIPT LOAD`ed at connect (on every cluster
/// node), and reloaded by redis-rs on `NOSCRIPT` (a restarted or new node has an empty script
/// cache).
pub(crate) fn all() -> [&'static Script; 5] {
    [
        &record::SCRIPT,
        &cas::SCRIPT,
        &expire::SCRIPT,
        &purge::SCRIPT,
        &lookup::SCRIPT,
    ]
}

/// The sources by file name, for tests that read them.
#[cfg(test)]
pub(crate) const SOURCES: [(&str, &str); 5] = [
    ("record.lua", record::LUA),
    ("cas.lua", cas::LUA),
    ("expire.lua", expire::LUA),
    ("purge.lua", purge::LUA),
    ("lookup.lua", lookup::LUA),
];
