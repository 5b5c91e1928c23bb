//! The Lua scripts, one per atomic operation (see `lua/*.lua` for their KEYS/ARGV/Returns).

use redis::Script;

pub(crate) const RECORD: &str = include_str!("../lua/record.lua");
pub(crate) const TRANSITION: &str = include_str!("../lua/transition.lua");
pub(crate) const EXPIRE: &str = include_str!("../lua/expire.lua");
pub(crate) const PURGE: &str = include_str!("../lua/purge.lua");

#[cfg(test)]
pub(crate) const SOURCES: [(&str, &str); 4] = [
    ("record.lua", RECORD),
    ("transition.lua", TRANSITION),
    ("expire.lua", EXPIRE),
    ("purge.lua", PURGE),
];

/// The scripts, hashed once per store; `SCRIPT LOAD`ed at connect (on every cluster node),
/// and reloaded by redis-rs on `NOSCRIPT` (a restarted or new node has an empty script cache).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) record: Script,
    pub(crate) transition: Script,
    pub(crate) expire: Script,
    pub(crate) purge: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            record: Script::new(RECORD),
            transition: Script::new(TRANSITION),
            expire: Script::new(EXPIRE),
            purge: Script::new(PURGE),
        }
    }

    pub(crate) fn all(&self) -> [&Script; 4] {
        [&self.record, &self.transition, &self.expire, &self.purge]
    }
}
