-- The original design's `dydx_order_metadata` table plus the core model's columns.
-- Runs with `search_path` set to the store's schema, inside the migration transaction.

CREATE TABLE dydx_order_metadata (
    -- COLLATE "C": byte order, so keyset paging (`order_id > $after ORDER BY order_id`) walks
    -- the primary-key index in the same order on every store.
    order_id            TEXT COLLATE "C" PRIMARY KEY,
    dydx_order_id       TEXT        NOT NULL,  -- base64 of the protobuf OrderId
    good_until_block    BIGINT,                -- short-term orders
    good_til_block_time BIGINT,                -- stateful orders (unix seconds)
    client_id           BIGINT      NOT NULL,  -- u32 values in BIGINT: u32::MAX fits
    subaccount_number   BIGINT      NOT NULL,
    owner               TEXT        NOT NULL,
    order_flags         BIGINT      NOT NULL,
    clob_pair_id        BIGINT      NOT NULL,
    symbol              TEXT        NOT NULL,
    side                TEXT        NOT NULL,
    quantity            TEXT        NOT NULL,
    price               TEXT,
    order_type          TEXT        NOT NULL,
    placed_at           TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    cancelled_at        TIMESTAMPTZ,
    tx_hash             TEXT,
    cancel_tx_hash      TEXT,
    status              TEXT        NOT NULL,
    version             BIGINT      NOT NULL,
    history             JSONB       NOT NULL
);

-- expire: only open orders are in these partial indexes, so a sweep costs O(expired), not
-- O(table), however many terminal records accumulate.
CREATE INDEX dydx_order_metadata_expire_block_idx
    ON dydx_order_metadata (good_until_block)
    WHERE status IN ('pending', 'active', 'cancelling') AND good_until_block IS NOT NULL;
CREATE INDEX dydx_order_metadata_expire_time_idx
    ON dydx_order_metadata (good_til_block_time)
    WHERE status IN ('pending', 'active', 'cancelling') AND good_til_block_time IS NOT NULL;

-- list by owner / subaccount, in keyset order.
CREATE INDEX dydx_order_metadata_owner_idx
    ON dydx_order_metadata (owner, subaccount_number, order_id);

-- purge: terminal records, oldest first. Partial on the terminal statuses and ordered by
-- updated_at, so a batch `ORDER BY updated_at LIMIT n` reads exactly the rows it deletes; with a
-- plain (status, updated_at) index the planner chose a LIMIT-ed sequential scan that read the
-- whole table whenever statistics still counted rows an earlier purge had deleted.
CREATE INDEX dydx_order_metadata_purge_idx
    ON dydx_order_metadata (updated_at)
    WHERE status IN ('cancelled', 'expired', 'filled', 'failed');
