-- The original design's `dydx_order_metadata` table plus the core model's columns.
-- Runs inside the migration transaction (BEGIN IMMEDIATE); recorded in `ordermeta_migrations`.
--
-- STRICT: SQLite then refuses a value of the wrong type (text in an integer column, a real
-- where an integer belongs) from any writer, not only from this crate. Values are not
-- range-checked here (a new status must not need a table rebuild): the decoder checks every
-- column when reading and reports a bad row as InvalidMetadata naming the order.
CREATE TABLE dydx_order_metadata (
    -- BINARY collation (SQLite's default) is byte order: keyset paging walks the primary-key
    -- index in the same order as every other store.
    order_id            TEXT    NOT NULL PRIMARY KEY,
    dydx_order_id       TEXT    NOT NULL,  -- base64 of the protobuf OrderId
    good_until_block    INTEGER,           -- short-term orders
    good_til_block_time INTEGER,           -- stateful orders (unix seconds)
    client_id           INTEGER NOT NULL,  -- u32 values in 64-bit integers: u32::MAX fits
    subaccount_number   INTEGER NOT NULL,
    owner               TEXT    NOT NULL,
    order_flags         INTEGER NOT NULL,
    clob_pair_id        INTEGER NOT NULL,
    symbol              TEXT    NOT NULL,
    side                TEXT    NOT NULL,
    quantity            TEXT    NOT NULL,
    price               TEXT,
    order_type          TEXT    NOT NULL,
    placed_at           INTEGER NOT NULL,  -- microseconds since the Unix epoch
    updated_at          INTEGER NOT NULL,
    cancelled_at        INTEGER,
    tx_hash             TEXT,
    cancel_tx_hash      TEXT,
    status              TEXT    NOT NULL,
    version             INTEGER NOT NULL,
    history             TEXT    NOT NULL   -- JSON array of {status, at, reason}
) STRICT;

-- expire: only open orders are in these partial indexes, so a sweep costs O(expired), not
-- O(table), however many terminal records accumulate. The expire statements name them with
-- INDEXED BY, so a plan that cannot use them fails loudly instead of scanning.
CREATE INDEX dydx_order_metadata_expire_block_idx
    ON dydx_order_metadata (status, good_until_block)
    WHERE status IN ('pending', 'active', 'cancelling') AND good_until_block IS NOT NULL;
CREATE INDEX dydx_order_metadata_expire_time_idx
    ON dydx_order_metadata (status, good_til_block_time)
    WHERE status IN ('pending', 'active', 'cancelling') AND good_til_block_time IS NOT NULL;

-- list by owner / subaccount, in keyset order.
CREATE INDEX dydx_order_metadata_owner_idx
    ON dydx_order_metadata (owner, subaccount_number, order_id);

-- purge: terminal statuses, oldest first.
CREATE INDEX dydx_order_metadata_purge_idx
    ON dydx_order_metadata (status, updated_at);
