-- Claim leases: who holds a `cancelling` claim (a token per canceller instance) and until when.
-- Both NULL when the record holds no lease: every status but `cancelling`, and claims taken
-- before leases existed (those count as expired, so they can be re-claimed at once). The
-- decoder refuses a row with only one of the two set.
--
-- ADD COLUMN without a default only changes the catalog: no row is rewritten, so this is
-- instant whatever the table's size. It does take the table's ACCESS EXCLUSIVE lock for that
-- instant; the migrating connection's lock_timeout keeps it from queueing the bots' statements
-- behind a long transaction (the migration then fails and is retried at the next start).
-- No index: a lease is only ever compared within its own row, found by primary key.
ALTER TABLE dydx_order_metadata
    ADD COLUMN lease_token TEXT,
    ADD COLUMN lease_until TIMESTAMPTZ;
