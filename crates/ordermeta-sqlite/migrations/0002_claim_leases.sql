-- Claim leases: who holds a `cancelling` claim (a token per canceller instance) and until when
-- (microseconds since the Unix epoch, like every timestamp here). Both NULL when the record
-- holds no lease: every status but `cancelling`, and claims taken before leases existed (those
-- count as expired, so they can be re-claimed at once). The decoder refuses a row with only
-- one of the two set.
--
-- ADD COLUMN with a NULL default only changes the schema: no row is rewritten, so this
-- migration is instant whatever the table's size. No index: a lease is only ever compared
-- within its own row, which the compare-and-set finds by primary key.
ALTER TABLE dydx_order_metadata ADD COLUMN lease_token TEXT;
ALTER TABLE dydx_order_metadata ADD COLUMN lease_until INTEGER;
