//! Every Lua script of the crate (each is owned by its operation in `ops/`), for loading them
//! all at connect.

use redis::Script;

use crate::ops::{expire, lookup, purge, record, transition, update};

/// The scripts, each hashed once per process; `SCRIPT LOAD`ed at connect (on every cluster
/// node), and reloaded by redis-rs on `NOSCRIPT` (a restarted or new node has an empty script
/// cache).
pub(crate) fn all() -> [&'static Script; 6] {
    [
        &record::SCRIPT,
        &transition::SCRIPT,
        &update::SCRIPT,
        &expire::SCRIPT,
        &purge::SCRIPT,
        &lookup::SCRIPT,
    ]
}

/// The sources by file name, for tests that read them.
#[cfg(test)]
pub(crate) const SOURCES: [(&str, &str); 6] = [
    ("record.lua", record::LUA),
    ("transition.lua", transition::LUA),
    ("update.lua", update::LUA),
    ("expire.lua", expire::LUA),
    ("purge.lua", purge::LUA),
    ("lookup.lua", lookup::LUA),
];
