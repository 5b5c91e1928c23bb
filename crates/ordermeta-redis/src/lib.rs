//! # ordermeta-redis
//!
//! A [`MetadataStore`](ordermeta_core::MetadataStore) on Redis and Redis Cluster: [`RedisStore`].
//!
//! - One connection per store: a [`redis::aio::ConnectionManager`]
//!   (multiplexed, reconnects by itself) for `redis://` / `rediss://`, the async cluster client
//!   for `redis+cluster://` / `rediss+cluster://` or an explicit node list.
//! - ACL user and password, and TLS, come from the URL
//!   (`rediss://user:password@host:6380/`); [`RedisStoreOptions::tls_root_cert`] adds a
//!   private CA.
//! - Every atomic operation is one Lua script (`lua/record.lua`, `cas.lua` for transitions
//!   and updates, `expire.lua`, `purge.lua`, `lookup.lua`, each with a KEYS/ARGV/Returns
//!   header) run by one Rust file of the same name in `src/ops/`; hashed once per process,
//!   loaded at connect and reloaded by redis-rs when a server answers `NOSCRIPT`.
//! - [`RedisStoreOptions::from_url`] takes ordermeta's `namespace=` parameter out of a store
//!   URL ([`URL_SCHEMES`] lists the schemes); the rest of the URL is redis-rs'.
//!
//! ## Key layout
//!
//! A store works in one **namespace** (default [`DEFAULT_NAMESPACE`]; use one per bot or
//! subaccount). Every key of a namespace begins with the hash tag `{<namespace>}`, so Redis
//! Cluster puts the whole namespace in **one slot**, and every script may touch any of its
//! keys without `CROSSSLOT`. Every key a script touches is passed in `KEYS`; no script builds
//! a key name.
//!
//! | key                      | type | content                                                   |
//! |--------------------------|------|-----------------------------------------------------------|
//! | `{ns}:o:<order id>`      | HASH | one order (fields below)                                  |
//! | `{ns}:ids`               | ZSET | every order id, score 0: `list` pages it with ZRANGEBYLEX |
//! | `{ns}:status:<status>`   | ZSET | the ids in that status, score 0 (status filter of `list`) |
//! | `{ns}:open:gtb`          | ZSET | open short-term orders, score = good-til block            |
//! | `{ns}:open:gtt`          | ZSET | open stateful orders, score = good-til block time         |
//! | `{ns}:terminal`          | ZSET | terminal orders, score = `updated_at` (µs)                |
//! | `{ns}:cid:<o>:<owner>:<sub>:<clob>:<cid>` | ZSET | orders by chain identity without flags and good-til, score = `placed_at` (µs) |
//! | `{ns}:lbl:<l>:<label>`   | ZSET | orders carrying a caller label, score = `placed_at` (µs)  |
//!
//! The HASH fields are the shared SQL schema's column names
//! ([`STORED_FIELDS`](ordermeta_core::backend::STORED_FIELDS)): `order_id`, `dydx_order_id`
//! (base64 protobuf), `good_until_block` *or* `good_til_block_time`, `client_id`,
//! `subaccount_number`, `owner`, `order_flags`, `clob_pair_id`, `symbol`, `side`, `quantity`,
//! `price`, `order_type`, `placed_at`, `updated_at`, `cancelled_at` (integer microseconds),
//! `tx_hash`, `cancel_tx_hash`, `status`, `version`, `history` (JSON array), the claim
//! lease `lease_token` / `lease_until` (µs, like every timestamp), and what is learnt after
//! placement: `label`, `indexer_id`, `filled_quantity` (decimal text) and
//! `cancel_confirmed_at` (µs); an absent optional value is an absent field. One more field, `op`, holds a token of the last write (see *Failures*
//! below). Reading is strict: a malformed field, an encoded `dydx_order_id` that
//! disagrees with its columns, or a value of the wrong type is
//! [`StoreError::InvalidMetadata`](ordermeta_core::StoreError::InvalidMetadata) naming the order; `list` reports such records in
//! [`Page::invalid`](ordermeta_core::Page::invalid).
//!
//! ### Lookup indexes
//!
//! [`find_by_client_id`](ordermeta_core::MetadataStore::find_by_client_id) and
//! [`find_by_label`](ordermeta_core::MetadataStore::find_by_label) read one ZSET each, never
//! scan: `{ns}:cid:…` per (owner, subaccount, market, client id) and `{ns}:lbl:…` per label.
//! Free text in these names is **length-prefixed**: `<o>` is the owner's length and `<l>` the
//! label's, in bytes, in decimal, followed by `:` and the bytes themselves (the numbers are
//! canonical decimals: no sign, no leading zeros). So a name reads back into exactly one
//! (owner, subaccount, market, client id) or label, whatever `:` or unicode they hold, and
//! `{ns}:lbl:8:bot Ü:1` is the label `bot Ü:1`. A label is any 1..=128 bytes without control
//! characters, compared byte for byte (case, spaces and unicode normalisation significant).
//!
//! Members are order ids, scored by `placed_at` in integer microseconds: exact in a double for
//! every time within ±2^53 µs of 1970 (years 1685 to 2255); members of equal score sort by
//! their bytes, so `ZREVRANGE key 0 0` is the newest by
//! [`is_newer`](ordermeta_core::is_newer) (latest `placed_at`, then greatest id). `record`
//! writes a record's entries atomically with its HASH; `purge` deletes them with it (reading
//! the fields they derive from first, see `ops/purge.rs`); nothing else changes them: the
//! identity and the label of a record never change. A lookup reads the newest member and its
//! order: a corrupt order is `InvalidMetadata` naming it; a member whose order is gone (a
//! retention TTL, a delete by hand), that names an order now indexed elsewhere, or that is not
//! UTF-8, is stale, dropped (`lookup.lua`, only if the order is still as read) and passed.
//!
//! ### Updates
//!
//! [`update`](ordermeta_core::MetadataStore::update) works like a transition (next section):
//! read and decode the order, check its status and version, compute the new record
//! ([`UpdateRequest::apply`](ordermeta_core::UpdateRequest::apply): the patch, `updated_at`,
//! version + 1), and `cas.lua` writes the fields that change only if the order is still the
//! record decided on. No history entry, the lease untouched; a terminal order's
//! `{ns}:terminal` score follows the new `updated_at`, and its retention TTL restarts. A
//! transition writes its [`FieldPatch`](ordermeta_core::FieldPatch) the same way, among the
//! fields that change.
//!
//! ### Claim leases
//!
//! A `cancelling` order may hold a [`Lease`](ordermeta_core::Lease): `lease_token` (who claimed
//! it) and `lease_until` (when the claim runs out), both present or both absent. `record`
//! stores a record's lease as given; a transition checks the request's lease condition
//! ([`LeaseCondition`](ordermeta_core::LeaseCondition): `Expired` holds when there is no
//! lease or it ends at or before the request's `at`, to the microsecond; `HeldBy(t)` when
//! `lease_token` is `t`) together with the status on the record it read, and writes only if
//! that record is still unchanged (see *Transitions* below), else answers
//! [`StatusConflict`](ordermeta_core::StoreError::StatusConflict) with the current status.
//! Entering `cancelling` with a lease writes both fields; every other transition, and
//! `expire`, deletes them. So of many cancellers re-claiming one stale claim exactly one wins,
//! and a live claim is never taken over. A malformed lease (one field without the other, a
//! `lease_until` that is no integer, a lease on an order that is not `cancelling`) is
//! `InvalidMetadata` for that order only.
//!
//! ### Transitions
//!
//! A transition decides on a decoded record — the one this store remembers writing or reading
//! last ([`RedisStoreOptions::known_records`], default [`DEFAULT_KNOWN_RECORDS`] orders), else
//! the order read (HGETALL) and decoded strictly — checks the request against it and computes
//! the new record ([`TransitionRequest::apply`](ordermeta_core::TransitionRequest::apply)).
//! `cas.lua` then writes the fields that change, and moves the order between index sets, but
//! only if the HASH still holds exactly that record: every model field (present or absent),
//! the `op` token (every write of this store sets a fresh one) and the field count, compared
//! byte for byte in the script. Otherwise — another process wrote, an operator edited a field
//! by hand, a TTL removed the order — the script writes nothing and answers `changed`, and the
//! order is read and judged again. So a remembered record that went stale costs one round trip
//! more, never a wrong write; a record with any malformed field is never written by a
//! transition (the call is `InvalidMetadata`, the record stays as it was); a transition that
//! answers an error wrote nothing; and an error (a conflict, `NotFound`, `InvalidMetadata`)
//! is only ever answered from a record just read, never from a remembered one.
//!
//! `expire` asks the `open:*` sets for the orders whose good-til has passed (ZRANGEBYSCORE), so
//! it costs O(expired), not O(orders); `purge` asks `{ns}:terminal` the same way. Both then hand
//! those orders' keys to their script, which re-checks each order atomically.
//!
//! ### Damaged data
//!
//! Data this store did not write (an operator's command, a restore, another tool) is one
//! order's problem, never the whole namespace's:
//!
//! - `get` answers `InvalidMetadata` naming the order, for any malformed field or a key of
//!   another type; `list` reports it in [`Page::invalid`](ordermeta_core::Page::invalid) and
//!   goes on. An index member that is not UTF-8 is no order id: `list` reports it there too
//!   (its bytes escaped), but never counts it toward the page size nor makes it the cursor.
//! - `record` over a key of another type is `InvalidMetadata` naming the order; a transition
//!   of a malformed record is `InvalidMetadata`; neither writes anything.
//! - `expire` and `purge` judge each order by the fields they rely on (the key's type; the
//!   status; the good-til, history and version for `expire`; `updated_at`, in the range a
//!   timestamp decodes in, for `purge`) and **skip** one whose fields do not parse: it stays
//!   exactly as it was, and in its index, so that it is handled once repaired; each sweep
//!   reports it (a `tracing` warning naming the order and the reason), and steps past it to
//!   the rest. Damage elsewhere does not stop them: an order whose good-til has passed expires
//!   even with, say, a malformed `symbol` (which `get` keeps reporting). Index members that are
//!   not UTF-8 are removed from the index they read.
//! - An **index key** of another type breaks every operation that writes to it (and `list`
//!   that reads it): those fail with `InvalidMetadata` naming the key, writing nothing, until
//!   the key is repaired (deleted, or rebuilt). For a lookup index, that is `record` of an
//!   order indexed there and the lookup itself; `purge` skips (and reports) the orders it
//!   would remove from it.
//! - A lookup whose newest order is corrupt answers `InvalidMetadata` naming it (an older
//!   order is not the answer); stale members above it are dropped (see *Lookup indexes*).
//! - A record whose `owner`, `subaccount_number`, `clob_pair_id`, `client_id` or `label` was
//!   changed by hand is purged all the same; its lookup entries under the old values are
//!   left behind and dropped by the first lookup that meets them.
//! - Versions saturate at `i64::MAX` (the largest any ordermeta store keeps): a record at it
//!   stays usable, its version stops counting. Beyond it, a version is malformed.
//!
//! Every script checks every field it relies on before its first write; index keys are
//! type-checked first (`expire.lua`, `purge.lua`) or their writes are undone when one of them
//! fails (`record.lua`, `cas.lua`, which write the HASH last). So a script never stops
//! half-way.
//!
//! ### Scaling out
//!
//! Because a namespace is one slot, **a namespace lives on one shard** (one master and its
//! replicas). Redis Cluster spreads *namespaces* over shards: to use many shards, use many
//! namespaces — one per bot, account or subaccount — each with its own [`RedisStore`]
//! (they can share nothing but the URL). What this buys: `record_many` is all or nothing, and
//! `expire`/`purge` batches and every transition are atomic, on a cluster as on one server.
//!
//! ## Retention of terminal records
//!
//! [`RedisStoreOptions::terminal_retention`] (default **off**) sets a TTL on every record that
//! enters a terminal status (cancelled, expired, filled, failed), refreshed by a later
//! transition (`cancelled -> filled`). Redis then removes such records by itself, without
//! [`purge`](ordermeta_core::MetadataStore::purge): memory stays bounded for bots that never purge, but a
//! record may vanish before `purge`'s cut-off says so, which is why it is off by default (with
//! it off, the store behaves exactly like every other ordermeta store). Index entries a TTL
//! leaves behind are skipped by `list` and removed by `purge` and by a later `record` of the
//! same id; lookup-index entries, whose keys only the record names, are dropped by the lookups
//! that meet them (an entry of a client id or label never looked up again stays: a few dozen
//! bytes, a leftover ZSET per such key). A typical setting is 30 days, with `purge` still run
//! now and then.
//!
//! ## Deadlines
//!
//! Every call of the store — `record`, `record_many`, `get`, `transition`, `update`, `list`,
//! `find_by_client_id`, `find_by_label`, `expire`, `purge`, `health` — completes or fails
//! within one deadline,
//! [`RedisStoreOptions::operation_timeout`] (default
//! [`DEFAULT_OPERATION_TIMEOUT`](ordermeta_core::backend::DEFAULT_OPERATION_TIMEOUT), 5 s),
//! read-backs included; [`connect`](RedisStoreOptions::connect) (connection and script loading)
//! gets the same bound. A frozen server, or a listener that accepts and never answers, costs a
//! caller at most that long. A write waits for its reply for three quarters of the deadline
//! (or [`RedisStoreOptions::response_timeout`], if shorter) and keeps the last quarter to read
//! the order back when the reply is lost.
//!
//! Past the deadline the answer is [`StoreError::Timeout`](ordermeta_core::StoreError::Timeout)
//! ([`ErrorKind::Timeout`](ordermeta_core::ErrorKind::Timeout)), and it means **the outcome is
//! unknown**: the store could not learn whether the write happened, and a write already sent
//! to a frozen server may still happen when the server wakes. Do not repeat the write blindly:
//! `get` the order once the server answers again and act on what it holds (a `record` that
//! then finds the order gives [`AlreadyExists`](ordermeta_core::StoreError::AlreadyExists), a
//! repeated compare-and-set a `StatusConflict`, so a retry is never applied twice — but it
//! does not tell you which call won). A `Timeout` of `get`, `list` or `health` changed
//! nothing, one of a lookup at most dropped stale index members; one of `expire` or `purge`
//! may have done part of its batches, and running it again is safe.
//!
//! ## Failures
//!
//! A dropped connection is re-established by the connection manager (or the cluster client);
//! the operation that met the drop fails with [`StoreError::Backend`](ordermeta_core::StoreError::Backend), the next ones work
//! again — the store never needs rebuilding. Reads (`get`, `list`, the lookups' reads,
//! `health`) are retried once on a connection error. Writes are never retried blindly: every write carries a fresh token
//! it stores in the `op` field, and when a write's reply is lost (I/O error, reply timeout,
//! or no reply within its share of the deadline) the store reads the order back, asking again
//! until the deadline while the server does not answer — if the order holds our token the
//! write happened and its result is returned; if the server answers and it does not, the write
//! did not happen and [`StoreError::Backend`](ordermeta_core::StoreError::Backend) is
//! returned; if no answer comes in time, [`StoreError::Timeout`](ordermeta_core::StoreError::Timeout).
//! A script call that a cluster client re-sends finds its own token and answers as the first
//! call would have. Scripts are atomic and never stop half-way (see *Damaged data*), so a
//! crash or a kill never leaves a half-written record or index.
//!
//! ## Performance
//!
//! `benches/redis.rs` runs an order's life — `record`, pending -> active, the claim
//! (`claim_for_cancel`), cancelling -> cancelled — with 1, 8 and 64 concurrent tasks on one
//! connection, beside bare redis-rs `EVALSHA` of a minimal compare-and-set script per step on
//! a HASH of the same fields (`record`: HSET unless the key exists; a transition: if the status
//! is still the expected one, HSET the same changed fields and HINCRBY the version) — no
//! indexes, no exact compare, no lease or history checks. Interleaved rounds (the sides take
//! turns going first), medians; `ours, cold` is a store with
//! [`known_records(0)`](RedisStoreOptions::known_records), which reads every order before
//! writing it. Time ours / bare, medians of 7 rounds of 1000 orders, a private server on the
//! same 2 cores as the bench and several other builds (load average 6–8), 2026-11-27:
//!
//! | step | 1 task | 8 tasks | 64 tasks | 8 tasks, cold | 64 tasks, cold |
//! |---|---|---|---|---|---|
//! | `record` | 2.47 | 2.30 | 2.38 | 2.19 | 2.04 |
//! | active | 2.48 | 2.70 | 2.41 | 4.13 | 4.62 |
//! | claim | 2.00 | 2.54 | 2.34 | 4.01 | 3.86 |
//! | cancelled | 2.21 | 2.69 | 2.49 | 4.29 | 4.76 |
//! | lifecycle | 2.26 | 2.56 | 2.54 | 3.60 | 3.52 |
//!
//! CPU per order over the whole lifecycle (8 tasks; client = the bench process, server =
//! `INFO cpu`): ours 113 µs client / 140 µs server, cold 192 / 162, bare 54 / 46.
//! `BENCH_ROUNDS=7 cargo bench -p ordermeta --bench redis --features redis` reproduces it
//! (`REDIS_URL` picks the server; about a minute). Another run that day gave the same
//! picture: per step 1.9–3.0, lifecycle 2.3–2.5 (cold 3.3–3.5).
//!
//! **The issue's target, ≤ 1.3× bare, is not reached; what holds it** (server time per claim,
//! `INFO commandstats`, medians of 11 interleaved rounds of 800 calls on a private server,
//! same busy machine; the script's two status moves, without the open-index ZADD a claim also
//! makes, ≈ 1 µs): bare 7.5 µs; ours 23.4 µs in one call, where the old path (HGETALL, then
//! `transition.lua`) took 26.8 µs in two. Of ours, comparing the whole record costs
//! 6.6 µs (23.4 against 16.8 comparing `op` only) and the index moves (ZREM from the old status
//! set, ZADD to the new one) 5.5 µs (17.9 without them); what is left is bare's work plus
//! passing the field names and the changed fields. Neither part can go without giving
//! something up: the whole-record compare is what makes a remembered record safe (an
//! operator's HSET leaves `op` as it was, so comparing `op` alone would write over a corrupt
//! record — `tests/corrupt.rs` fails that way); the status sets are what `list` filters by.
//! Measured and cut on the way: building the field names in the script from a mask (a Lua
//! table of 28 names per call cost 3.5 µs; the caller passes them, 1.1 µs); a TYPE check per
//! index key before writing (≈ 0.5 µs each; writes are now undone if one fails); the full
//! record and 11 index keys in every transition's reply and KEYS (kept: the ZADD that puts an
//! open order back in its open index on every transition, ≈ 1 µs, which heals an entry lost
//! by hand and makes a claim fail cleanly on a broken open index); a `record` is 29.4 µs against 31.9 µs with the old script
//! (bare 11.1). On the client, ours costs about twice bare's CPU: encoding the changed
//! fields, the remembered snapshot and redis-rs' argument handling (a profile shows
//! allocation first); a change that keeps the fixed fields (identity, good-til, symbol, …)
//! no longer encodes them. Remembering is what takes a transition from 3.3–4.8× to
//! 2.0–2.7×: one round trip instead of two, and no decode.
//!
//! With many cores the server's time per call is the bound: at some 23 µs per transition
//! and 30 µs per `record`, a namespace (one slot, one server core) does roughly 10 000 order
//! lifecycles a second; more namespaces spread over shards (see *Scaling out*).
//!
//! ## Example
//!
//! ```no_run
//! use ordermeta_core::*;
//! use ordermeta_redis::RedisStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), StoreError> {
//! // One namespace per bot; on Redis Cluster: "redis+cluster://h1:7000,h2:7001,h3:7002".
//! let store = RedisStore::options()
//!     .namespace("bot-1")
//!     .terminal_retention(Some(std::time::Duration::from_secs(30 * 24 * 3600)))
//!     .operation_timeout(std::time::Duration::from_secs(3)) // every call: done or failed in 3 s
//!     .connect("redis://127.0.0.1:6379")
//!     .await?;
//! let order = NewOrder {
//!     order_id: "bot-1/42".into(),
//!     dydx_order_id: OrderId {
//!         owner: "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn".into(),
//!         subaccount_number: 0,
//!         client_id: 42,
//!         order_flags: ORDER_FLAGS_SHORT_TERM,
//!         clob_pair_id: 0,
//!     },
//!     good_til: GoodTil::Block(1_000),
//!     symbol: "BTC-USD".into(),
//!     side: Side::Buy,
//!     quantity: "0.01".into(),
//!     price: Some("65000".into()),
//!     order_type: OrderType::Limit,
//! };
//! store.record(&OrderMetadata::new(order, OrderStatus::Pending, now())).await?;
//! store
//!     .transition(&TransitionRequest::new("bot-1/42", &[OrderStatus::Pending], OrderStatus::Active))
//!     .await?;
//! let claimed = store.claim_for_cancel("bot-1/42").await?;
//! assert_eq!(claimed.status, OrderStatus::Cancelling);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod codec;
#[cfg(test)]
mod codec_fuzz;
mod connection;
mod error;
mod keys;
mod known;
mod ops;
mod options;
mod scripts;
mod store;

#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub use crate::codec::hash_fields;
pub use crate::connection::RedisConnection;
pub use crate::keys::{KeyLayout, MAX_NAMESPACE_LEN};
pub use crate::options::{
    DEFAULT_CONNECTION_TIMEOUT, DEFAULT_KNOWN_RECORDS, DEFAULT_NAMESPACE, DEFAULT_RESPONSE_TIMEOUT,
    RedisStoreOptions, URL_SCHEMES,
};
pub use crate::store::RedisStore;
/// The redis-rs version this crate is built on, so users never fight a version mismatch.
pub use redis;
