-- Issue 13: what the chain teaches after placement, and lookups by the bot's own identity.
--
-- label (the caller's own name for the order), indexer_id (the indexer's UUID of the order),
-- filled_quantity (exact decimal text) and cancel_confirmed_at: NULL while unknown, which is
-- every row written before this migration. ADD COLUMN without a default only changes the
-- catalog: no row is rewritten.
--
-- find_by_client_id: the newest record of (owner, subaccount, market, client id) is the last
-- entry of its range, read with a backward index scan and no sort, whatever the number of
-- records sharing the client id. find_by_label likewise; partial, so records without a label
-- take no room in it.
--
-- Building the indexes reads the table and blocks writes to it meanwhile (measured: 7 s for
-- a million rows), which is longer than a store's default deadline. On a large table, add
-- the columns and build the indexes beforehand without blocking writers (same names and
-- definitions, `CREATE INDEX CONCURRENTLY`; see the crate docs): the IF NOT EXISTS clauses
-- then keep them and this migration only records itself.
ALTER TABLE dydx_order_metadata
    ADD COLUMN IF NOT EXISTS label TEXT,
    ADD COLUMN IF NOT EXISTS indexer_id TEXT,
    ADD COLUMN IF NOT EXISTS filled_quantity TEXT,
    ADD COLUMN IF NOT EXISTS cancel_confirmed_at TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS dydx_order_metadata_client_id_idx
    ON dydx_order_metadata (owner, subaccount_number, clob_pair_id, client_id, placed_at, order_id);
CREATE INDEX IF NOT EXISTS dydx_order_metadata_label_idx
    ON dydx_order_metadata (label, placed_at, order_id)
    WHERE label IS NOT NULL;
