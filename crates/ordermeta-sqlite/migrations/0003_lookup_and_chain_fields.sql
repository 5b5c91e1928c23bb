-- Issue 13: what the chain teaches after placement, and lookups by the bot's own identity.
--
-- label (the caller's own name for the order), indexer_id (the indexer's UUID of the order),
-- filled_quantity (exact decimal text) and cancel_confirmed_at (microseconds since the Unix
-- epoch, like every timestamp here): NULL while unknown, which is every row written before
-- this migration. ADD COLUMN with a NULL default only changes the schema: no row is rewritten.
ALTER TABLE dydx_order_metadata ADD COLUMN label TEXT;
ALTER TABLE dydx_order_metadata ADD COLUMN indexer_id TEXT;
ALTER TABLE dydx_order_metadata ADD COLUMN filled_quantity TEXT;
ALTER TABLE dydx_order_metadata ADD COLUMN cancel_confirmed_at INTEGER;

-- find_by_client_id: the newest record of (owner, subaccount, market, client id) is the last
-- entry of its range, so the lookup reads one index entry (backwards), whatever the number of
-- records that share the client id.
--
-- Building the indexes reads the table once, under the migration's write lock (measured:
-- 2.5 s for a million rows). The migration runs within the opening deadline: open a file of
-- millions of records once with a longer `operation_timeout` to upgrade it.
CREATE INDEX IF NOT EXISTS dydx_order_metadata_client_id_idx
    ON dydx_order_metadata (owner, subaccount_number, clob_pair_id, client_id, placed_at, order_id);

-- find_by_label, likewise; partial: records without a label (most) take no room in it.
CREATE INDEX IF NOT EXISTS dydx_order_metadata_label_idx
    ON dydx_order_metadata (label, placed_at, order_id)
    WHERE label IS NOT NULL;
